package prune

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/retention"
)

// revHosts is a backup (k=2, n=3) on three hosts, repaired twice: r2
// rebuilt share 2 beside its damaged file as ID.r2.share2, r3 did so
// again as ID.r3.share2. files maps each host to its files and the time
// they were stored; a host missing from files is unreachable.
type revHosts struct {
	id    string
	revs  map[int]*manifest.Manifest
	files [3]map[string]time.Time
	// forged, when set, is what a host holds under a manifest's name
	// in place of the revision.
	forged [3]map[string]*manifest.Manifest
	down   [3]bool
	mode   hostsfile.AppendOnly
}

var (
	revNow   = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	longAgo  = revNow.Add(-72 * time.Hour)
	recently = revNow.Add(-time.Hour)
)

func newRevHosts() *revHosts {
	t := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	r := &revHosts{id: manifest.NewID("home", t, [16]byte{7}), revs: map[int]*manifest.Manifest{}}
	first := &manifest.Manifest{Format: manifest.Format, Version: manifest.Version, ID: r.id, Name: "home", Time: t,
		K: 2, N: 3, BlockSize: 4096, SetID: "07000000000000000000000000000000", StreamSize: 1000, StreamHash: strings.Repeat("ab", 32)}
	for i := range 3 {
		first.Shares = append(first.Shares, manifest.Share{Index: i, Host: fmt.Sprintf("file:///h%d", i), Path: manifest.SharePath(r.id, i), Size: 100, MetaBLAKE3: strings.Repeat("cd", 32)})
	}
	r.revs[1] = first
	for rev := 2; rev <= 3; rev++ {
		m := r.revision(rev)
		m.Shares[2].Path = fmt.Sprintf("%s.r%d.share2", r.id, rev)
		r.revs[rev] = m
	}
	for h := range 3 {
		r.files[h] = map[string]time.Time{}
		for rev := 1; rev <= 3; rev++ {
			r.files[h][manifest.RevisionPath(r.id, rev)] = longAgo
		}
		r.files[h][manifest.SharePath(r.id, h)] = longAgo
	}
	r.files[2][r.id+".r2.share2"] = longAgo
	r.files[2][r.id+".r3.share2"] = longAgo
	return r
}

// revision is a copy of r3 (r1 before it is made) numbered rev.
func (r *revHosts) revision(rev int) *manifest.Manifest {
	m := *r.revs[len(r.revs)]
	m.Revision = rev
	m.Shares = slices.Clone(m.Shares)
	return &m
}

// plan is the prune of r's hosts (a policy that keeps the backup).
func (r *revHosts) plan(t *testing.T) Plan {
	t.Helper()
	var hosts []hostsfile.Host
	for h := range 3 {
		hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: fmt.Sprintf("/h%d", h)}, AppendOnly: r.mode})
	}
	cat := catalog.New(hosts, catalog.Options{})
	var listings []*catalog.Listing
	for h, host := range cat.Hosts() {
		l := &catalog.Listing{Host: host, Files: map[string]remote.Info{}, Stored: map[string]time.Time{}}
		if r.down[h] {
			l.Err = fmt.Errorf("host %s: down", host)
		}
		for name, at := range r.files[h] {
			if _, rev, ok := manifest.ParseManifestPath(name); ok {
				m := r.revs[rev]
				if f := r.forged[h][name]; f != nil {
					m = f
				}
				data, err := m.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				l.Manifests = append(l.Manifests, &catalog.Copy{Manifest: m, Sum: sha256.Sum256(data), Host: host})
				l.Stored[name] = at
			} else {
				l.Files[name] = remote.Info{Name: name, Size: 100, ModTime: at}
			}
		}
		slices.SortFunc(l.Manifests, func(a, b *catalog.Copy) int { return a.Rev() - b.Rev() })
		if r.down[h] {
			l.Manifests, l.Files, l.Stored = nil, nil, nil
		}
		listings = append(listings, l)
	}
	return Make(cat.Backups(listings), listings, retention.Policy{Last: 1}, revNow, 24*time.Hour)
}

// removed lists the files p removes as "hN NAME", with r's ID as ID.
func (r *revHosts) removed(p Plan) []string {
	var out []string
	for _, f := range p.Files {
		out = append(out, fmt.Sprintf("%s %s", f.Host.String()[1:], f.Path[len(r.id):]))
	}
	slices.Sort(out)
	return out
}

// apply removes the files of p from r, as Run would.
func (r *revHosts) apply(p Plan) {
	for _, f := range p.Files {
		var h int
		fmt.Sscanf(f.Host.String(), "/h%d", &h)
		delete(r.files[h], f.Path)
	}
}

func wantRemoved(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: removed %q, want %q", what, got, want)
	}
}

