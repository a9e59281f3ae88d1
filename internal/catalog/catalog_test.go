package catalog

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/shard"
)

// folders makes n empty host folders and a catalog of them.
func folders(t *testing.T, n int) (*Catalog, []string, *strings.Builder) {
	t.Helper()
	var dirs []string
	var hosts []hostsfile.Host
	for i := range n {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("h%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: dir}})
	}
	var warnings strings.Builder
	c := New(hosts, Options{Warn: func(format string, args ...any) { fmt.Fprintf(&warnings, format+"\n", args...) }})
	t.Cleanup(c.Close)
	return c, dirs, &warnings
}

func sample(name string, t time.Time, k, n int, seed byte) *manifest.Manifest {
	setID := [16]byte{seed}
	return &manifest.Manifest{
		Format: manifest.Format, Version: manifest.Version,
		ID: manifest.NewID(name, t, setID), Name: name, Time: t,
		K: k, N: n, BlockSize: 4096, SetID: hex.EncodeToString(setID[:]),
		StreamSize: 1000, StreamHash: strings.Repeat("ab", 32),
	}
}

// put stores m's manifest in the folders dirs.
func put(t *testing.T, m *manifest.Manifest, dirs ...string) {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, manifest.ManifestPath(m.ID)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBackupsJudge(t *testing.T) {
	c, d, _ := folders(t, 5)
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	old := sample("home", t0, 3, 5, 1)
	put(t, old, d...)
	lone := sample("home", t0.Add(time.Hour), 1, 2, 2) // one host plants k=1
	put(t, lone, d[4])
	lowered := sample("home", t0.Add(2*time.Hour), 2, 3, 3) // two plant k=2
	put(t, lowered, d[3], d[4])
	changed := sample("home", t0.Add(3*time.Hour), 2, 3, 4) // the user's own change
	put(t, changed, d[0], d[1], d[2])
	later := sample("home", t0.Add(4*time.Hour), 2, 3, 5)
	put(t, later, d[0], d[1])

	backups := c.Backups(c.List(context.Background(), c.Hosts(), nil))
	counts := map[string]bool{}
	for _, b := range backups {
		counts[b.ID] = b.Counts
	}
	want := map[string]bool{old.ID: true, lone.ID: false, lowered.ID: false, changed.ID: true, later.ID: true}
	for id, w := range want {
		if counts[id] != w {
			t.Errorf("%s counts %v, want %v", id, counts[id], w)
		}
	}
	if backups[0].ID != later.ID || len(backups) != 5 {
		t.Fatalf("order: %v", backups)
	}
}

func TestPick(t *testing.T) {
	c, d, warnings := folders(t, 3)
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	good := sample("home", t0, 2, 3, 1)
	put(t, good, d...)
	forged := sample("home", t0.Add(time.Hour), 1, 2, 2)
	put(t, forged, d[2])
	other := sample("db", t0.Add(2*time.Hour), 2, 3, 3)
	put(t, other, d...)
	backups := c.Backups(c.List(context.Background(), c.Hosts(), nil))

	for _, tt := range []struct {
		q    Query
		want string
		warn string
	}{
		{Query{}, other.ID, ""},
		{Query{Name: "home"}, good.ID, "backup " + forged.ID + " on " + d[2] + " does not count: it stands on 1 of the 2 hosts a backup with k=1 needs; skipped"},
		{Query{ID: forged.ID}, forged.ID, "taken as asked"},
	} {
		warnings.Reset()
		b, err := c.Pick(backups, tt.q)
		if err != nil || b.ID != tt.want {
			t.Errorf("Pick(%+v) = %v, %v; want %s", tt.q, b, err, tt.want)
		}
		if !strings.Contains(warnings.String(), tt.warn) || (tt.warn == "") != (warnings.Len() == 0) {
			t.Errorf("Pick(%+v) warned %q, want %q", tt.q, warnings, tt.warn)
		}
	}
	var nf *NotFoundError
	if _, err := c.Pick(backups, Query{Name: "nosuch"}); !errors.As(err, &nf) {
		t.Errorf("unknown name: %v", err)
	}
}

// A lone folder given as a host counts its own manifests: the user chose it.
func TestOneHostCounts(t *testing.T) {
	c, d, _ := folders(t, 1)
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 2, 3, 1)
	put(t, m, d[0])
	if b := c.Backups(c.List(context.Background(), c.Hosts(), nil)); len(b) != 1 || !b[0].Counts {
		t.Fatalf("got %+v", b)
	}
}

func TestListing(t *testing.T) {
	c, d, _ := folders(t, 2)
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 2, 3, 1)
	put(t, m, d[0])
	for name, text := range map[string]string{
		manifest.SharePath(m.ID, 0):                             "share",
		".tmp-0123456789abcdef-x.share1":                        "temp",
		"home-20000101T000000Z-00000000.manifest.json":          "{}",
		manifest.ManifestPath("home-20000102T000000Z-0000000f"): string(must(m.Marshal())),
	} {
		if err := os.WriteFile(filepath.Join(d[0], name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(d[1]); err != nil {
		t.Fatal(err)
	}
	ls := c.List(context.Background(), c.Hosts(), nil)
	l := ls[0]
	if l.Err != nil || len(l.Manifests) != 1 || len(l.Damaged) != 2 || len(l.Temp) != 1 || len(l.Files) != 1 {
		t.Fatalf("listing %+v", l)
	}
	if !strings.Contains(l.Damaged[1].Error(), "holds the manifest of "+m.ID) {
		t.Errorf("a manifest under another ID's name: %v", l.Damaged[1])
	}
	if ls[1].Err == nil || !c.Hosts()[1].Failed() {
		t.Errorf("missing folder listed: %+v", ls[1])
	}
	// only picks which manifests are read.
	if l := c.List(context.Background(), c.Hosts()[:1], func(string) bool { return false })[0]; len(l.Manifests)+len(l.Damaged) != 0 {
		t.Errorf("only=false read manifests: %+v", l)
	}
}

// The copies of a manifest on its hosts are the same bytes, parsed once:
// a tool that reads every manifest spent a quarter of its CPU time
// parsing each backup's five copies. A copy whose bytes differ (a host's
// forgery) is parsed for itself, and is none of theirs.
func TestCopiesParsedOnce(t *testing.T) {
	t.Parallel()
	c, d, _ := folders(t, 5)
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 3, 5, 1)
	put(t, m, d[:4]...)
	forged := *m
	forged.StreamSize++
	put(t, &forged, d[4])
	ls := c.List(context.Background(), c.Hosts(), nil)
	for i, l := range ls {
		if len(l.Manifests) != 1 {
			t.Fatalf("host %d: %d manifests read, want 1", i, len(l.Manifests))
		}
	}
	for i, l := range ls[1:4] {
		if l.Manifests[0].Manifest != ls[0].Manifests[0].Manifest {
			t.Errorf("host %d's copy, the same bytes as host 0's, was parsed again", i+1)
		}
	}
	if got := ls[4].Manifests[0]; got.Manifest == ls[0].Manifests[0].Manifest || got.StreamSize != forged.StreamSize {
		t.Errorf("the forged copy reads as the others: stream size %d", got.StreamSize)
	}
	if b := c.Backups(ls); len(b) != 1 || !b[0].Counts || b[0].HolderNames() != strings.Join(d[:4], ", ") {
		t.Errorf("backups %v, want the one on hosts 0 to 3, counting", b)
	}
}

// A manifest is read in one read, sized by its listed size, and the one
// that finds its end: a chain's manifest names every ancestor, and each
// read is a request on an SFTP host.
func TestManifestReadWhole(t *testing.T) {
	t.Parallel()
	_, d, _ := folders(t, 2)
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 2, 2, 1)
	for i := range 60 {
		m.Ancestors = append(m.Ancestors, manifest.Ancestor{ID: manifest.NewID("home", m.Time.AddDate(0, 0, -60+i), [16]byte{byte(i)}),
			SetID: strings.Repeat("0", 32), StreamHash: strings.Repeat("1", 64)})
	}
	m.Chain, m.Level, m.Parent = strings.Repeat("c", 32), 60, m.Ancestors[59].ID
	put(t, m, d...)
	if fi, err := os.Stat(filepath.Join(d[0], manifest.ManifestPath(m.ID))); err != nil || fi.Size() < 8<<10 {
		t.Fatalf("the manifest is %v bytes (%v), want more than 8 KiB", fi.Size(), err)
	}
	var n counter
	var warnings strings.Builder
	c := countedCatalog(d, &n, &warnings)
	defer c.Close()
	b := c.Backups(c.List(context.Background(), c.Hosts(), nil))
	if len(b) != 1 || !b[0].Counts || len(b[0].Ancestors) != 60 {
		t.Fatalf("backups %v, want the one of 60 ancestors, counting (%s)", b, warnings.String())
	}
	if reads := n.reads.Load(); reads != 2*2 {
		t.Errorf("2 copies of the manifest took %d reads, want 2 each", reads)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestHoldWriter(t *testing.T) {
	var out bytes.Buffer
	h := &holdWriter{w: &out, hold: 4, limit: 10}
	for _, p := range []string{"abc", "defg", "hij"} {
		if _, err := h.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "abcdef" {
		t.Fatalf("passed on %q before the check, want the last 4 bytes held", out.String())
	}
	if _, err := h.Write([]byte("k")); !errors.Is(err, ErrNotManifest) {
		t.Fatalf("past the limit: %v", err)
	}
	if err := h.flush(); err != nil || out.String() != "abcdefghij" {
		t.Fatalf("flush: %q, %v", out.String(), err)
	}
}

// Shares are found on every host listed, the named one first; a host that
// only the manifest names is read where it says.
func TestPlaceAndSources(t *testing.T) {
	c, d, _ := folders(t, 3)
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 2, 3, 1)
	away := t.TempDir()
	for i, dir := range []string{d[0], d[1], away} {
		s := manifest.Share{Index: i, Host: local.Location{Path: dir}.URL(), Path: manifest.SharePath(m.ID, i), Size: 5, MetaBLAKE3: strings.Repeat("cd", 32)}
		m.Shares = append(m.Shares, s)
	}
	// Share 0 also stands on d[2] (a copy), share 1 moved to d[2].
	for _, f := range []string{filepath.Join(d[0], m.Shares[0].Path), filepath.Join(d[2], m.Shares[0].Path), filepath.Join(d[2], m.Shares[1].Path), filepath.Join(away, m.Shares[2].Path)} {
		if err := os.WriteFile(f, []byte("share"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	listings := c.List(context.Background(), c.Hosts(), nil)
	// Listed twice, as bk-join lists again to find a chain: each host counts once.
	listings = append(listings, c.List(context.Background(), c.Hosts(), nil)...)
	placed, err := c.Place(m, listings)
	if err != nil {
		t.Fatal(err)
	}
	hostsOf := func(p Placed) (out []string) {
		for _, f := range p.Found {
			out = append(out, filepath.Base(f.Host.String()))
		}
		return out
	}
	if got := hostsOf(placed[0]); strings.Join(got, " ") != "h0 h2" || placed[0].Found[0].Info.Size != 5 {
		t.Errorf("share 0 found on %v", got)
	}
	if got := hostsOf(placed[1]); strings.Join(got, " ") != "h2" || !placed[1].Listed {
		t.Errorf("share 1 found on %v", got)
	}
	if len(placed[2].Found) != 0 || placed[2].Listed {
		t.Errorf("share 2: %+v", placed[2])
	}
	sources, err := c.Sources(m, listings)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sources {
		names = append(names, filepath.Base(strings.TrimPrefix(s.Name(), "host ")))
	}
	want := "h0 h2 h2 " + filepath.Base(away)
	if strings.Join(names, " ") != want {
		t.Fatalf("sources on %v, want %s", names, want)
	}
	rc, err := sources[3].Open(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "hare" {
		t.Fatalf("read %q from offset 1", b)
	}
}

// A later revision that counts supersedes the first; one that changes more
// than the shares' places does not count, and is left out where a
// revision that counts stands.
func TestRevisions(t *testing.T) {
	c, d, _ := folders(t, 3)
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 2, 3, 1)
	m.Shares = []manifest.Share{{Index: 0, Host: "file:///a", Path: "x.share0", Size: 1, MetaBLAKE3: strings.Repeat("00", 32)}}
	put(t, m, d...)
	r2 := *m
	r2.Revision = 2
	r2.Shares = []manifest.Share{{Index: 0, Host: "file:///b", Path: "x.share0", Size: 1, MetaBLAKE3: strings.Repeat("00", 32)}}
	putRev := func(m *manifest.Manifest, dirs ...string) {
		for _, dir := range dirs {
			if err := os.WriteFile(filepath.Join(dir, manifest.RevisionPath(m.ID, m.Rev())), must(m.Marshal()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	putRev(&r2, d[0], d[1])
	forged := r2
	forged.Revision = 3
	forged.StreamHash = strings.Repeat("cd", 32)
	putRev(&forged, d...)
	backups := c.Backups(c.List(context.Background(), c.Hosts(), nil))
	var got []string
	for _, b := range backups {
		got = append(got, fmt.Sprintf("r%d %v", b.Rev(), b.Counts))
	}
	if !slices.Equal(got, []string{"r2 true"}) {
		t.Fatalf("got %v, want revision 2 alone: it supersedes 1, and the forged 3 does not count", got)
	}
	if b, err := c.Pick(backups, Query{Name: "home"}); err != nil || b.Rev() != 2 || b.Shares[0].Host != "file:///b" {
		t.Fatalf("picked %+v, %v", b, err)
	}
}

// backupIn splits data 2 of 3 into the folders dirs, one share each, and
// returns the manifest of it.
func backupIn(t *testing.T, data []byte, dirs []string) *manifest.Manifest {
	t.Helper()
	bufs := make([]bytes.Buffer, len(dirs))
	ws := make([]io.Writer, len(dirs))
	for i := range bufs {
		ws[i] = &bufs[i]
	}
	info, trailer, err := shard.Split(context.Background(), bytes.NewReader(data), ws, shard.SplitOptions{K: 2, N: len(dirs), BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	m := sample("home", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), 2, len(dirs), 1)
	m.BlockSize, m.SetID, m.StreamSize = 1024, info.ID(), trailer.Length
	m.StreamHash = hex.EncodeToString(trailer.StreamHash[:])
	for i, dir := range dirs {
		s := manifest.Share{Index: i, Host: local.Location{Path: dir}.URL(), Path: manifest.SharePath(m.ID, i), Size: int64(bufs[i].Len()), MetaBLAKE3: strings.Repeat("cd", 32)}
		if err := os.WriteFile(filepath.Join(dir, s.Path), bufs[i].Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		m.Shares = append(m.Shares, s)
	}
	return m
}

// OpenAt reads any range of a backup's stream from its hosts, and holds
// the shares to the manifest.
func TestOpenAt(t *testing.T) {
	c, d, _ := folders(t, 3)
	data := make([]byte, 50_000)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	m := backupIn(t, data, d)
	sources, err := c.Sources(m, c.List(context.Background(), c.Hosts(), nil))
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenAt(context.Background(), m, sources[1:], shard.ReadAtOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 3000)
	if n, err := r.ReadAt(p, 20_000); err != nil || n != len(p) || !bytes.Equal(p, data[20_000:23_000]) || r.Size() != int64(len(data)) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !r.Report().Degraded() {
		t.Fatal("share 0 missing, yet not degraded")
	}

	other := *m
	other.StreamHash = strings.Repeat("ab", 32)
	if _, err := OpenAt(context.Background(), &other, sources, shard.ReadAtOptions{}); err == nil || !strings.Contains(err.Error(), "say the stream is 50000 bytes") {
		t.Fatalf("another stream hash: err = %v", err)
	}
	other = *m
	other.SetID = strings.Repeat("0f", 16)
	if _, err := OpenAt(context.Background(), &other, sources, shard.ReadAtOptions{}); !errors.Is(err, ErrNotManifest) || !strings.Contains(err.Error(), "no share of set 0f0f0f0f") {
		t.Fatalf("another set: err = %v", err)
	}
}
