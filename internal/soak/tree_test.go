package soak

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// The comparison the soak rests on must see every kind of change the tree
// goes through, and take a file grown while read only as a prefix of what
// it became.
func TestDiffSeesChanges(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	tr := &tree{root: root, rng: rand.New(rand.NewPCG(1, 2))}
	if err := tr.seed(); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, bigFile), filepath.Join(root, "big.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bigFile, filepath.Join(root, "big.sym")); err != nil {
		t.Fatal(err)
	}
	want, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	grown := []byte("log starts\nmore\n")
	same, _ := Scan(root)
	if d := Diff(want, same, liveFile, grown, 10); len(d) > 0 {
		t.Fatalf("a tree differs from itself: %v", d)
	}
	changes := map[string]func(Manifest){
		"content": func(m Manifest) { e := m[bigFile]; e.Hash = "x"; m[bigFile] = e },
		"mode":    func(m Manifest) { e := m["d0"]; e.Mode = 0o700; m["d0"] = e },
		"link":    func(m Manifest) { e := m["big.link"]; e.Links = ""; m["big.link"] = e },
		"target":  func(m Manifest) { e := m["big.sym"]; e.Target = "other"; m["big.sym"] = e },
		"missing": func(m Manifest) { delete(m, "d1") },
		"extra":   func(m Manifest) { m["new"] = Entry{Type: 'f'} },
		"grown beyond": func(m Manifest) {
			e := m[liveFile]
			e.Size = int64(len(grown)) + 1
			m[liveFile] = e
		},
	}
	for name, change := range changes {
		got, _ := Scan(root)
		change(got)
		if d := Diff(want, got, liveFile, grown, 10); len(d) == 0 {
			t.Errorf("%s: no difference seen", name)
		}
	}
	// The log grown while read: a longer prefix passes, other bytes don't.
	if err := os.WriteFile(filepath.Join(root, liveFile), grown[:14], 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ := Scan(root)
	if d := Diff(want, got, liveFile, grown, 10); len(d) > 0 {
		t.Errorf("a prefix of the grown log: %v", d)
	}
	if err := os.WriteFile(filepath.Join(root, liveFile), []byte("log starts\nmorX"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ = Scan(root)
	if d := Diff(want, got, liveFile, grown, 10); len(d) != 1 || !strings.Contains(d[0], "not a prefix") {
		t.Errorf("a log that is no prefix: %v", d)
	}
}

// A replay meets the same events: the plan depends on the seed alone.
func TestPlanFromSeed(t *testing.T) {
	t.Parallel()
	a, b := makePlan(7, 365, false), makePlan(7, 365, false)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans of one seed differ")
	}
	var die, stale, rot int
	for _, n := range a {
		if n.die != "" {
			die++
		}
		if n.stale != "" {
			stale++
		}
		rot += n.rot
	}
	if die != 1 || stale != 1 || rot < 50 {
		t.Errorf("a year's plan: %d deaths, %d stale returns, %d bytes rotted", die, stale, rot)
	}
}

// A failure's replay runs as many nights: the plan is laid out over them,
// and a run of fewer (NIGHTS=night+1, as it once said) met other faults.
func TestReplayKeepsNights(t *testing.T) {
	t.Parallel()
	f := &Failure{Seed: 1, Nights: 365, Night: 1, Date: "2030-01-08", What: "bk-backup failed"}
	if want := "replay: make soak SEED=1 FROM=1 NIGHTS=365\n"; !strings.Contains(f.Error()+"\n", want) {
		t.Errorf("the replay line of %q is not %q", f.Error(), want)
	}
}

// A scan takes an earlier scan's hash of a file only while the file is the
// one hashed: rewritten in place with its size and mtime kept, or written
// in the tick of the earlier scan, it is hashed again.
func TestScanReusesHashes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("hashes are reused on Linux only")
	}
	root := t.TempDir()
	for _, name := range []string{"kept", "rewritten"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("before"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, h, err := (*hashes)(nil).scan(root)
	if err != nil {
		t.Fatal(err)
	}
	// The earlier scan holds a hash no file has: where it shows, it was
	// reused.
	for name, f := range h.files {
		f.hash = "reused"
		h.files[name] = f
	}
	// Written in the tick of that scan: not reused.
	m, _, err := h.scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if m["kept"].Hash == "reused" {
		t.Fatal("the hash of a file as new as the scan that made it was reused")
	}
	h.began += 2 * racyMargin // the files now look older than the scan
	p := filepath.Join(root, "rewritten")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("after!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	m, _, err = h.scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if m["kept"].Hash != "reused" {
		t.Errorf("an unchanged file was hashed again")
	}
	if want, _ := hashFile(p); m["rewritten"].Hash != want {
		t.Errorf("a file rewritten with its size and mtime kept has hash %s; want %s", m["rewritten"].Hash, want)
	}
}
