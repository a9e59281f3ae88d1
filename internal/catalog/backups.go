package catalog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
)

// Backup is one manifest found on the hosts, with every host that holds an
// identical copy. Copies of one ID that differ are separate Backups.
type Backup struct {
	*manifest.Manifest
	Sum     [32]byte
	Holders []*Host // in hosts-file order, hosts that only a manifest names last
	// Counts is whether the manifest passes the reading rule: identical
	// copies on enough hosts of the hosts files, and k and n as the
	// earlier backups of its name. Doubt says why not.
	Counts bool
	Doubt  string
	// Base is the revision it was compared with (reading rule 6): the
	// oldest revision of its ID that counts; its own when none counts.
	Base int
	// Pruned, when not nil, says that bk-prune removed the backup:
	// tombstones of it count (docs/FORMAT.md, section 5), so it does not.
	// Its files are left on a host that was down during the prune, until
	// the next prune.
	Pruned *Pruned
}

// HolderNames names the hosts that hold the backup, for messages.
func (b *Backup) HolderNames() string {
	var names []string
	for _, h := range b.Holders {
		names = append(names, h.String())
	}
	return strings.Join(names, ", ")
}

// Backups gathers the manifests of listings into backups, newest first,
// and judges each: a manifest counts when identical copies stand on at
// least max(2, k) hosts of the catalog (all of them, when it has fewer),
// and its k and n are those of the last counting backup of its name before
// it, unless it stands on at least that backup's k hosts too. So fewer than
// k colluding hosts can neither plant a backup nor lower its k. A backup
// whose tombstones count as much was pruned, and does not count either.
func (c *Catalog) Backups(listings []*Listing) []*Backup {
	all := gather(listings)
	c.judgeAll(all, listings, nil, nil, func(string) bool { return true })
	return c.settle(all, listings)
}

// gather makes backups of the manifests of listings, one per distinct
// copy, oldest first.
func gather(listings []*Listing) []*Backup {
	bySum := map[[32]byte]*Backup{}
	var all []*Backup
	for _, l := range listings {
		for _, cp := range l.Manifests {
			b, ok := bySum[cp.Sum]
			if !ok {
				b = &Backup{Manifest: cp.Manifest, Sum: cp.Sum}
				bySum[cp.Sum] = b
				all = append(all, b)
			}
			if !slices.Contains(b.Holders, cp.Host) {
				b.Holders = append(b.Holders, cp.Host)
			}
		}
	}
	slices.SortFunc(all, func(a, b *Backup) int { return older(a, b) })
	return all
}

// older orders backups oldest first, as manifest.Newer the other way round;
// copies of one ID by revision, then by their bytes' sum, so that the same
// copies sort alike whatever else was read with them.
func older(a, b *Backup) int {
	if c := manifest.Newer(b.Manifest, a.Manifest); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Rev(), b.Rev()); c != 0 {
		return c
	}
	return bytes.Compare(a.Sum[:], b.Sum[:])
}

// judgeAll judges backups (oldest first): in order for the names whose
// every manifest on the hosts of listings was read (whole), alone for the
// backups that want accepts of the others, where read says which backups'
// files were read. It returns the names with a backup that could not be
// judged alone, and the IDs of unread manifests that might settle them.
func (c *Catalog) judgeAll(all []*Backup, listings []*Listing, want, read func(id string) bool, whole func(name string) bool) (undecided, taller []string) {
	last := map[string]*Backup{} // the last counting backup of each name
	history := false             // a backup read could hold one to its k
	for _, b := range all {
		switch {
		case whole(b.Name):
			c.judge(b, last[b.Name])
		case !want(b.ID):
			continue // read for its k only
		default:
			ok, more := c.alone(b, all, listings, read)
			if ok {
				c.judge(b, nil)
				break
			}
			if !slices.Contains(undecided, b.Name) {
				undecided = append(undecided, b.Name)
			}
			history = history || more == nil
			for _, id := range more {
				if !slices.Contains(taller, id) {
					taller = append(taller, id)
				}
			}
		}
		if b.Counts {
			last[b.Name] = b
		}
	}
	if history {
		return undecided, nil // reading them would not settle it
	}
	return undecided, taller
}

// settle orders backups (oldest first) newest first, keeps the newest
// counting revision of each ID and marks the pruned ones.
func (c *Catalog) settle(all []*Backup, listings []*Listing) []*Backup {
	slices.Reverse(all)
	all, passed := supersede(all)
	c.warnPassedOver(passed)
	c.bury(all, listings, c.opts.Now())
	return all
}

// supersede keeps, of each backup ID with a later revision that counts,
// that revision alone: readers take the newest revision that validates
// (bk-repair writes it beside the old one, which stays valid until then).
// A revision that changes more than where the shares are does not count.
// passed are the later revisions of the IDs kept that do not count.
func supersede(all []*Backup) (kept, passed []*Backup) {
	base := map[string]*Backup{} // the oldest counting revision of each ID
	for _, b := range all {
		if b.Counts && (base[b.ID] == nil || b.Rev() < base[b.ID].Rev()) {
			base[b.ID] = b
		}
	}
	best := map[string]*Backup{}
	for _, b := range all {
		if !b.Counts {
			continue
		}
		if first := base[b.ID]; b != first && !sameBackup(b.Manifest, first.Manifest) {
			b.Counts = false
			b.Doubt = fmt.Sprintf("its revision %d differs from revision %d in more than where the shares are", b.Rev(), first.Rev())
			continue
		}
		if best[b.ID] == nil || b.Rev() > best[b.ID].Rev() {
			best[b.ID] = b
		}
	}
	for _, b := range all {
		b.Base = b.Rev()
		if base[b.ID] != nil {
			b.Base = base[b.ID].Rev()
		}
	}
	kept = slices.DeleteFunc(all, func(b *Backup) bool {
		if best[b.ID] == nil || best[b.ID] == b {
			return false
		}
		if !b.Counts && b.Rev() > best[b.ID].Rev() {
			passed = append(passed, b)
		}
		return true
	})
	return kept, passed
}

