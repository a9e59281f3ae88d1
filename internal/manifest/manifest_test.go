package manifest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func sample() *Manifest {
	setID := [16]byte{0x3f, 0x9a, 0x1c, 0x2e, 5}
	t := time.Date(2026, 11, 22, 3, 52, 0, 0, time.UTC)
	return &Manifest{
		Format: Format, Version: Version,
		ID: NewID("home", t, setID), Name: "home", Time: t,
		K: 2, N: 3, BlockSize: 65536,
		SetID:      "3f9a1c2e050000000000000000000000",
		StreamSize: 1234,
		StreamHash: strings.Repeat("ab", 32),
		Shares: []Share{
			{Index: 0, Host: "file:///mnt/usb/bk", Path: SharePath(NewID("home", t, setID), 0), Size: 100, MetaBLAKE3: strings.Repeat("01", 32)},
			{Index: 2, Host: "sftp://bk@nas:2222/srv/bk", Path: SharePath(NewID("home", t, setID), 2), Size: 100, MetaBLAKE3: strings.Repeat("02", 32)},
			{Index: 1, Host: "s3://bk-nas/home", Path: SharePath(NewID("home", t, setID), 1), Size: 100, MetaBLAKE3: strings.Repeat("03", 32),
				ObjectVersion: "01M8N2AV4S1Q27P0GBQZXNGW97"},
		},
	}
}

