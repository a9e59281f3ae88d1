package catalog

import (
	"context"
	"fmt"

	"github.com/bk-backup/bk/internal/manifest"
)

// Chain is the chain that restores m: its ancestors as the manifests on
// the hosts give them, each checked against what m pins (set ID, stream
// hash), then m itself. It returns the listings it made of the hosts for
// the ancestors' manifests, through which their shares are found.
func (c *Catalog) Chain(ctx context.Context, m *manifest.Manifest) ([]*manifest.Manifest, []*Listing, error) {
	if !m.Incremental() {
		return []*manifest.Manifest{m}, nil, nil
	}
	want := map[string]bool{}
	for _, a := range m.Ancestors {
		want[a.ID] = true
	}
	listings := c.List(ctx, c.Hosts(), func(id string) bool { return want[id] })
	byID := map[string]*Backup{}
	for _, b := range c.Backups(listings) {
		if want[b.ID] && (byID[b.ID] == nil || (b.Counts && !byID[b.ID].Counts)) {
			byID[b.ID] = b
		}
	}
	var out []*manifest.Manifest
	for i, a := range m.Ancestors {
		b := byID[a.ID]
		switch {
		case b == nil:
			return nil, nil, fmt.Errorf("backup %s (level %d of the chain of %s) is missing on the hosts reached", a.ID, i, m.ID)
		case b.SetID != a.SetID || b.StreamHash != a.StreamHash:
			return nil, nil, fmt.Errorf("backup %s on %s is not the one %s builds on (set or stream hash differ)", a.ID, b.HolderNames(), m.ID)
		}
		out = append(out, b.Manifest)
	}
	return append(out, m), listings, nil
}
