// Package prune plans and carries out the removal of backups from their
// hosts: those a retention policy does not keep (nor a kept incremental
// one needs), orphan shares and temp leftovers older than a stale age.
// Backups go newest first, each one's shares before its manifests (the
// first revision last), so a prune cut short leaves every backup whole but
// one, which bk-ls and bk-check list with shares missing. Before its
// files, a removed backup gets a tombstone on every host reached, which
// tells a later prune to remove what a host that was down still holds of
// it, and readers not to take it. Of the backups kept, the manifest
// revisions a later one supersedes go, and then the shares only they
// named.
package prune

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/retention"
	"github.com/bk-backup/bk/internal/tombstone"
)

// File is one file to remove from a host, or to store there, and why.
type File struct {
	Host *catalog.Host
	Path string
	Why  string
	// Data, when not nil, is stored as Path (a tombstone) rather than Path
	// removed.
	Data []byte
}

// Plan is what a prune removes and keeps.
type Plan struct {
	Keep   map[string]string // backup ID: why it is kept
	Remove []*catalog.Backup // the backups removed, newest first
	Files  []File            // in the order they are removed
}

// Make plans a prune of backups (newest first, as catalog.Backups returns
// them) on the hosts of listings. The policy chooses among the backups
// whose manifests count, tombstones or not. A backup whose manifest does
// not count may be planted, and its removal would be as much its
// planter's choice as the user's; it is removed only when it was pruned
// (its tombstones count: the leftovers on a host that was down) and the
// policy, weighing it with the others, would not keep it either. So no
// tombstone, forged or not, removes a backup the policy keeps.
func Make(backups []*catalog.Backup, listings []*catalog.Listing, p retention.Policy, now time.Time, staleAge time.Duration) Plan {
	var counting []*manifest.Manifest
	chosen := map[string]bool{}
	for _, b := range backups {
		if counted(b) {
			counting = append(counting, byStoredTime(b.Manifest, listings))
			chosen[b.ID] = true
		}
	}
	plan := Plan{Keep: retention.Keep(counting, p, now)}
	removed := map[string]bool{}
	for _, b := range backups {
		_, kept := plan.Keep[b.ID]
		switch {
		case removed[b.ID] || kept:
			continue
		case !counted(b):
			if b.Pruned == nil || chosen[b.ID] {
				continue
			}
			if why, ok := retention.Keep(append(slices.Clip(counting), b.Manifest), p, now)[b.ID]; ok {
				plan.Keep[b.ID] = why
				continue
			}
		}
		removed[b.ID] = true
		plan.Remove = append(plan.Remove, b)
	}
	graves := map[*catalog.Host]map[string]bool{} // the tombstone files on each host, by backup ID
	for _, l := range listings {
		graves[l.Host] = map[string]bool{}
		for _, g := range l.Tombstones {
			graves[l.Host][g.ID] = true
		}
		for _, d := range l.Damaged {
			if id, ok := tombstone.ParsePath(d.Name); ok {
				graves[l.Host][id] = true
			}
		}
	}
	cutoff := now.Add(-staleAge)
	shares := indexShares(listings)
	// Backup by backup, newest first: an incremental one goes before the
	// backups it needs, so a prune cut short leaves no whole-looking
	// backup whose chain is broken.
	for _, b := range plan.Remove {
		// The tombstones first: a prune cut short after them is finished
		// by the next one, and readers skip the backup meanwhile.
		data, _ := tombstone.For(b.Manifest, now).Marshal()
		for _, l := range listings {
			if l.Err == nil && !graves[l.Host][b.ID] {
				plan.Files = append(plan.Files, File{l.Host, tombstone.Path(b.ID), "tombstone of " + b.ID, data})
			}
		}
		for _, l := range listings {
			if l.Err != nil {
				continue
			}
			for _, name := range shares[l][b.ID] {
				plan.Files = append(plan.Files, withLinks(l, File{l.Host, name, "share of " + b.ID, nil})...)
			}
		}
		var manifests []File
		for _, l := range listings {
			for _, cp := range l.Manifests {
				if cp.ID == b.ID && l.Err == nil {
					manifests = append(manifests, withLinks(l, File{l.Host, manifest.RevisionPath(cp.ID, cp.Rev()), "manifest of " + b.ID, nil})...)
				}
			}
		}
		// Newest revisions first, on every host, the first ones last.
		rev := func(f File) int { _, r, _ := manifest.ParseManifestPath(f.Path); return r }
		slices.SortStableFunc(manifests, func(a, b File) int { return rev(b) - rev(a) })
		plan.Files = append(plan.Files, manifests...)
	}
	for _, b := range backups {
		if !removed[b.ID] {
			plan.Files = append(plan.Files, superseded(b, listings, shares, cutoff)...)
		}
	}
	for _, l := range listings {
		if l.Err != nil {
			continue
		}
		for _, fi := range catalog.OrphanShares(listings, l) {
			if fi.ModTime.Before(cutoff) {
				plan.Files = append(plan.Files, withLinks(l, File{l.Host, fi.Name, "orphan share (no manifest names it)", nil})...)
			}
		}
		for _, t := range l.Temp {
			if t.ModTime.Before(cutoff) {
				plan.Files = append(plan.Files, withLinks(l, File{l.Host, t.Name, "temp leftover", nil})...)
			}
		}
		for _, g := range l.Tombstones {
			_, kept := plan.Keep[g.ID]
			switch {
			case g.Expired(now):
				plan.Files = append(plan.Files, File{l.Host, tombstone.Path(g.ID), fmt.Sprintf("tombstone older than %d days", int(tombstone.Lifetime.Hours()/24)), nil})
			case kept && chosen[g.ID]:
				// The policy keeps the backup it buries: the user's policy
				// has the last word over what hosts say.
				plan.Files = append(plan.Files, File{l.Host, tombstone.Path(g.ID), "tombstone of " + g.ID + ", which the policy keeps", nil})
			}
		}
	}
	return plan
}