// TestSupersededRevisions: a prune removes the revisions between the
// first and the one readers take, once both are older than the stale age,
// on each host that holds the newest; the shares only a removed revision
// named go on the next run, once no revision names them.
func TestSupersededRevisions(t *testing.T) {
	t.Parallel()
	r := newRevHosts()
	p := r.plan(t)
	if len(p.Remove) != 0 {
		t.Fatalf("removed backups %v", p.Remove)
	}
	wantRemoved(t, "first run", r.removed(p), "h0 .r2.manifest.json", "h1 .r2.manifest.json", "h2 .r2.manifest.json")
	r.apply(p)
	p = r.plan(t)
	wantRemoved(t, "second run", r.removed(p), "h2 .r2.share2")
	r.apply(p)
	wantRemoved(t, "third run", r.removed(r.plan(t)))
	for h := range 3 {
		for _, rev := range []int{1, 3} {
			if _, ok := r.files[h][manifest.RevisionPath(r.id, rev)]; !ok {
				t.Errorf("h%d: revision %d removed", h, rev)
			}
		}
	}
}

// TestSupersededRevisionsKept: what a prune must not remove.
func TestSupersededRevisionsKept(t *testing.T) {
	t.Parallel()
	r3 := func(r *revHosts) string { return manifest.RevisionPath(r.id, 3) }
	for _, c := range []struct {
		what  string
		setup func(r *revHosts)
		want  []string
	}{
		{"the newest revision stored within the stale age", func(r *revHosts) {
			for h := range 3 {
				r.files[h][r3(r)] = recently
			}
		}, nil},
		{"a host that lacks the newest (down during the repair)", func(r *revHosts) {
			delete(r.files[0], r3(r))
		}, []string{"h1 .r2.manifest.json", "h2 .r2.manifest.json"}},
		{"a host down: the others lose their revision 2, no share goes", func(r *revHosts) {
			r.down[1] = true
			for h := range 3 {
				delete(r.files[h], manifest.RevisionPath(r.id, 2))
			}
		}, nil},
		{"a host whose revision 3 is not the one that counts", func(r *revHosts) {
			forged := r.revision(3)
			forged.Shares[0].Path = r.id + ".r3.share0"
			r.forged[0] = map[string]*manifest.Manifest{manifest.RevisionPath(r.id, 3): forged}
			r.files[0][r.id+".r3.share0"] = longAgo
		}, []string{"h1 .r2.manifest.json", "h2 .r2.manifest.json"}},
		{"revision 1 on one host: revision 2, the one the others are compared with, stays", func(r *revHosts) {
			delete(r.files[1], manifest.RevisionPath(r.id, 1))
			delete(r.files[2], manifest.RevisionPath(r.id, 1))
		}, nil},
		{"append-only hosts: the share only revision 2 named stays (a compromised client may have written revision 3)", func(r *revHosts) {
			r.mode = hostsfile.AppendOnlyAdmin
			for h := range 3 {
				delete(r.files[h], manifest.RevisionPath(r.id, 2))
			}
		}, nil},
		{"append-only hosts: every revision stays (a compromised client may have written revision 3 on all of them)", func(r *revHosts) {
			r.mode = hostsfile.AppendOnlyAdmin
		}, nil},
		{"after revision 2 went: a share it stored that revision 3 names stays, moved ones too", func(r *revHosts) {
			moved := r.id + ".r2.share1"
			for rev := 2; rev <= 3; rev++ {
				r.revs[rev].Shares[1].Path = moved
				r.revs[rev].Shares[0].Host = "file:///h2" // onto a spare, under its own name
			}
			r.files[1][moved] = longAgo
			for h := range 3 {
				delete(r.files[h], manifest.RevisionPath(r.id, 2))
			}
		}, []string{"h2 .r2.share2"}},
		{"a share the newest names missing, the older one's there", func(r *revHosts) {
			delete(r.files[2], r.id+".r3.share2")
		}, nil},
		{"a forged revision 4 on one host (k=2): it does not count", func(r *revHosts) {
			r.revs[4] = r.revision(4)
			r.revs[4].Shares[0].Path = r.id + ".r4.share0"
			r.files[0][manifest.RevisionPath(r.id, 4)] = longAgo
			r.files[0][r.id+".r4.share0"] = longAgo
		}, []string{"h0 .r2.manifest.json", "h1 .r2.manifest.json", "h2 .r2.manifest.json"}},
		{"a forged revision 4 on k hosts naming a share none holds", func(r *revHosts) {
			r.revs[4] = r.revision(4)
			r.revs[4].Shares[1].Path = r.id + ".r4.share1"
			r.files[0][manifest.RevisionPath(r.id, 4)] = longAgo
			r.files[1][manifest.RevisionPath(r.id, 4)] = longAgo
		}, nil},
		{"a revision 4 on k hosts: the third, which lacks it, loses nothing", func(r *revHosts) {
			r.revs[4] = r.revision(4)
			r.files[0][manifest.RevisionPath(r.id, 4)] = longAgo
			r.files[1][manifest.RevisionPath(r.id, 4)] = longAgo
		}, []string{"h0 .r2.manifest.json", "h0 .r3.manifest.json", "h1 .r2.manifest.json", "h1 .r3.manifest.json"}},
	} {
		r := newRevHosts()
		c.setup(r)
		wantRemoved(t, c.what, r.removed(r.plan(t)), c.want...)
	}
}