// warnPassedOver warns of each revision of passed, once a catalog: a
// later revision that does not count may be a host's forgery (or a
// repair's that too few hosts took), which readers pass over for the
// newest that counts, and whoever reads should know which hosts hold it.
func (c *Catalog) warnPassedOver(passed []*Backup) {
	for _, b := range passed {
		c.mu.Lock()
		seen := c.passedOver[b.Sum]
		c.passedOver[b.Sum] = true
		c.mu.Unlock()
		if !seen {
			c.opts.Warn("backup %s: its revision %d on %s does not count: %s; passed over", b.ID, b.Rev(), b.HolderNames(), b.Doubt)
		}
	}
}

// sameBackup reports whether a and b describe one backup, wherever its
// shares are.
func sameBackup(a, b *manifest.Manifest) bool {
	strip := func(m *manifest.Manifest) string {
		c := *m
		c.Shares, c.Revision = nil, 0
		data, _ := json.Marshal(c)
		return string(data)
	}
	return strip(a) == strip(b)
}

// copies counts the hosts of the catalog that hold b.
func (c *Catalog) copies(b *Backup) int {
	copies := 0
	for _, h := range b.Holders {
		if slices.Contains(c.hosts, h) {
			copies++
		}
	}
	return copies
}

// Vouchers is how many of a hosts file's hosts must hold a backup of k-of-n
// shares for it to count: 2 at least, so that no one host alone can put a
// backup forward, and k, but no more than the file lists.
func Vouchers(k, hosts int) int { return min(max(2, k), hosts) }

func (c *Catalog) judge(b, earlier *Backup) {
	copies := c.copies(b)
	hosts := len(c.hosts)
	switch need := Vouchers(b.K, hosts); {
	case copies < need:
		b.Doubt = fmt.Sprintf("it stands on %d of the %d hosts a backup with k=%d needs", copies, need, b.K)
	case earlier == nil || (b.K == earlier.K && b.N == earlier.N):
		b.Counts = true
	case copies < min(earlier.K, hosts):
		b.Doubt = fmt.Sprintf("its k=%d n=%d differ from k=%d n=%d of %s, and it stands on %d of the %d hosts that would vouch for the change",
			b.K, b.N, earlier.K, earlier.N, earlier.ID, copies, min(earlier.K, hosts))
	default:
		b.Counts = true
	}
}

// Query picks a backup: by ID, else the newest of Name (of any name when
// empty) made before Before (any time when zero).
type Query struct {
	ID     string
	Name   string
	Before time.Time
}

func (q Query) fits(b *Backup) bool {
	return (q.ID == "" || b.ID == q.ID) && (q.Name == "" || b.Name == q.Name) &&
		(q.Before.IsZero() || b.Time.Before(q.Before))
}

// NotFoundError is a Query that no backup on the hosts fits.
type NotFoundError struct{ Query Query }

func (e *NotFoundError) Error() string {
	what := "no backup"
	switch {
	case e.Query.ID != "":
		what += " " + e.Query.ID
	case e.Query.Name != "":
		what += " named " + e.Query.Name
	}
	if !e.Query.Before.IsZero() {
		what += " made before " + e.Query.Before.UTC().Format(time.RFC3339)
	}
	return what + " found on the hosts reached"
}

// Pick returns the backup q asks for among backups (newest first, as
// Backups returns them). Newer backups that fit but do not count are
// skipped, each with a warning naming the hosts that hold it. A backup
// asked for by ID is taken even when it does not count, with a warning.
func (c *Catalog) Pick(backups []*Backup, q Query) (*Backup, error) {
	var doubtful *Backup
	for _, b := range backups {
		if !q.fits(b) {
			continue
		}
		if b.Counts {
			return b, nil
		}
		if q.ID != "" {
			if doubtful == nil {
				doubtful = b
			}
			continue
		}
		if b.Pruned != nil {
			// Loud: enough hosts colluding could bury a backup too.
			c.opts.Warn("backup %s on %s was pruned (tombstones on %s); skipped", b.ID, b.HolderNames(), b.Pruned.HolderNames())
			continue
		}
		c.opts.Warn("backup %s on %s does not count: %s; skipped", b.ID, b.HolderNames(), b.Doubt)
	}
	if doubtful != nil {
		c.opts.Warn("backup %s on %s does not count: %s; taken as asked", doubtful.ID, doubtful.HolderNames(), doubtful.Doubt)
		return doubtful, nil
	}
	return nil, &NotFoundError{q}
}

// Newest is the newest backup of name that counts, nil if there is none.
// full, when not nil, says which backups can stand alone: the size of a
// backup is learnt from the last full one, not from a small incremental.
func Newest(backups []*Backup, name string, full func(*manifest.Manifest) bool) *Backup {
	for _, b := range backups {
		if b.Name == name && b.Counts && (full == nil || full(b.Manifest)) {
			return b
		}
	}
	return nil
}
