package catalog

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/tombstone"
)

// counter counts what a catalog asks of its hosts.
type counter struct {
	lists, opens, stats, reads atomic.Int64
}

func (n *counter) String() string {
	return fmt.Sprintf("%d lists, %d opens, %d stats", n.lists.Load(), n.opens.Load(), n.stats.Load())
}

// counted is a host that counts the requests it serves.
type counted struct {
	remote.Remote
	n *counter
}

func (c counted) List(ctx context.Context, dir string) ([]remote.Info, error) {
	c.n.lists.Add(1)
	return c.Remote.List(ctx, dir)
}

func (c counted) ListTemp(ctx context.Context, dir string) ([]remote.Info, error) {
	c.n.lists.Add(1)
	return c.Remote.ListTemp(ctx, dir)
}

func (c counted) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	c.n.opens.Add(1)
	rc, err := c.Remote.Open(ctx, name, offset)
	if err != nil {
		return nil, err
	}
	return countedReads{rc, c.n}, nil
}

// countedReads counts the reads of a file (a request each on an SFTP
// host).
type countedReads struct {
	io.ReadCloser
	n *counter
}

func (c countedReads) Read(p []byte) (int, error) {
	c.n.reads.Add(1)
	return c.ReadCloser.Read(p)
}

func (c counted) Stat(ctx context.Context, name string) (remote.Info, error) {
	c.n.stats.Add(1)
	return c.Remote.Stat(ctx, name)
}

// countedCatalog is a new catalog of the folders dirs whose requests n
// counts.
func countedCatalog(dirs []string, n *counter, warnings *strings.Builder) *Catalog {
	var hosts []hostsfile.Host
	for _, d := range dirs {
		hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: d}})
	}
	return New(hosts, Options{
		Connect: func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
			r, err := h.Dial(ctx, remote.DialOptions{})
			return counted{r, n}, err
		},
		Warn: func(format string, args ...any) { fmt.Fprintf(warnings, format+"\n", args...) },
	})
}

