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
			{Index: 0, Host: "file:///mnt/usb/bk", Path: SharePath(NewID("home", t, setID), 0), Size: 100, SHA256: strings.Repeat("01", 32)},
			{Index: 2, Host: "sftp://bk@nas:2222/srv/bk", Path: SharePath(NewID("home", t, setID), 2), Size: 100, SHA256: strings.Repeat("02", 32)},
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
		`"version": 1`:   `"version": 2`,
		`"bk-manifest"`:  `"other"`,
		`"index": 2`:     `"index": 3`,
		`"index": 0`:     `"index": 2`,
		`"k": 2`:         `"k": 3`,
		`"path": "home-`: `"path": "../home-`,
		`"name": "home"`: `"name": "work"`,
		`"set_id": "3f`:  `"set_id": "zz`,
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
