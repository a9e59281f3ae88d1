package catalog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/tombstone"
)

// bury stores a tombstone of m, pruned at t, in the folders dirs.
func bury(t *testing.T, m *manifest.Manifest, at time.Time, dirs ...string) {
	t.Helper()
	data, err := tombstone.For(m, at).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, tombstone.Path(m.ID)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Tombstones count as manifests do: on max(2, k) hosts, of the very
// backup, younger than their lifetime. Hostile hosts keep THREATS.md's row
// "fewer than k colluding hosts: never a hijacked newest".
func TestTombstones(t *testing.T) {
	c, d, warnings := folders(t, 5)
	now := time.Now().UTC()
	t0 := now.Add(-48 * time.Hour).Truncate(time.Second)
	returned := sample("home", t0, 2, 5, 1) // pruned with 2 of 5 hosts down; they returned
	put(t, returned, d[3], d[4])
	bury(t, returned, now.Add(-time.Hour), d[0], d[1], d[2])
	forged := sample("home", t0.Add(time.Hour), 3, 5, 2) // one host buries a backup of k=3...
	put(t, forged, d...)
	bury(t, forged, now, d[0])
	twoOfThree := sample("home", t0.Add(2*time.Hour), 3, 5, 3) // ...or two do, short of k=3
	put(t, twoOfThree, d...)
	bury(t, twoOfThree, now, d[0], d[1])
	other := sample("home", t0.Add(3*time.Hour), 2, 5, 4) // tombstones of another set under its ID
	put(t, other, d...)
	impostor := *other
	impostor.SetID = "ff" + other.SetID[2:]
	bury(t, &impostor, now, d[0], d[1], d[2])
	expired := sample("home", t0.Add(4*time.Hour), 2, 5, 5)
	put(t, expired, d[3], d[4])
	bury(t, expired, now.Add(-tombstone.Lifetime-time.Hour), d[0], d[1], d[2])

	backups := c.Backups(c.List(context.Background(), c.Hosts(), nil))
	state := map[string]*Backup{}
	for _, b := range backups {
		state[b.ID] = b
	}
	if b := state[returned.ID]; b.Counts || b.Pruned == nil || !b.Pruned.Counted || len(b.Pruned.Holders) != 3 {
		t.Errorf("returned: counts %v, pruned %+v", b.Counts, b.Pruned)
	}
	for _, m := range []*manifest.Manifest{forged, twoOfThree, other, expired} {
		if b := state[m.ID]; !b.Counts || b.Pruned != nil {
			t.Errorf("%s: counts %v, pruned %+v", m.ID, b.Counts, b.Pruned)
		}
	}
	// The newest that counts is taken, the buried one is not brought back.
	if b, err := c.Pick(backups, Query{Name: "home", Before: t0.Add(time.Minute)}); err == nil {
		t.Errorf("picked %s, a pruned backup", b.ID)
	}
	if b, err := c.Pick(backups, Query{ID: returned.ID}); err != nil || b.ID != returned.ID {
		t.Errorf("asked for by ID: %v, %v", b, err)
	}
	if warnings.Len() == 0 {
		t.Errorf("no warning for a pruned backup taken by ID")
	}
}

// ListBackups reads the tombstones of the backups whose manifests a host
// holds, which Backups weighs, and not the others: bk-prune leaves one a
// pruned backup on every host for 90 days, and a tool reading every
// backup read them all each night. List reads them all (bk-prune removes
// the old ones).
func TestListBackupsReadsTheTombstonesThatWeigh(t *testing.T) {
	t.Parallel()
	_, d, _ := folders(t, 3)
	now := time.Now().UTC()
	t0 := now.Add(-48 * time.Hour).Truncate(time.Second)
	returned := sample("home", t0, 2, 3, 1) // back on a host that was down
	put(t, returned, d[2])
	bury(t, returned, now.Add(-time.Hour), d[0], d[1])
	kept := sample("home", t0.Add(time.Hour), 2, 3, 2)
	put(t, kept, d...)
	for i := range 20 { // pruned and gone
		bury(t, sample("home", t0.Add(-time.Duration(i+1)*time.Hour), 2, 3, byte(10+i)), now, d...)
	}
	var n counter
	var warnings strings.Builder
	c := countedCatalog(d, &n, &warnings)
	defer c.Close()
	backups := c.Backups(c.ListBackups(context.Background(), c.Hosts()))
	if opens := n.opens.Load(); opens != 4+2 {
		t.Errorf("ListBackups opened %d files, want the 4 manifests and the 2 tombstones of a backup held", opens)
	}
	if len(backups) != 2 || backups[1].ID != returned.ID || backups[1].Pruned == nil || backups[1].Counts || !backups[0].Counts {
		t.Errorf("backups %v: want %s counting and %s pruned", backups, kept.ID, returned.ID)
	}
	graves := 0
	for _, l := range c.List(context.Background(), c.Hosts(), nil) {
		graves += len(l.Tombstones)
	}
	if graves != 2+3*20 {
		t.Errorf("List read %d tombstones, want all 62", graves)
	}
}