// nightly stores nights backups of name, one a day, k=2 n=3, each on the
// first three folders of d, the last few levels of a chain after a full
// one every week.
func nightly(t *testing.T, d []string, name string, nights int) []*manifest.Manifest {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 2, 30, 0, 0, time.UTC)
	var out []*manifest.Manifest
	var full []*manifest.Manifest // the chain so far
	for i := range nights {
		m := sample(name, t0.AddDate(0, 0, i), 2, 3, byte(i+1))
		if i%7 != 0 {
			m.Chain, m.Level, m.Parent = strings.Repeat("c", 32), len(full), full[len(full)-1].ID
			for _, a := range full {
				m.Ancestors = append(m.Ancestors, manifest.Ancestor{ID: a.ID, SetID: a.SetID, StreamHash: a.StreamHash})
			}
		} else {
			full = nil
		}
		full = append(full, m)
		put(t, m, d[:3]...)
		for i, dir := range d[:3] {
			if err := os.WriteFile(filepath.Join(dir, manifest.SharePath(m.ID, i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, m)
	}
	return out
}

// The tools that want one backup read its manifests alone, and a chain
// its members': the count of files opened is what a run of each costs,
// whatever the number of backups on the hosts.
func TestFindReadsOnlyWhatItNeeds(t *testing.T) {
	_, d, _ := folders(t, 4) // three take each backup, the fourth is a spare
	const nights = 40
	ms := nightly(t, d, "home", nights)
	other := nightly(t, d, "db", 3)
	for _, tt := range []struct {
		what  string
		find  func(c *Catalog) (string, error)
		opens int64
	}{
		{"newest", func(c *Catalog) (string, error) {
			b, _, err := c.Find(context.Background(), Query{Name: "home"})
			return idOf(b), err
		}, 3},
		{"by ID", func(c *Catalog) (string, error) {
			b, _, err := c.Find(context.Background(), Query{ID: ms[10].ID})
			return idOf(b), err
		}, 3},
		{"before", func(c *Catalog) (string, error) {
			b, _, err := c.Find(context.Background(), Query{Name: "home", Before: ms[20].Time})
			return idOf(b), err
		}, 3},
		{"newest of any name", func(c *Catalog) (string, error) {
			b, _, err := c.Find(context.Background(), Query{})
			return idOf(b), err
		}, 3},
		{"newest full", func(c *Catalog) (string, error) {
			return idOf(c.FindNewest(context.Background(), c.Hosts()[:3], "home", (*manifest.Manifest).Full)), nil
		}, 3 * int64((nights-1)%7+1)},
		{"with ancestors", func(c *Catalog) (string, error) {
			backups, listings := c.WithAncestors(context.Background(), c.Hosts(), ms[nights-1].ID)
			for _, l := range listings {
				if orphans := OrphanShares(listings, l); len(orphans) > 0 {
					return "", fmt.Errorf("orphans %v", orphans)
				}
			}
			return idOf(backups[len(backups)-1]), nil
		}, 3 * int64((nights-1)%7+1)},
		{"chain", func(c *Catalog) (string, error) {
			b, _, err := c.Find(context.Background(), Query{Name: "home"})
			if err != nil {
				return "", err
			}
			chain, _, err := c.Chain(context.Background(), b.Manifest)
			return idOf(&Backup{Manifest: chain[0]}), err
		}, 3 * int64((nights-1)%7+1)},
	} {
		var n counter
		var warnings strings.Builder
		c := countedCatalog(d, &n, &warnings)
		got, err := tt.find(c)
		c.Close()
		want := map[string]string{"newest": ms[nights-1].ID, "by ID": ms[10].ID, "before": ms[19].ID,
			"newest of any name": ms[nights-1].ID, "newest full": ms[(nights-1)/7*7].ID, "with ancestors": ms[(nights-1)/7*7].ID, "chain": ms[(nights-1)/7*7].ID}[tt.what]
		if tt.what == "newest of any name" && other[2].Time.After(ms[nights-1].Time) {
			want = other[2].ID
		}
		if err != nil || got != want {
			t.Errorf("%s: got %s, %v; want %s", tt.what, got, err, want)
		}
		lists := 2 * int64(len(d))
		if tt.what == "newest full" {
			lists = 2 * 3 // bk-push looks at the first n hosts
		}
		if n.opens.Load() != tt.opens || n.lists.Load() != lists || n.stats.Load() != 0 {
			t.Errorf("%s: %v; want %d opens, %d lists, no stats", tt.what, &n, tt.opens, lists)
		}
		if warnings.Len() > 0 {
			t.Errorf("%s: warned %s", tt.what, &warnings)
		}
	}
}

func idOf(b *Backup) string {
	if b == nil {
		return ""
	}
	return b.ID
}

// A backup on fewer hosts than an older one of its name could be held to
// that one's k (reading rule 3), so Find reads the name's history then;
// and chooses what reading everything chooses.
func TestFindReadsHistoryForRule3(t *testing.T) {
	_, d, _ := folders(t, 5)
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	old := sample("db", t0, 3, 5, 1)
	put(t, old, d...)
	mid := sample("db", t0.Add(time.Hour), 3, 5, 2)
	put(t, mid, d...)
	lowered := sample("db", t0.Add(2*time.Hour), 2, 3, 3) // two hosts plant k=2
	put(t, lowered, d[3], d[4])
	var n counter
	var warnings strings.Builder
	c := countedCatalog(d, &n, &warnings)
	defer c.Close()
	b, _, err := c.Find(context.Background(), Query{Name: "db"})
	if err != nil || b.ID != mid.ID {
		t.Fatalf("got %v, %v; want %s", b, err, mid.ID)
	}
	if !strings.Contains(warnings.String(), "its k=2 n=3 differ from k=3 n=5") {
		t.Errorf("warned %q", &warnings)
	}
	if got := n.opens.Load(); got != 12 { // each manifest once
		t.Errorf("%d opens, want 12", got)
	}
}

// With a spare, backups stand on n of the hosts, and a revision bk-repair
// stored on all of them stands taller than every later backup: Find reads
// that revision to learn its k, not the name's whole history, and still
// chooses as reading everything does; a taller one whose k is above the
// backup's copies sends it to the history.
func TestFindReadsTallerRevisionsOnly(t *testing.T) {
	_, d, _ := folders(t, 4) // three take each backup, the fourth is a spare
	const nights = 30
	ms := nightly(t, d, "home", nights)
	r2 := *ms[3]
	r2.Revision = 2
	data, err := r2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range d {
		if err := os.WriteFile(filepath.Join(dir, manifest.RevisionPath(r2.ID, 2)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	find := func(q Query) (*Backup, int64, string) {
		var n counter
		var warnings strings.Builder
		c := countedCatalog(d, &n, &warnings)
		defer c.Close()
		b, _, err := c.Find(context.Background(), q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		return b, n.opens.Load(), warnings.String()
	}
	b, opens, warned := find(Query{ID: ms[20].ID})
	if warned != "" {
		t.Errorf("warned %s", warned)
	}
	if b.ID != ms[20].ID || !b.Counts || opens != 3+3+4 {
		t.Errorf("got %s counts=%v after %d opens; want %s after 10 (its 3 copies, the revised backup's 3 and 4)", b.ID, b.Counts, opens, ms[20].ID)
	}
	// The same revision with k=4: it could hold later backups to k=4.
	r2.K, r2.N = 4, 6
	data, err = r2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range d {
		if err := os.WriteFile(filepath.Join(dir, manifest.RevisionPath(r2.ID, 2)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, opens, warned = find(Query{ID: ms[20].ID})
	if b.Counts || !strings.Contains(warned, "its k=2 n=3 differ from k=4 n=6") || opens != 3*nights+4 {
		t.Errorf("counts=%v after %d opens, warned %q; want every manifest of the name read (%d), and the backup held to k=4", b.Counts, opens, warned, 3*nights+4)
	}
}

// A manifest whose time is not its ID's is damaged: readers go by the
// names, and a forger could otherwise sort an old ID first.
func TestManifestTimeOfID(t *testing.T) {
	c, d, _ := folders(t, 3)
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	good := sample("home", t0.Add(time.Hour), 2, 3, 1)
	put(t, good, d...)
	forged := sample("home", t0, 2, 3, 2)
	forged.Time = t0.Add(48 * time.Hour)
	put(t, forged, d...)
	listings := c.List(context.Background(), c.Hosts(), nil)
	if b := c.Backups(listings); len(b) != 1 || b[0].ID != good.ID {
		t.Errorf("backups %v", b)
	}
	if len(listings[0].Damaged) != 1 || !strings.Contains(listings[0].Damaged[0].Error(), "is not the one its ID carries") {
		t.Errorf("damaged: %v", listings[0].Damaged)
	}
}

// withoutPassedOver is warnings without those of later revisions passed
// over (settle's).
func withoutPassedOver(warnings string) string {
	var out strings.Builder
	for line := range strings.Lines(warnings) {
		if !strings.HasSuffix(strings.TrimSpace(line), "; passed over") {
			out.WriteString(line)
		}
	}
	return out.String()
}

// Find chooses, and warns, exactly as Pick over every manifest does, in
// random mixes of honest backups, forged copies and revisions, changed
// splits, tombstones and damaged files.
func TestFindAsPick(t *testing.T) {
	t.Parallel()
	found := 0
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		hosts := 3 + rng.IntN(4)
		_, d, _ := folders(t, hosts)
		ms := randomHosts(t, rng, d)
		var queries []Query
		for _, name := range []string{"a", "b", ""} {
			queries = append(queries, Query{Name: name})
		}
		for _, m := range ms {
			queries = append(queries, Query{ID: m.ID}, Query{Name: m.Name, Before: m.Time})
		}
		var n counter
		var all strings.Builder
		full := countedCatalog(d, &n, &all)
		backups := full.Backups(full.List(context.Background(), full.Hosts(), nil))
		wantNewest := Newest(full.Backups(full.List(context.Background(), full.Hosts()[:2], nil)), "a", (*manifest.Manifest).Full)
		full.Close()
		settled := all.String()
		for _, q := range queries {
			all.Reset()
			want, werr := full.Pick(backups, q)
			var narrow strings.Builder
			c := countedCatalog(d, &n, &narrow)
			got, _, err := c.Find(context.Background(), q)
			c.Close()
			// Later revisions that do not count are warned of as they are
			// read (Backups read them all before the loop): Find reads fewer.
			if fmt.Sprint(err) != fmt.Sprint(werr) || describe(got) != describe(want) || withoutPassedOver(narrow.String()) != all.String() {
				t.Fatalf("seed %d, %+v: Find = %s, %v, warned\n%s\nPick = %s, %v, warned\n%s", seed, q, describe(got), err, &narrow, describe(want), werr, &all)
			}
			for line := range strings.Lines(narrow.String()) {
				if strings.HasSuffix(strings.TrimSpace(line), "; passed over") && !strings.Contains(settled, line) {
					t.Fatalf("seed %d, %+v: Find warned %q, which Backups did not", seed, q, line)
				}
			}
			if got != nil {
				found++
			}
		}
		c := countedCatalog(d, &n, &all)
		if got := c.FindNewest(context.Background(), c.Hosts()[:2], "a", (*manifest.Manifest).Full); describe(got) != describe(wantNewest) {
			t.Fatalf("seed %d: FindNewest = %s, Newest = %s", seed, describe(got), describe(wantNewest))
		}
		c.Close()
	}
	if found < 100 {
		t.Errorf("only %d queries found a backup", found)
	}
}

func describe(b *Backup) string {
	if b == nil {
		return "none"
	}
	return fmt.Sprintf("%s r%d %x counts=%v %q pruned=%v", b.ID, b.Rev(), b.Sum[:4], b.Counts, b.Doubt, b.Pruned != nil)
}

// randomHosts fills the folders d with backups of names a and b, a few in
// one second, of k and n that change now and then, on random hosts, with
// forged copies and revisions, tombstones and damaged files.
func randomHosts(t *testing.T, rng *rand.Rand, d []string) []*manifest.Manifest {
	t.Helper()
	some := func() []string {
		var out []string
		for _, dir := range d {
			if rng.IntN(4) > 0 {
				out = append(out, dir)
			}
		}
		return out
	}
	splits := [][2]int{{2, 3}, {3, 5}, {1, 2}, {2, 4}}
	t0 := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	var ms []*manifest.Manifest
	for i := range 14 {
		name := []string{"a", "b"}[rng.IntN(2)]
		split := splits[rng.IntN(len(splits))]
		at := t0.Add(time.Duration(rng.IntN(6)) * time.Second)
		m := sample(name, at, split[0], split[1], byte(i+1))
		m.SetID = hex.EncodeToString([]byte{byte(i + 1), byte(rng.IntN(256))}) + strings.Repeat("0", 28)
		m.ID = name + "-" + at.Format("20060102T150405Z") + "-" + m.SetID[:8]
		if rng.IntN(3) == 0 { // incremental, so that it is no full backup
			m.Chain, m.Level, m.Parent = strings.Repeat("c", 32), 1, m.ID
			m.Ancestors = []manifest.Ancestor{{ID: m.ID, SetID: m.SetID, StreamHash: m.StreamHash}}
		}
		put(t, m, some()...)
		ms = append(ms, m)
		switch rng.IntN(6) {
		case 0: // a forged copy of the same ID
			f := *m
			f.StreamSize++
			put(t, &f, some()...)
		case 1: // a revision, honest or not
			r := *m
			r.Revision = 2
			r.Shares = []manifest.Share{{Index: 0, Host: "file:///x", Path: "p", Size: 1, MetaBLAKE3: strings.Repeat("0", 64)}}
			if rng.IntN(2) == 0 {
				r.StreamSize++
			}
			data, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for _, dir := range some() {
				if err := os.WriteFile(filepath.Join(dir, manifest.RevisionPath(m.ID, 2)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		case 2: // pruned
			bury(t, m, time.Now().Add(-time.Hour), some()...)
		case 3: // damaged here and there
			for _, dir := range some()[:1] {
				if err := os.WriteFile(filepath.Join(dir, manifest.ManifestPath(m.ID)), []byte("{"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, tombstone.Path(m.ID)), []byte("{"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return ms
}

// ShareRevision reads share names as the pattern it replaced, which said
// what a share's name is, on names made of the pieces that matter.
func TestShareRevisionAsPattern(t *testing.T) {
	t.Parallel()
	pattern := regexp.MustCompile(`^(.+-\d{8}T\d{6}Z-[0-9a-f]{8})\.(?:r(\d+)\.)?share\d+$`)
	// Each part of a name: the first (right) one half of the time, else
	// any, some of them wrong in one way.
	parts := [][]string{
		{"home", "a.r1", "", "x\ny", "é", "home-20300107T023000Z-c3709cb0.share1"},
		{"-", "-", "_", ""},
		{"20300107T023000Z", "20300107T023000Z", "2030010T023000Z", "20300107t023000Z", "20300107T0230001"},
		{"-", "-", "."},
		{"c3709cb0", "c3709cb0", "C3709CB0", "c3709cb", "c3709cb0f", "g3709cb0"},
		{"", ".r2", ".r12", ".r", ".r0", ".rx", ".r3.r4", "r2"},
		{".share0", ".share17", ".share", ".sharex", "share1", ".share1.share2", ".shares1"},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var names []string
	for range 4000 {
		var b strings.Builder
		for _, p := range parts {
			if rng.IntN(2) == 0 {
				b.WriteString(p[0])
			} else {
				b.WriteString(p[rng.IntN(len(p))])
			}
		}
		names = append(names, b.String())
	}
	matched := 0
	for _, name := range names {
		id, rev, ok := ShareRevision(name)
		m := pattern.FindStringSubmatch(name)
		want := m != nil
		if ok != want {
			t.Fatalf("ShareRevision(%q) ok = %v, the pattern says %v", name, ok, want)
		}
		if !ok {
			continue
		}
		matched++
		wantRev, _ := strconv.Atoi(m[2])
		if id != m[1] || rev != max(1, wantRev) {
			t.Fatalf("ShareRevision(%q) = %q, %d; the pattern says %q, %d", name, id, rev, m[1], max(1, wantRev))
		}
	}
	if matched < 200 {
		t.Fatalf("only %d of %d names are shares' names: the test tries too few", matched, len(names))
	}
}
