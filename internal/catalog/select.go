package catalog

import (
	"context"
	"errors"
	"slices"

	"github.com/bk-backup/bk/internal/manifest"
)

// A tool that wants one backup (the newest of a name, an ID, a chain)
// reads only the manifests and tombstones it needs; one that looks at all
// backups (bk-ls, bk-check, bk-prune) reads them all with List. The names
// tell the candidates apart: a backup's files are named after its ID,
// which carries its name and time, and a manifest on a host whose time is
// not its ID's is damaged. What is chosen is what Backups and Pick would
// choose having read everything; where an unread manifest could change
// the judgement of one read, every manifest of that name is read.

// alone reports whether b's judgement cannot depend on the backups of its
// name before it, so that it is judged without them: when too few hosts
// hold it to count, when every host of the catalog holds it, or when no
// other manifest of its name that may sort before it could hold it to a
// k above its copies (reading rule 3). Only a manifest standing on more
// hosts than b could: one that counts stands on at least its k hosts, or
// on all. all are the backups read, read says which backups' files were
// read, and listings hold the names of the others. When b is not judged
// alone, taller are the IDs of the unread manifests that stand on more
// hosts than b (their k may settle it); none means every manifest of the
// name must be read.
func (c *Catalog) alone(b *Backup, all []*Backup, listings []*Listing, read func(id string) bool) (ok bool, taller []string) {
	copies := c.copies(b)
	hosts := len(c.hosts)
	if copies < min(max(2, b.K), hosts) || copies >= hosts {
		return true, nil
	}
	for _, o := range all {
		if o != b && o.Name == b.Name && manifest.Newer(o.Manifest, b.Manifest) >= 0 && c.copies(o) > copies && min(o.K, hosts) > copies {
			return false, nil
		}
	}
	listed := map[string]int{} // unread manifest files of b's name, by the hosts listing them
	for _, l := range listings {
		if l.Err != nil || !slices.Contains(c.hosts, l.Host) {
			continue
		}
		for _, fi := range l.kept {
			// Time and name are the ID's: a later one sorts after b.
			if !fi.Tombstone && fi.Of == b.Name && !fi.Time.After(b.Time) && !read(fi.ID) {
				listed[fi.Name]++
				if listed[fi.Name] == copies+1 {
					taller = append(taller, fi.ID)
				}
			}
		}
	}
	return len(taller) == 0, taller
}

// BackupsOf is what Backups makes of the backups whose IDs ids accepts on
// hosts, judged as Backups judges them over every manifest there, but
// reading only their manifests and tombstones; where an unread manifest
// could change a judgement, those of the name standing on more hosts
// (whose k settles it, as a rule), and every manifest of the name only
// where they do not. The listings show every file by name, the manifests
// and tombstones read, and the ones that could not be read.
func (c *Catalog) BackupsOf(ctx context.Context, hosts []*Host, ids func(id string) bool) ([]*Backup, []*Listing) {
	listings := c.List(ctx, hosts, ids)
	all := gather(listings)
	none := func(string) bool { return false }
	undecided, taller := c.judgeAll(all, listings, ids, ids, none)
	if len(undecided) == 0 {
		return c.settle(all, listings), listings
	}
	if len(taller) > 0 {
		// A spare or a host down on some nights leaves most backups on
		// fewer hosts than the few made or repaired onto all of them:
		// reading those few usually settles it.
		wider := func(id string) bool { return ids(id) || slices.Contains(taller, id) }
		listings = c.List(ctx, hosts, wider)
		all = gather(listings)
		if undecided, _ = c.judgeAll(all, listings, ids, wider, none); len(undecided) == 0 {
			all = slices.DeleteFunc(all, func(b *Backup) bool { return !ids(b.ID) })
			return c.settle(all, listings), listings
		}
	}
	whole := func(name string) bool { return slices.Contains(undecided, name) }
	wider := func(id string) bool {
		name, _, _ := manifest.ParseID(id)
		return ids(id) || whole(name)
	}
	listings = c.List(ctx, hosts, wider)
	all = gather(listings)
	c.judgeAll(all, listings, wider, wider, whole)
	all = slices.DeleteFunc(all, func(b *Backup) bool { return !ids(b.ID) })
	return c.settle(all, listings), listings
}

// WithAncestors is BackupsOf backup id and, when it counts, of the
// backups it builds on: what a check of it or of its standing reads.
func (c *Catalog) WithAncestors(ctx context.Context, hosts []*Host, id string) ([]*Backup, []*Listing) {
	want := []string{id}
	ids := func(x string) bool { return slices.Contains(want, x) }
	backups, listings := c.BackupsOf(ctx, hosts, ids)
	for _, b := range backups {
		if b.ID == id && b.Counts && b.Incremental() {
			for _, a := range b.Ancestors {
				want = append(want, a.ID)
			}
			return c.BackupsOf(ctx, hosts, ids)
		}
	}
	return backups, listings
}

// walk hands visit the backups on hosts whose IDs fit, as BackupsOf makes
// them, one second of the IDs' times at a time, newest first, until visit
// returns true. It returns listings of everything it read.
func (c *Catalog) walk(ctx context.Context, hosts []*Host, fits func(id string) bool, visit func([]*Backup) bool) []*Listing {
	bySecond := map[int64][]string{}
	for _, l := range c.List(ctx, hosts, func(string) bool { return false }) {
		for _, fi := range l.kept {
			if !fi.Tombstone && fits(fi.ID) {
				t := fi.Time.Unix()
				if !slices.Contains(bySecond[t], fi.ID) {
					bySecond[t] = append(bySecond[t], fi.ID)
				}
			}
		}
	}
	seconds := make([]int64, 0, len(bySecond))
	for t := range bySecond {
		seconds = append(seconds, t)
	}
	slices.Sort(seconds)
	slices.Reverse(seconds)
	seen := map[string]bool{}
	for _, t := range seconds {
		for _, id := range bySecond[t] {
			seen[id] = true
		}
		backups, _ := c.BackupsOf(ctx, hosts, func(id string) bool { return slices.Contains(bySecond[t], id) })
		if visit(backups) {
			break
		}
	}
	return c.List(ctx, hosts, func(id string) bool { return seen[id] })
}

// Find picks the backup q asks for on the hosts of the catalog, as Pick
// picks it among all Backups, reading the manifests of the newest
// candidates only, newest first, until one counts (and every manifest of
// a name only where reading rule 3 needs its history). The listings show
// every file by name and the manifests read.
func (c *Catalog) Find(ctx context.Context, q Query) (*Backup, []*Listing, error) {
	fits := func(id string) bool {
		name, t, ok := manifest.ParseID(id)
		return ok && (q.ID == "" || id == q.ID) && (q.Name == "" || name == q.Name) &&
			(q.Before.IsZero() || t.Before(q.Before))
	}
	var found *Backup
	var err error = &NotFoundError{q}
	listings := c.walk(ctx, c.Hosts(), fits, func(backups []*Backup) bool {
		b, e := c.Pick(backups, q)
		var notFound *NotFoundError
		if errors.As(e, &notFound) {
			return false
		}
		found, err = b, e
		return true
	})
	return found, listings, err
}

// FindNewest is Newest of the backups on hosts, reading the manifests of
// name newest first until it finds it.
func (c *Catalog) FindNewest(ctx context.Context, hosts []*Host, name string, full func(*manifest.Manifest) bool) *Backup {
	var found *Backup
	c.walk(ctx, hosts, func(id string) bool {
		n, _, _ := manifest.ParseID(id)
		return n == name
	}, func(backups []*Backup) bool {
		found = Newest(backups, name, full)
		return found != nil
	})
	return found
}
