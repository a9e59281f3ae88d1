package catalog

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/tombstone"
)

// Pruned says that a backup was pruned: tombstones of it count.
type Pruned struct {
	*tombstone.Tombstone // the newest of them
	Holders              []*Host
	// Counted is whether the backup's manifest counted before its
	// tombstones were weighed.
	Counted bool
}

// HolderNames names the hosts that hold the tombstones, for messages.
func (p *Pruned) HolderNames() string {
	var names []string
	for _, h := range p.Holders {
		names = append(names, h.String())
	}
	return strings.Join(names, ", ")
}

// bury marks the backups that tombstones of listings say were pruned: those
// with tombstones of the same backup (ID, k, n, set and stream), younger
// than tombstone.Lifetime at now, on at least max(2, k) hosts of the
// hosts files (all of them, when fewer), as for a manifest to count. Such
// a backup no longer counts: readers do not take it, nor bring it back
// when a host that was down during the prune returns with its files.
func (c *Catalog) bury(backups []*Backup, listings []*Listing, now time.Time) {
	for _, b := range backups {
		p := &Pruned{Counted: b.Counts}
		for _, l := range listings {
			for _, g := range l.Tombstones {
				if !g.Of(b.Manifest) || g.Expired(now) || !slices.Contains(c.hosts, g.Host) || slices.Contains(p.Holders, g.Host) {
					continue
				}
				p.Holders = append(p.Holders, g.Host)
				if p.Tombstone == nil || g.Pruned.After(p.Pruned) {
					p.Tombstone = g.Tombstone
				}
			}
		}
		if len(p.Holders) < min(max(2, b.K), len(c.hosts)) {
			continue
		}
		b.Pruned, b.Counts = p, false
		b.Doubt = fmt.Sprintf("bk-prune removed it on %s (tombstones on %s)", p.Pruned.Format(time.DateOnly), p.HolderNames())
	}
}
