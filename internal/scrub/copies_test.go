package scrub_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/repair"
	"github.com/bk-backup/bk/internal/scrub"
	"github.com/bk-backup/bk/internal/shard/sharetest"
)

// A share with two copies, one good and one rotted (issue 16: a repair
// stored it on a spare while its host was down, and the host came back
// with its own copy, which rotted): the full check reads both, calls the
// backup degraded naming the bad copy's host, and bk-repair replaces that
// copy where it is, so that with the good copy's host gone the share is
// still there, good. Whichever copy rots, the one the manifest names or
// the other. The rot is inside the share, where only a full check looks;
// a copy cut short a quick check and the listing see too. On an
// append-only host, or one that refuses the removal, the bad copy stays.
// (Host rows: a host that rots, and one that goes down.)
// noRemove is a host that refuses every removal.
type noRemove struct{ remote.Remote }

func (noRemove) Remove(context.Context, string) error { return errors.New("removal refused") }

func TestEveryCopyOfAShareIsChecked(t *testing.T) {
	for _, rotted := range []string{"named", "extra"} {
		t.Run(rotted, func(t *testing.T) {
			dirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
			data := make([]byte, 60_000)
			for i := range data {
				data[i] = byte(i * 5 / 3)
			}
			m := scrub.BackupIn(t, data, dirs[:3])
			named := filepath.Join(dirs[1], m.Shares[1].Path)
			extra := filepath.Join(dirs[3], m.Shares[1].Path)
			share, err := sharetest.Load(named)
			if err != nil {
				t.Fatal(err)
			}
			good := bytes.Clone(share.Data)
			share.Flip(share.Stripes()/2, 7)
			bad := share.Data
			badHost, goodHost := dirs[3], dirs[1]
			if rotted == "named" {
				badHost, goodHost = dirs[1], dirs[3]
				good, bad = bad, good
			}
			if err := os.WriteFile(named, good, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(extra, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			if rotted == "named" {
				good, bad = bad, good
				named, extra = extra, named
			}
			// badRemove refuses removals on the bad copy's host, and
			// appendOnly marks it append-only=yes, when set.
			var badRemove, appendOnly bool
			check := func(dirs []string, quick bool) (*scrub.Report, []*catalog.Listing, *catalog.Catalog) {
				t.Helper()
				var hosts []hostsfile.Host
				for _, d := range dirs {
					h := hostsfile.Host{Location: local.Location{Path: d}}
					if appendOnly && d == badHost {
						h.AppendOnly = hostsfile.AppendOnlyClient
					}
					hosts = append(hosts, h)
				}
				cat := catalog.New(hosts, catalog.Options{Connect: func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
					r, err := h.Dial(ctx, remote.DialOptions{})
					if badRemove && h.Location.(local.Location).Path == badHost {
						return noRemove{r}, err
					}
					return r, err
				}})
				t.Cleanup(cat.Close)
				listings := cat.List(context.Background(), cat.Hosts(), nil)
				r, err := scrub.Check(context.Background(), cat, listings, m, scrub.Options{Quick: quick})
				if err != nil {
					t.Fatal(err)
				}
				return r, listings, cat
			}

			r, listings, _ := check(dirs, false)
			s := r.Shares[1]
			if r.State != scrub.Degraded || r.Good != 3 || !s.Good || s.Host != goodHost || len(s.BadCopies) != 1 {
				t.Fatalf("full check: %s, %d good, share 1 %+v; want degraded, 3 good, good on %s with one bad copy", r.State, r.Good, s, goodHost)
			}
			if c := s.BadCopies[0]; c.Host != badHost || !strings.Contains(c.Problem, "stripe") || c.Named != (rotted == "named") {
				t.Errorf("the bad copy: %+v; want on %s, a bad stripe", c, badHost)
			}
			for _, h := range scrub.Hosts(context.Background(), listings, []*scrub.Report{r}) {
				if want := h.Host == badHost; (h.Bad == 1) != want || (h.State == scrub.Degraded) != want {
					t.Errorf("host %s: %d bad, %s", h.Host, h.Bad, h.State)
				}
			}
			if r, _, _ := check(dirs, true); r.State != scrub.Healthy {
				t.Errorf("quick check of a copy rotted inside: %s, %+v", r.State, r.Shares[1])
			}

			// On an append-only host the bad copy stays, for its admin.
			appendOnly = true
			r2, listings2, _ := check(dirs, false)
			if moves, err := repair.Plan(context.Background(), listings2, r2); err != nil || len(moves) > 0 || !repair.Stuck(r2.Shares[1].BadCopies[0]) {
				t.Errorf("plan with the bad copy on an append-only host: %+v, %v", moves, err)
			}
			appendOnly = false
			// A host that refuses the removal keeps the bad copy, and no
			// temp file: the repair fails, naming it.
			badRemove = true
			r2, listings2, _ = check(dirs, false)
			moves, err := repair.Plan(context.Background(), listings2, r2)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := repair.Repair(context.Background(), listings2, r2, moves, repair.Options{}); err == nil || !strings.Contains(err.Error(), "its bad copy not replaced") {
				t.Errorf("repair where the removal fails: %v", err)
			}
			if got, err := os.ReadFile(extra); err != nil || !bytes.Equal(got, bad) {
				t.Errorf("the bad copy changed though its removal failed (%v)", err)
			}
			if temps, _ := filepath.Glob(filepath.Join(badHost, ".*")); len(temps) > 0 {
				t.Errorf("left behind: %s", temps)
			}
			badRemove = false

			moves, err = repair.Plan(context.Background(), listings, r)
			if err != nil || len(moves) != 1 || !moves[0].Copy || moves[0].To.String() != badHost || moves[0].Path != m.Shares[1].Path {
				t.Fatalf("plan: %+v, %v; want share 1's copy replaced on %s", moves, err, badHost)
			}
			next, stored, err := repair.Repair(context.Background(), listings, r, moves, repair.Options{})
			if err != nil || next != nil || len(stored) != 1 {
				t.Fatalf("repair: %v, %d stored, revision %v; want 1 stored and no revision", err, len(stored), next)
			}
			if got, err := os.ReadFile(extra); err != nil || !bytes.Equal(got, good) {
				t.Errorf("the bad copy is not the good share's bytes now (%v)", err)
			}
			if r, _, _ := check(dirs, false); r.State != scrub.Healthy || len(r.Shares[1].BadCopies) > 0 {
				t.Errorf("full check after the repair: %s, %+v", r.State, r.Shares[1])
			}
			// The good copy's host gone: the mended copy serves.
			var left []string
			for _, d := range dirs {
				if d != goodHost {
					left = append(left, d)
				}
			}
			if r, _, _ := check(left, false); r.State != scrub.Healthy || r.Shares[1].Host != badHost {
				t.Errorf("without %s: %s, share 1 %+v", goodHost, r.State, r.Shares[1])
			}

			// A copy cut short: the quick check and the listing see it.
			if err := os.Truncate(extra, int64(len(good)-100)); err != nil {
				t.Fatal(err)
			}
			r, listings, cat := check(dirs, true)
			if r.State != scrub.Degraded || len(r.Shares[1].BadCopies) != 1 || r.Shares[1].BadCopies[0].Host != badHost {
				t.Errorf("quick check of a copy cut short: %s, %+v", r.State, r.Shares[1])
			}
			p, err := scrub.Presence(cat, listings, m)
			if err != nil || p.State != scrub.Degraded || len(p.Shares[1].BadCopies) != 1 || !strings.Contains(p.Shares[1].BadCopies[0].Problem, "bytes") {
				t.Errorf("listing with a copy cut short: %v, %s, %+v", err, p.State, p.Shares[1])
			}
		})
	}
}
