package seek

import (
	"context"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/seal"
	"github.com/bk-backup/bk/internal/shard"
)

// Stored is a backup's archive on the hosts, opened for reading in pieces:
// the shares as a ReaderAt over the stream (only the stripes read are
// fetched, each checked as bk-join checks it), then the layers.
type Stored struct {
	*Archive
	Shares *shard.ReaderAt
}

// OpenStored opens the archive of backup m, whose shares the listings of
// cat find. The error is a *NotSeekableError when the archive must be read
// whole.
func OpenStored(ctx context.Context, cat *catalog.Catalog, m *manifest.Manifest, listings []*catalog.Listing, keys seal.Keys, opts shard.JoinOptions) (*Stored, error) {
	sources, err := cat.Sources(m, listings)
	if err != nil {
		return nil, named(m.ID, err)
	}
	r, err := catalog.OpenAt(ctx, m, sources, shard.ReadAtOptions{JoinOptions: opts})
	if err != nil {
		return nil, named(m.ID, err)
	}
	a, err := Open(m.ID, r, r.Size(), keys)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &Stored{Archive: a, Shares: r}, nil
}

// Close closes the archive and its shares.
func (s *Stored) Close() {
	s.Archive.Close()
	s.Shares.Close()
}