func TestID(t *testing.T) {
	m := sample()
	if m.ID != "home-20261122T035200Z-3f9a1c2e" {
		t.Fatalf("ID %q", m.ID)
	}
	name, when, ok := ParseID("my-home.v2-20261122T035200Z-3f9a1c2e")
	if !ok || name != "my-home.v2" || !when.Equal(m.Time) {
		t.Fatalf("ParseID: %q %v %v", name, when, ok)
	}
	for _, bad := range []string{"home-20261122T035200Z", "home-20261122T035200Z-3F9A1C2E", "-20261122T035200Z-3f9a1c2e", "home-20261322T035200Z-3f9a1c2e"} {
		if _, _, ok := ParseID(bad); ok {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	if id, ok := IDFromManifestPath(ManifestPath(m.ID)); !ok || id != m.ID {
		t.Errorf("IDFromManifestPath: %q %v", id, ok)
	}
	if _, ok := IDFromManifestPath(m.ID + ".share0"); ok {
		t.Error("a share taken for a manifest")
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	m.Label, m.Parent = "nightly", "home-20261121T035200Z-00000000"
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(b, again) {
		t.Fatalf("round trip changed the manifest:\n%s\n%s", b, again)
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	b, _ := sample().Marshal()
	b = bytes.Replace(b, []byte(`"k":`), []byte(`"future": {"x": [1,2]}, "k":`), 1)
	b = bytes.Replace(b, []byte(`"index":`), []byte(`"replica": true, "index":`), 1)
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}

func TestParseRefuses(t *testing.T) {
	good, _ := sample().Marshal()
	cases := map[string]string{
		`"version": 4`:            `"version": 5`,
		`"meta_blake3": "01`:      `"blake3": "01`,
		`"meta_blake3": "02`:      `"sha256": "02`,
		`"meta_blake3": "03`:      `"blake3": "04", "meta_blake3": "03`,
		`"bk-manifest"`:           `"other"`,
		`"index": 2`:              `"index": 3`,
		`"index": 0`:              `"index": 2`,
		`"k": 2`:                  `"k": 4`,
		`"path": "home-`:          `"path": "../home-`,
		`"name": "home"`:          `"name": "work"`,
		`"set_id": "3f`:           `"set_id": "zz`,
		`"object_version": "01M8`: `"object_version": "01 M8`,
	}
	for from, to := range cases {
		b := bytes.Replace(good, []byte(from), []byte(to), 1)
		if bytes.Equal(b, good) {
			t.Fatalf("sample lacks %q", from)
		}
		if _, err := Parse(b); err == nil {
			t.Errorf("accepted %s → %s", from, to)
		}
	}
	if _, err := Parse([]byte("bk-share")); err == nil {
		t.Error("accepted a non-JSON file")
	}
}

// TestObjectVersionOptional: a share without object_version (bk before
// it, or a host that keeps no versions) is read as before, and one with
// it keeps it.
func TestObjectVersionOptional(t *testing.T) {
	b, _ := sample().Marshal()
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Shares[0].ObjectVersion != "" || m.Shares[2].ObjectVersion != "01M8N2AV4S1Q27P0GBQZXNGW97" {
		t.Fatalf("object versions %+v", m.Shares)
	}
	if bytes.Count(b, []byte(`"object_version"`)) != 1 {
		t.Fatalf("object_version written where there is none:\n%s", b)
	}
}

func TestSniff(t *testing.T) {
	b, _ := sample().Marshal()
	if !Sniff(b) || !Sniff([]byte("\n  {")) || Sniff([]byte("bk-share")) || Sniff([]byte("/srv/bk\n")) || Sniff(nil) {
		t.Fatal("Sniff")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"backup", "home.v2", "a_b-c"} {
		if CheckName(ok) != nil {
			t.Errorf("refused %q", ok)
		}
	}
	for _, bad := range []string{"", "-x", ".hidden", "a/b", "a b", strings.Repeat("a", 65)} {
		if CheckName(bad) == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestNewestFirst(t *testing.T) {
	a, b, c := sample(), sample(), sample()
	b.Time = a.Time.Add(time.Hour)
	c.ID = a.ID[:len(a.ID)-1] + "f"
	ms := []*Manifest{a, b, c}
	SortNewestFirst(ms)
	if ms[0] != b || ms[1] != c || ms[2] != a {
		t.Fatalf("order %v %v %v", ms[0].ID, ms[1].ID, ms[2].ID)
	}
}

func FuzzParse(f *testing.F) {
	b, _ := sample().Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("marshalled manifest does not parse: %v", err)
		}
		if out2, _ := m2.Marshal(); !bytes.Equal(out, out2) {
			t.Fatal("not stable")
		}
	})
}

func TestRevisionPath(t *testing.T) {
	id := "home.r2-20261101T030000Z-0123abcd"
	for _, rev := range []int{1, 2, 17} {
		gotID, gotRev, ok := ParseManifestPath(RevisionPath(id, rev))
		if !ok || gotID != id || gotRev != rev {
			t.Errorf("revision %d: %s gives %q %d %v", rev, RevisionPath(id, rev), gotID, gotRev, ok)
		}
	}
	for _, bad := range []string{id + ".r1.manifest.json", id + ".r0.manifest.json", id + ".rx.manifest.json", id + ".r2.manifest", "x.r2.manifest.json"} {
		if _, _, ok := ParseManifestPath(bad); ok {
			t.Errorf("%s taken for a manifest's name", bad)
		}
	}
}

// Three backups of one chain made within one second sort child before
// parent whatever their set IDs, so retention's "newest" is the last one.
func TestNewerWithinOneSecond(t *testing.T) {
	full := sample()
	mk := func(set byte, parents ...*Manifest) *Manifest {
		m := sample()
		m.ID = NewID("home", m.Time, [16]byte{set})
		for _, p := range parents {
			m.Ancestors = append(m.Ancestors, Ancestor{ID: p.ID})
		}
		return m
	}
	// Set IDs chosen so that ordering by ID alone puts the parents first.
	full.ID = NewID("home", full.Time, [16]byte{0xff})
	inc1 := mk(0x80, full)
	inc2 := mk(0x01, full, inc1)
	ms := []*Manifest{inc1, full, inc2}
	SortNewestFirst(ms)
	if ms[0] != inc2 || ms[1] != inc1 || ms[2] != full {
		t.Fatalf("order %s %s %s, want %s %s %s", ms[0].ID, ms[1].ID, ms[2].ID, inc2.ID, inc1.ID, full.ID)
	}
}

// Manifests of versions 1 and 2, which pin their shares by SHA-256, and
// of version 3, by the BLAKE3 of the whole file, still read; each version
// takes only its own hash.
func TestOlderVersions(t *testing.T) {
	v3 := sample()
	v3.Version = Version3
	for i := range v3.Shares {
		v3.Shares[i].BLAKE3, v3.Shares[i].MetaBLAKE3 = v3.Shares[i].MetaBLAKE3, ""
	}
	b3, err := v3.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Parse(b3); err != nil || m.Pin() != PinBLAKE3 || m.Shares[0].Sum() != strings.Repeat("01", 32) {
		t.Fatalf("version 3: %v", err)
	}
	if _, err := Parse(bytes.Replace(b3, []byte(`"blake3": "0101`), []byte(`"meta_blake3": "0101`), 1)); err == nil {
		t.Error("a meta BLAKE3 accepted in version 3")
	}

	v1 := sample()
	v1.Version = Version1
	for i := range v1.Shares {
		v1.Shares[i].SHA256, v1.Shares[i].MetaBLAKE3 = v1.Shares[i].MetaBLAKE3, ""
	}
	b, err := v1.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"sha256": "0101`)) || bytes.Contains(b, []byte("blake3")) {
		t.Fatalf("version 1 written as\n%s", b)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Pin(); p.String() != "SHA-256" || p.WholeFile().Size() != 32 || m.Shares[0].Sum() != strings.Repeat("01", 32) || m.Incremental() {
		t.Fatalf("version 1: hash %s, sum %s, incremental %v", p, m.Shares[0].Sum(), m.Incremental())
	}
	s := Share{}
	m.SetSum(&s, bytes.Repeat([]byte{7}, 32))
	if s.SHA256 != strings.Repeat("07", 32) || s.BLAKE3 != "" || s.MetaBLAKE3 != "" {
		t.Fatalf("SetSum in version 1: %+v", s)
	}
	if _, err := Parse(bytes.Replace(b, []byte(`"sha256": "0101`), []byte(`"blake3": "0101`), 1)); err == nil {
		t.Error("a BLAKE3 accepted in version 1")
	}

	// Version 2 is an incremental backup's, chain fields required; from
	// version 3 on they are there or not.
	inc := sample()
	inc.Parent, inc.Chain, inc.Level = "home-20261121T035200Z-00000000", strings.Repeat("cc", 16), 1
	inc.Ancestors = []Ancestor{{ID: inc.Parent, SetID: strings.Repeat("dd", 16), StreamHash: strings.Repeat("ee", 32)}}
	b, err = inc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Parse(b); err != nil || !m.Incremental() {
		t.Fatalf("version 4 incremental: %v", err)
	}
	v2 := *v1
	v2.Version, v2.Parent, v2.Chain, v2.Level, v2.Ancestors = VersionIncremental, inc.Parent, inc.Chain, inc.Level, inc.Ancestors
	if b, err := v2.Marshal(); err != nil {
		t.Fatal(err)
	} else if m, err := Parse(b); err != nil || !m.Incremental() {
		t.Fatalf("version 2: %v", err)
	}
	v2.Chain, v2.Level, v2.Ancestors = "", 0, nil
	if _, err := v2.Marshal(); err == nil {
		t.Error("version 2 without chain fields accepted")
	}
}
