// Package prune plans and carries out the removal of backups from their
// hosts: those a retention policy does not keep (nor a kept incremental
// one needs), orphan shares and temp leftovers older than a stale age.
// Backups go newest first, each one's shares before its manifests (the
// first revision last), so a prune cut short leaves every backup whole but
// one, which bk-ls and bk-check list with shares missing.
package prune

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/retention"
)

// File is one file to remove from a host, and why.
type File struct {
	Host *catalog.Host
	Path string
	Why  string
}

// Plan is what a prune removes and keeps.
type Plan struct {
	Keep   map[string]string // backup ID: why it is kept
	Remove []*catalog.Backup // the backups removed, newest first
	Files  []File            // in the order they are removed
}

var sharePattern = regexp.MustCompile(`^(.+-\d{8}T\d{6}Z-[0-9a-f]{8})\.(?:r\d+\.)?share\d+$`)

// Make plans a prune of the backups that count among backups (newest
// first, as catalog.Backups returns them), on the hosts of listings. Only
// backups that count are removed: one that does not may be planted, and
// its removal would be as much its planter's choice as the user's.
func Make(backups []*catalog.Backup, listings []*catalog.Listing, p retention.Policy, now time.Time, staleAge time.Duration) Plan {
	var counting []*manifest.Manifest
	for _, b := range backups {
		if b.Counts {
			counting = append(counting, b.Manifest)
		}
	}
	plan := Plan{Keep: retention.Keep(counting, p, now)}
	for _, b := range backups {
		if _, kept := plan.Keep[b.ID]; b.Counts && !kept {
			plan.Remove = append(plan.Remove, b)
		}
	}
	known := map[string]bool{}
	for _, l := range listings {
		for _, cp := range l.Manifests {
			known[cp.ID] = true
		}
		for _, d := range l.Damaged {
			if id, ok := manifest.IDFromManifestPath(d.Name); ok {
				known[id] = true
			}
		}
	}
	cutoff := now.Add(-staleAge)
	// Backup by backup, newest first: an incremental one goes before the
	// backups it needs, so a prune cut short leaves no whole-looking
	// backup whose chain is broken.
	for _, b := range plan.Remove {
		for _, l := range listings {
			if l.Err != nil {
				continue
			}
			for _, name := range sortedFiles(l) {
				if m := sharePattern.FindStringSubmatch(name); m != nil && m[1] == b.ID {
					plan.Files = append(plan.Files, File{l.Host, name, "share of " + b.ID})
				}
			}
		}
		var manifests []File
		for _, l := range listings {
			for _, cp := range l.Manifests {
				if cp.ID == b.ID && l.Err == nil {
					manifests = append(manifests, File{l.Host, manifest.RevisionPath(cp.ID, cp.Rev()), "manifest of " + b.ID})
				}
			}
		}
		// Newest revisions first, on every host, the first ones last.
		rev := func(f File) int { _, r, _ := manifest.ParseManifestPath(f.Path); return r }
		slices.SortStableFunc(manifests, func(a, b File) int { return rev(b) - rev(a) })
		plan.Files = append(plan.Files, manifests...)
	}
	for _, l := range listings {
		if l.Err != nil {
			continue
		}
		for _, name := range sortedFiles(l) {
			if m := sharePattern.FindStringSubmatch(name); m != nil && !known[m[1]] && l.Files[name].ModTime.Before(cutoff) {
				plan.Files = append(plan.Files, File{l.Host, name, "orphan share (no manifest names it)"})
			}
		}
		for _, t := range l.Temp {
			if t.ModTime.Before(cutoff) {
				plan.Files = append(plan.Files, File{l.Host, t.Name, "temp leftover"})
			}
		}
	}
	return plan
}

func sortedFiles(l *catalog.Listing) []string {
	var names []string
	for name := range l.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
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
		if err := f.Host.Remove(ctx, f.Path); err != nil {
			failed[f.Host] = true
			errs = append(errs, fmt.Errorf("host %s: removing %s: %w", f.Host, f.Path, err))
			continue
		}
		tell(f)
	}
	return errors.Join(errs...)
}
