// Package retention decides which backups to keep: per name, the newest
// few, one a day, a week or a month for so many of them, and those within
// a time; then every backup a kept incremental one needs.
package retention

import (
	"fmt"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
)

// Policy is how many backups of each name to keep. A backup kept by any
// rule is kept.
type Policy struct {
	Last, Daily, Weekly, Monthly int
	Within                       time.Duration
}

// Empty reports whether the policy keeps nothing at all.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Within == 0
}

// Keep returns the IDs of backups (any order, any names) that p keeps at
// time now, with the reason of the first rule that keeps each: "last",
// "daily", "weekly", "monthly", "within", or "needed by ID" for an
// ancestor of a kept incremental backup.
func Keep(backups []*manifest.Manifest, p Policy, now time.Time) map[string]string {
	byName := map[string][]*manifest.Manifest{}
	for _, m := range backups {
		byName[m.Name] = append(byName[m.Name], m)
	}
	keep := map[string]string{}
	mark := func(m *manifest.Manifest, why string) {
		if _, ok := keep[m.ID]; !ok {
			keep[m.ID] = why
		}
	}
	for _, ms := range byName {
		manifest.SortNewestFirst(ms)
		for i, m := range ms {
			if i < p.Last {
				mark(m, "last")
			}
			if p.Within > 0 && !m.Time.Before(now.Add(-p.Within)) {
				mark(m, "within")
			}
		}
		bucket(ms, p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }, mark)
		bucket(ms, p.Weekly, "weekly", func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}, mark)
		bucket(ms, p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }, mark)
	}
	// Every ancestor of a kept incremental backup: its manifest names them.
	for _, m := range backups {
		if _, ok := keep[m.ID]; !ok {
			continue
		}
		for _, a := range m.Ancestors {
			if _, ok := keep[a.ID]; !ok {
				keep[a.ID] = "needed by " + m.ID
			}
		}
		if m.Parent != "" {
			if _, ok := keep[m.Parent]; !ok {
				keep[m.Parent] = "needed by " + m.ID
			}
		}
	}
	return keep
}

// bucket keeps the newest backup of each of the n newest periods that
// hold one (ms newest first); periods are told apart by key, in UTC.
func bucket(ms []*manifest.Manifest, n int, why string, key func(time.Time) string, mark func(*manifest.Manifest, string)) {
	seen := map[string]bool{}
	for _, m := range ms {
		if len(seen) >= n {
			return
		}
		k := key(m.Time.UTC())
		if !seen[k] {
			seen[k] = true
			mark(m, why)
		}
	}
}
