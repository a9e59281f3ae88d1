package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/metacache"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
)

// far is a folder taken for a host whose reads cost a request (an SFTP or
// S3 host): the catalog caches what it reads there.
type far struct{ local.Location }

func (far) Nearby() bool { return false }

// cachedRun lists every manifest and tombstone of the folders dirs (all
// far but the last) with cache, counting what it asks of them in n, and
// closes the catalog: what the tools do in one run.
func cachedRun(t *testing.T, dirs []string, cache *metacache.Dir, n *counter) []*Listing {
	t.Helper()
	var hosts []hostsfile.Host
	for i, d := range dirs {
		var loc remote.Location = far{local.Location{Path: d}}
		if i == len(dirs)-1 {
			loc = local.Location{Path: d}
		}
		hosts = append(hosts, hostsfile.Host{Location: loc})
	}
	c := New(hosts, Options{
		Connect: func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
			r, err := h.Dial(ctx, remote.DialOptions{})
			return counted{r, n}, err
		},
		Cache: cache,
	})
	defer c.Close()
	return c.List(context.Background(), c.Hosts(), nil)
}

func newCache(t *testing.T) *metacache.Dir {
	t.Helper()
	d, err := metacache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// damaged is the files of listings that could not be used, one a line.
func damaged(listings []*Listing) string {
	var b strings.Builder
	for _, l := range listings {
		for _, d := range l.Damaged {
			fmt.Fprintf(&b, "%s: %v\n", l.Host, d)
		}
	}
	return b.String()
}

// A second run reads no manifest from the hosts that cost a request, and
// every one from a local folder; a file listed with another size or time
// is read again.
func TestCacheSavesReads(t *testing.T) {
	_, d, _ := folders(t, 4)
	nightly(t, d, "home", 10) // on d[0], d[1], d[2]
	put(t, sample("home", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), 2, 3, 99), d[3])
	cache := newCache(t)
	var first, second counter
	want := cachedRun(t, d, cache, &first)
	if got := first.opens.Load(); got != 31 {
		t.Fatalf("first run opened %d files, want 31", got)
	}
	got := cachedRun(t, d, cache, &second)
	if n := second.opens.Load(); n != 1 {
		t.Errorf("second run opened %d files, want 1 (the local folder's)", n)
	}
	for i := range want {
		if len(got[i].Manifests) != len(want[i].Manifests) || len(got[i].Damaged) != 0 {
			t.Errorf("host %d: second run read %d manifests (damaged: %v), first %d", i, len(got[i].Manifests), got[i].Damaged, len(want[i].Manifests))
		}
		for j, cp := range got[i].Manifests {
			if cp.Sum != want[i].Manifests[j].Sum || cp.Host != got[i].Host {
				t.Errorf("host %d: manifest %s differs from the first run's", i, cp.ID)
			}
		}
	}

	names, _ := filepath.Glob(filepath.Join(d[0], "*"+manifest.ManifestSuffix))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(names[0], later, later); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(names[1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if _, err := f.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(names[1], st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	var third counter
	cachedRun(t, d, cache, &third)
	if n := third.opens.Load(); n != 3 {
		t.Errorf("a run after a file took another time and one another size opened %d files, want 3", n)
	}
}

// Forged bytes in the cache meet the checks of bytes a host serves: they
// can do no more than the host could, and are named the same way.
func TestCacheForgedBytes(t *testing.T) {
	byCache, byHost := t.TempDir(), t.TempDir()
	t0 := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	ms := []*manifest.Manifest{sample("home", t0, 2, 3, 1), sample("home", t0.Add(time.Hour), 2, 3, 2), sample("home", t0.Add(2*time.Hour), 2, 3, 3), sample("home", t0.Add(3*time.Hour), 2, 3, 4)}
	for _, m := range ms {
		put(t, m, byCache, byHost)
	}
	otherData, err := sample("home", t0.Add(5*time.Hour), 2, 3, 5).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	late := *ms[2]
	late.Time = t0.Add(9 * time.Hour)
	lateData, err := late.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	forged := map[string][]byte{
		manifest.ManifestPath(ms[0].ID): otherData,                 // another backup's
		manifest.ManifestPath(ms[1].ID): []byte("{not a manifest"), // garbage
		manifest.ManifestPath(ms[2].ID): lateData,                  // a time its ID does not carry
	}
	for name, data := range forged {
		if err := os.WriteFile(filepath.Join(byHost, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	var n counter
	fromHost := damaged(cachedRun(t, []string{byHost, empty}, nil, &n))

	cache := newCache(t)
	h := cache.Host(far{local.Location{Path: byCache}}.URL())
	var listed []remote.Info
	for _, m := range ms {
		name := manifest.ManifestPath(m.ID)
		st, err := os.Stat(filepath.Join(byCache, name))
		if err != nil {
			t.Fatal(err)
		}
		fi := remote.Info{Name: name, Size: st.Size(), ModTime: st.ModTime()}
		listed = append(listed, fi)
		if data, ok := forged[name]; ok {
			h.Put(fi, data)
		} else {
			// Larger than a host may serve: read from the host.
			h.Put(fi, make([]byte, MaxManifest+1))
		}
	}
	if err := h.Save(listed); err != nil {
		t.Fatal(err)
	}
	var reads counter
	listings := cachedRun(t, []string{byCache, empty}, cache, &reads)
	fromCache := damaged(listings)
	if strings.ReplaceAll(fromHost, byHost, byCache) != fromCache {
		t.Errorf("forged cache:\n%s\nforged host:\n%s", fromCache, fromHost)
	}
	if strings.Count(fromCache, "\n") != 3 {
		t.Errorf("forged cache: %d files damaged, want 3:\n%s", strings.Count(fromCache, "\n"), fromCache)
	}
	if len(listings[0].Manifests) != 1 || listings[0].Manifests[0].ID != ms[3].ID || reads.opens.Load() != 1 {
		t.Errorf("the cached manifest too large to be a host's: read %d files from the host, got %d manifests", reads.opens.Load(), len(listings[0].Manifests))
	}
}

// A fresh run (the full bk-check and bk-repair) reads every file from the
// hosts, and what fails there is no longer taken from the cache by later
// runs: rot that keeps a file's size and time, which the cached runs do
// not see.
func TestCacheFresh(t *testing.T) {
	_, d, _ := folders(t, 2)
	nightly(t, append(d, d...), "home", 3)
	cache := newCache(t)
	var n counter
	cachedRun(t, d, cache, &n)
	names, _ := filepath.Glob(filepath.Join(d[0], "*"+manifest.ManifestSuffix))
	st, err := os.Stat(names[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(names[0], []byte(strings.Repeat("x", int(st.Size()))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(names[0], st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := damaged(cachedRun(t, d, cache, &n)); got != "" {
		t.Errorf("a cached run saw the rot: %s", got)
	}
	fresh := *cache
	fresh.Fresh = true
	var freshReads counter
	if got := damaged(cachedRun(t, d, &fresh, &freshReads)); !strings.Contains(got, filepath.Base(names[0])) {
		t.Errorf("a fresh run did not see the rot: %q", got)
	}
	if got := freshReads.opens.Load(); got != 6 {
		t.Errorf("a fresh run opened %d files, want 6", got)
	}
	if got := damaged(cachedRun(t, d, cache, &n)); !strings.Contains(got, filepath.Base(names[0])) {
		t.Errorf("a cached run after the fresh one did not see the rot: %q", got)
	}
}
