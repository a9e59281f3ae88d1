// Package repair rebuilds the missing or damaged shares of a backup from k
// good ones, without the key: the stream is joined from the good shares
// and split again with the set's own ID and parameters, which gives every
// share back byte for byte (docs/FORMAT.md, section 3); only the shares
// wanted are stored, each checked against the SHA-256 the manifest records
// before it takes its name. A new revision of the manifest, written beside
// the old one on every host, records where they now are.
package repair

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/scrub"
	"github.com/bk-backup/bk/internal/shard"
)

// Move is one share to rebuild and where it goes.
type Move struct {
	Index   int
	Problem string        // what was wrong with it
	From    string        // the host it was on, or expected on
	To      *catalog.Host // where it will be stored
	Path    string        // its name there
	Spare   bool          // To is not the host it was on
}

// ErrLost is a backup with fewer than k good shares: nothing rebuilds it.
var ErrLost = errors.New("fewer than k good shares")

// Plan decides where each share that r found not good goes: back on its
// host when that is reachable and has room, else on a spare, a reachable
// host of the hosts files that holds no share of the backup.
func Plan(ctx context.Context, listings []*catalog.Listing, r *scrub.Report) ([]Move, error) {
	m := r.Manifest
	if r.Good < m.K {
		return nil, fmt.Errorf("backup %s: %w (%d of %d): it cannot be repaired", m.ID, ErrLost, r.Good, m.K)
	}
	taken := map[*catalog.Host]bool{}
	for _, s := range r.Shares {
		if s.Good {
			taken[s.At] = true
		}
	}
	size := shareSize(m)
	var moves []Move
	for _, s := range r.Shares {
		if s.Good {
			continue
		}
		mv := Move{Index: s.Index, Problem: s.Problem, From: s.Host}
		var candidates []*catalog.Listing
		for _, l := range listings {
			if l.Host == s.At {
				candidates = append(candidates, l)
			}
		}
		for _, l := range listings {
			if l.Host != s.At {
				candidates = append(candidates, l)
			}
		}
		for _, l := range candidates {
			if l.Err != nil || taken[l.Host] || !room(ctx, l, size) {
				continue
			}
			mv.To, mv.Spare = l.Host, l.Host != s.At
			mv.Path = manifest.SharePath(m.ID, s.Index)
			if _, exists := l.Files[mv.Path]; exists {
				mv.Path = fmt.Sprintf("%s.r%d.share%d", m.ID, m.Rev()+1, s.Index)
			}
			break
		}
		if mv.To == nil {
			return nil, fmt.Errorf("backup %s: no host to take share %d: every host reached holds a share of it, or has no room for %d bytes", m.ID, s.Index, size)
		}
		taken[mv.To] = true
		moves = append(moves, mv)
	}
	return moves, nil
}

// shareSize is the size of each share of m.
func shareSize(m *manifest.Manifest) int64 {
	h := shard.Header{SetInfo: shard.SetInfo{K: m.K, N: m.N, BlockSize: m.BlockSize, Label: m.Label}}
	stripes := (m.StreamSize + h.StripeSize() - 1) / h.StripeSize()
	return h.Offset(stripes) + shard.TrailerSize
}

// room reports whether the host of l can take size more bytes: within
// its quota and its free space, when it can say.
func room(ctx context.Context, l *catalog.Listing, size int64) bool {
	if q := l.Host.Quota.Bytes; q > 0 {
		used := size
		for _, fi := range l.Files {
			used += fi.Size
		}
		for _, t := range l.Temp {
			used += t.Size
		}
		if used > q {
			return false
		}
	}
	r, err := l.Host.Remote(ctx)
	if err != nil {
		return false
	}
	free, err := r.Free(ctx)
	return err != nil || free >= size
}

// Options tune a repair.
type Options struct {
	// Progress, when not nil, is told of the bytes rebuilt.
	Progress func(n int)
}