// superseded are the files of b's superseded manifest revisions that a
// prune removes (docs/FORMAT.md, section 5, rule 8): on each host that
// holds b, the revision readers take, a revision between its first and b,
// when both were stored there longer than the stale age ago and b finds
// every share the older one finds. A host that lacks b keeps its older
// revisions: then only the hosts that say so lose theirs, so no host,
// forging b, gets a revision removed from another. Then, once no revision
// on any host (all reached) names it, a share bk-repair stored for one of
// them (ID.rR.shareI, R up to b's) goes too, when older than the stale
// age and not on an append-only host: the next prune's, as the revisions
// naming it go in this one. On an append-only host no revision goes: a
// compromised client may have written b.
func superseded(b *catalog.Backup, listings []*catalog.Listing, shares shareIndex, cutoff time.Time) []File {
	if !b.Counts || b.Rev() == 1 {
		return nil
	}
	var out []File
	newest := manifest.RevisionPath(b.ID, b.Rev())
	for _, l := range listings {
		if l.Err != nil || l.Host.AppendOnly != hostsfile.NotAppendOnly || !stale(l, newest, cutoff) || !slices.ContainsFunc(l.Manifests, func(cp *catalog.Copy) bool { return cp.Sum == b.Sum }) {
			// On an append-only host a compromised client may have
			// written b on every host, of the right paths and sizes but
			// naming rotted or forged files (THREATS.md): the honest
			// revisions it could not remove itself stay, so that once
			// the admin removes b readers take them again.
			continue
		}
		for _, cp := range l.Manifests {
			path := manifest.RevisionPath(cp.ID, cp.Rev())
			if cp.ID != b.ID || cp.Rev() == 1 || cp.Rev() == b.Base || cp.Rev() >= b.Rev() || !stale(l, path, cutoff) || !findsAll(b.Manifest, cp.Manifest, listings) {
				continue
			}
			why := fmt.Sprintf("revision %d of %s, superseded by revision %d", cp.Rev(), b.ID, b.Rev())
			out = append(out, withLinks(l, File{l.Host, path, why, nil})...)
		}
	}
	named := map[string]bool{}
	for _, l := range listings {
		if l.Err != nil || l.Unread(b.ID) {
			return out // what a revision there names is unknown
		}
		for _, cp := range l.Manifests {
			if cp.ID == b.ID {
				for _, s := range cp.Shares {
					named[s.Path] = true
				}
			}
		}
	}
	for _, l := range listings {
		if l.Host.AppendOnly != hostsfile.NotAppendOnly {
			// A compromised client may have written the revision that
			// superseded the one naming the share (THREATS.md): what it
			// committed stays.
			continue
		}
		for _, name := range shares[l][b.ID] {
			_, rev, _ := catalog.ShareRevision(name)
			if rev > 1 && rev <= b.Rev() && !named[name] && l.Files[name].ModTime.Before(cutoff) {
				out = append(out, withLinks(l, File{l.Host, name, fmt.Sprintf("share stored for revision %d of %s, which no revision names", rev, b.ID), nil})...)
			}
		}
	}
	return out
}

