package scrub

import (
	"fmt"
	"strings"

	"github.com/bk-backup/bk/internal/catalog"
)

// Standing reports whether backup id can be built on, by what the listings
// show: its manifest counts among backups (it was not pruned), and it and
// every backup it builds on have at least k shares present. The error says
// what is wrong, as the end of a sentence naming the backup.
func Standing(cat *catalog.Catalog, listings []*catalog.Listing, backups []*catalog.Backup, id string) error {
	byID := map[string]*catalog.Backup{}
	for _, b := range backups {
		if b.Counts {
			byID[b.ID] = b
		}
	}
	need := []string{id}
	if b := byID[id]; b != nil {
		for _, a := range b.Ancestors {
			need = append(need, a.ID)
		}
	}
	for _, want := range need {
		b := byID[want]
		what := ""
		if want != id {
			what = "needs " + want + ", which "
		}
		if b == nil {
			var graves []string
			for _, l := range listings {
				for _, g := range l.Tombstones {
					if g.ID == want {
						graves = append(graves, l.Host.String())
					}
				}
			}
			if len(graves) > 0 {
				return fmt.Errorf("%swas pruned (tombstones on %s)", what, strings.Join(graves, ", "))
			}
			return fmt.Errorf("%sis not among the backups on the hosts (pruned, or its manifests lost)", what)
		}
		r, err := Presence(cat, listings, b.Manifest)
		if err != nil {
			return err
		}
		if r.Good < b.K {
			return fmt.Errorf("%shas %d of the %d shares it needs on the hosts", what, r.Good, b.K)
		}
	}
	return nil
}