// Repair rebuilds the shares of moves from the good shares r found,
// stores each where its move says, and writes the next revision of the
// manifest on every host reached. It returns that revision.
func Repair(ctx context.Context, listings []*catalog.Listing, r *scrub.Report, moves []Move, opts Options) (*manifest.Manifest, error) {
	m := r.Manifest
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var sources []shard.Source
	for _, s := range r.Shares {
		if s.Good {
			sources = append(sources, s.At.Source(s.Path))
		}
	}
	setID, err := hex.DecodeString(m.SetID)
	if err != nil {
		return nil, err
	}
	uploads := make([]remote.Upload, m.N)
	defer func() {
		for _, u := range uploads {
			if u != nil {
				u.Abort()
			}
		}
	}()
	writers := make([]io.Writer, m.N)
	for i := range writers {
		writers[i] = io.Discard
	}
	// Each share stored anew is hashed as m pins its shares (SHA-256 in
	// versions 1 and 2), for the revision.
	sums := make([]hash.Hash, m.N)
	var algo string
	for _, mv := range moves {
		rm, err := mv.To.Remote(ctx)
		if err != nil {
			return nil, err
		}
		u, err := rm.Create(ctx, mv.Path)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", mv.To, err)
		}
		sums[mv.Index], algo = m.ShareHash()
		uploads[mv.Index], writers[mv.Index] = u, io.MultiWriter(u, sums[mv.Index])
	}
	if opts.Progress != nil {
		writers[moves[0].Index] = io.MultiWriter(writers[moves[0].Index], progressWriter(opts.Progress))
	}

	pr, pw := io.Pipe()
	var joinErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		// Only the good shares are read: the others are known missing.
		_, joinErr = catalog.Join(ctx, m, sources, pw, shard.JoinOptions{})
		pw.CloseWithError(joinErr)
	})
	_, _, splitErr := shard.Split(ctx, pr, writers, shard.SplitOptions{
		K: m.K, N: m.N, BlockSize: m.BlockSize, Label: m.Label, SetID: [16]byte(setID),
		AllowEmpty: m.StreamSize == 0,
	})
	pr.CloseWithError(errors.Join(splitErr, errors.New("the split stopped")))
	wg.Wait()
	if joinErr != nil {
		return nil, fmt.Errorf("rebuilding backup %s: %w", m.ID, joinErr)
	}
	if splitErr != nil {
		return nil, fmt.Errorf("rebuilding backup %s: %w", m.ID, splitErr)
	}

	next := *m
	next.Revision = m.Rev() + 1
	next.Shares = slices.Clone(m.Shares)
	for _, mv := range moves {
		stored := manifest.Share{Index: mv.Index, Host: mv.To.URL(), Path: mv.Path, Size: shareSize(m)}
		m.SetSum(&stored, sums[mv.Index].Sum(nil))
		i := slices.IndexFunc(next.Shares, func(s manifest.Share) bool { return s.Index == mv.Index })
		if i >= 0 && next.Shares[i].Sum() != stored.Sum() {
			return nil, fmt.Errorf("backup %s: share %d rebuilt is not the one stored (%s %s, the manifest says %s); nothing was stored",
				m.ID, mv.Index, algo, stored.Sum(), next.Shares[i].Sum())
		}
		if i >= 0 {
			next.Shares[i] = stored
		} else {
			next.Shares = append(next.Shares, stored)
		}
	}
	slices.SortFunc(next.Shares, func(a, b manifest.Share) int { return a.Index - b.Index })
	for _, mv := range moves {
		if err := uploads[mv.Index].Commit(ctx); err != nil {
			return nil, fmt.Errorf("host %s: storing share %d of %s: %w", mv.To, mv.Index, m.ID, err)
		}
	}
	return &next, writeRevision(ctx, listings, &next)
}

// writeRevision stores the manifest revision m on every host reached. It
// counts only on max(2, k) of them: fewer is an error.
func writeRevision(ctx context.Context, listings []*catalog.Listing, m *manifest.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	path := manifest.RevisionPath(m.ID, m.Rev())
	stored := 0
	var errs []error
	for _, l := range listings {
		if l.Err != nil {
			continue
		}
		if err := l.Host.Put(ctx, path, data); err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", l.Host, err))
			continue
		}
		stored++
	}
	if need := min(max(2, m.K), len(listings)); stored < need {
		return fmt.Errorf("revision %d of %s stored on %d hosts, it counts on %d: %w", m.Rev(), m.ID, stored, need, errors.Join(errs...))
	}
	return nil
}

type progressWriter func(int)

func (p progressWriter) Write(b []byte) (int, error) {
	p(len(b))
	return len(b), nil
}