// stale is whether the manifest file path on l's host was stored before
// cutoff.
func stale(l *catalog.Listing, path string, cutoff time.Time) bool {
	t, ok := l.Stored[path]
	return ok && t.Before(cutoff)
}

// findsAll is whether every share of old that stands on a host of
// listings (a file of its path and size) stands there as m has it: m
// (the revision readers take) is at least as whole as old.
func findsAll(m, old *manifest.Manifest, listings []*catalog.Listing) bool {
	for _, s := range old.Shares {
		if !found(s, listings) {
			continue
		}
		i := slices.IndexFunc(m.Shares, func(n manifest.Share) bool { return n.Index == s.Index })
		if i < 0 || !found(m.Shares[i], listings) {
			return false
		}
	}
	return true
}

// found is whether a host of listings holds a file of s's path and size.
func found(s manifest.Share, listings []*catalog.Listing) bool {
	for _, l := range listings {
		if fi, ok := l.Files[s.Path]; ok && l.Err == nil && fi.Size == s.Size {
			return true
		}
	}
	return false
}

// counted is whether b's manifest counts, tombstones aside.
func counted(b *catalog.Backup) bool { return b.Counts || (b.Pruned != nil && b.Pruned.Counted) }

// withLinks is f and the second names of its file on l's host (the temp
// names an append-only host keeps): the space comes back with the last.
func withLinks(l *catalog.Listing, f File) []File {
	out := []File{f}
	for _, t := range l.Links {
		if target, _ := remote.TempTarget(t.Name); target == f.Path {
			out = append(out, File{l.Host, t.Name, "second name of " + f.Path, nil})
		}
	}
	return out
}

// byStoredTime is m, with the time the append-only hosts among its
// holders stored its first manifest (the median of them, so that fewer
// than half of them cannot move it out of the others' range) in place of
// the time it claims: a compromised client may push backups with any
// time, but cannot set the time the host gives a file. m itself without
// such a host.
func byStoredTime(m *manifest.Manifest, listings []*catalog.Listing) *manifest.Manifest {
	var times []time.Time
	for _, l := range listings {
		if l.Err != nil || l.Host.AppendOnly == hostsfile.NotAppendOnly {
			continue
		}
		first := -1
		for _, cp := range l.Manifests {
			if cp.ID == m.ID && (first < 0 || cp.Rev() < first) {
				first = cp.Rev()
			}
		}
		if t, ok := l.Stored[manifest.RevisionPath(m.ID, first)]; first >= 0 && ok {
			times = append(times, t)
		}
	}
	if len(times) == 0 {
		return m
	}
	slices.SortFunc(times, time.Time.Compare)
	c := *m
	c.Time = times[(len(times)-1)/2].UTC()
	return &c
}

// shareIndex is the share files of each listing by the backup ID their
// names carry, in name order. Made once a prune: each removed backup and
// each revised one kept looked for its shares among every file of every
// host, which late in the soak's year was a quarter of bk-prune's CPU.
type shareIndex map[*catalog.Listing]map[string][]string

func indexShares(listings []*catalog.Listing) shareIndex {
	index := shareIndex{}
	for _, l := range listings {
		byID := map[string][]string{}
		for _, name := range slices.Sorted(maps.Keys(l.Files)) {
			if id, ok := catalog.ShareBackup(name); ok {
				byID[id] = append(byID[id], name)
			}
		}
		index[l] = byID
	}
	return index
}

// Run removes the files of plan, in order; tell hears of each one
// removed. It goes on past a host that fails and returns every error.
func Run(ctx context.Context, plan Plan, tell func(File)) error {
	var errs []error
	failed := map[*catalog.Host]bool{}
	for _, f := range plan.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if failed[f.Host] {
			continue
		}
		if f.Data != nil {
			if err := f.Host.Put(ctx, f.Path, f.Data); err != nil {
				failed[f.Host] = true
				errs = append(errs, fmt.Errorf("host %s: storing %s: %w", f.Host, f.Path, err))
			} else {
				tell(f)
			}
			continue
		}
		if err := f.Host.Remove(ctx, f.Path); err != nil {
			failed[f.Host] = true
			errs = append(errs, fmt.Errorf("host %s: removing %s: %w", f.Host, f.Path, err))
			continue
		}
		tell(f)
	}
	return errors.Join(errs...)
}
