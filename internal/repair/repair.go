// Package repair rebuilds the missing or damaged shares of a backup from k
// good ones, without the key: the stream is joined from the good shares,
// and each share wanted is regenerated from the stripes the join verified,
// which gives it back byte for byte (docs/FORMAT.md, section 3); each is
// checked against the hash the manifest records before it takes its name. A new revision of the manifest, written beside
// the old one on every host, records where they now are.
package repair

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
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
	// Copy is a move that replaces a bad copy of a share good elsewhere
	// (scrub.Share.BadCopies) where it is, under the share's own name:
	// readers look for a share on every host that holds a file of its
	// name, so a rotten copy there is no redundancy. The rebuilt share
	// waits under its temp name until it matches the manifest; then the
	// bad file is removed and the new one takes its name. Named says To
	// is the host the manifest names for the share.
	Copy  bool
	Named bool

	stored manifest.Share // as stored, once it is
}

// ErrLost is a backup with fewer than k shares to read, good or damaged:
// nothing rebuilds it.
var ErrLost = errors.New("fewer than k good shares")

// Plan decides where each share that r found not good goes: back on its
// host when that is reachable and has room, else on a spare, a reachable
// host of the hosts files that holds no share of the backup. Fewer than k
// good shares may still do, with the damaged ones: bit rot in a stripe of
// one share and in another stripe of the next leaves k good blocks in
// every stripe, which the join rebuilds the stream from (and checks whole).
// A bad copy of a good share is replaced where it is (Move.Copy), unless
// its host is append-only (Stuck).
func Plan(ctx context.Context, listings []*catalog.Listing, r *scrub.Report) ([]Move, error) {
	m := r.Manifest
	if len(r.WaitsFor) > 0 {
		return nil, &WaitError{ID: m.ID, Hosts: r.WaitsFor}
	}
	if r.Good+len(damaged(r)) < m.K {
		return nil, fmt.Errorf("backup %s: %w (%d of %d): it cannot be repaired", m.ID, ErrLost, r.Good, m.K)
	}
	taken := map[*catalog.Host]bool{}
	for _, s := range r.Shares {
		if s.Good {
			taken[s.At] = true
		}
	}
	var moves []Move
	for _, s := range r.Shares {
		if s.Good {
			for _, c := range s.BadCopies {
				if !Stuck(c) {
					moves = append(moves, Move{Index: s.Index, Problem: c.Problem, From: c.Host, To: c.At, Path: c.Path, Copy: true, Named: c.Named})
				}
			}
			continue
		}
		mv, ok := place(ctx, listings, m, s, taken)
		if !ok {
			return nil, noRoom(m, s.Index)
		}
		moves = append(moves, mv)
	}
	return moves, nil
}

// place finds a host for share s of m: its own host first, then the others
// in hosts-file order; none of taken, each reachable and with room. It
// takes the host it gives.
func place(ctx context.Context, listings []*catalog.Listing, m *manifest.Manifest, s scrub.Share, taken map[*catalog.Host]bool) (Move, bool) {
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
		if l.Err != nil || taken[l.Host] || l.Host.Failed() || !room(ctx, l, shareSize(m)) {
			continue
		}
		mv.To, mv.Spare = l.Host, l.Host != s.At
		mv.Path = manifest.SharePath(m.ID, s.Index)
		if _, exists := l.Files[mv.Path]; exists {
			mv.Path = fmt.Sprintf("%s.r%d.share%d", m.ID, m.Rev()+1, s.Index)
		}
		taken[mv.To] = true
		return mv, true
	}
	return mv, false
}

// Stuck reports whether Plan leaves bad copy c of a good share where it
// is: on an append-only host (append-only=yes), where no file is ever
// removed, its admin has to remove it.
func Stuck(c scrub.Copy) bool { return c.At.AppendOnly == hostsfile.AppendOnlyClient }

// damaged lists the shares r found on a host but not good: read too
// when the good ones are fewer than k, for the stripes they still hold.
func damaged(r *scrub.Report) []scrub.Share {
	var out []scrub.Share
	for _, s := range r.Shares {
		if !s.Good && !s.Missing && s.At != nil {
			out = append(out, s)
		}
	}
	return out
}

func noRoom(m *manifest.Manifest, index int) error {
	return &NoHostError{ID: m.ID, Index: index, Size: shareSize(m)}
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
	// Warn, when not nil, hears of each share whose upload failed, and
	// where it goes next.
	Warn func(format string, args ...any)
}

// Repair rebuilds the shares of moves from the good shares r found and
// stores each where its move says. A share whose upload fails (the host
// full, the connection cut) is rebuilt again for the next host with room,
// as Plan would choose, until none is left. Then it writes the next
// revision of the manifest, naming only the shares stored whole, on every
// host reached, and returns it and the moves stored, with an error naming
// each share that found no host; Options.Warn hears of each upload given
// up and the host tried next. A move that replaces a bad copy (Move.Copy)
// is tried on its host alone, and changes no record of the manifest but
// the version its upload stored on the share's named host, on hosts that
// keep versions: when the moves change no record, no revision is written,
// and the manifest returned is nil.
func Repair(ctx context.Context, listings []*catalog.Listing, r *scrub.Report, moves []Move, opts Options) (*manifest.Manifest, []Move, error) {
	m := r.Manifest
	taken := map[*catalog.Host]bool{}
	for _, s := range r.Shares {
		if s.Good {
			taken[s.At] = true
		}
	}
	for _, mv := range moves {
		taken[mv.To] = true
	}
	var stored []Move
	var lost []error
	for len(moves) > 0 {
		done, failed, err := rebuild(ctx, r, moves, opts)
		if err != nil {
			return nil, nil, err
		}
		stored = append(stored, done...)
		moves = nil
		for _, f := range failed {
			if f.move.Copy {
				// The share is good elsewhere: there is nothing to
				// place, only this copy to mend, on its host or not at all.
				err := fmt.Errorf("backup %s: share %d: host %s: its bad copy not replaced: %w", m.ID, f.move.Index, f.move.To, f.err)
				if opts.Warn != nil {
					opts.Warn("%v", err)
				}
				lost = append(lost, err)
				continue
			}
			s := r.Shares[f.move.Index]
			s.Problem = f.err.Error()
			next, ok := place(ctx, listings, m, s, taken)
			if !ok {
				if opts.Warn != nil {
					opts.Warn("backup %s: share %d: host %s: %v; no other host to take it", m.ID, f.move.Index, f.move.To, f.err)
				}
				lost = append(lost, fmt.Errorf("%w (on %s: %v)", noRoom(m, f.move.Index), f.move.To, f.err))
				continue
			}
			if opts.Warn != nil {
				opts.Warn("backup %s: share %d: host %s: %v; trying %s", m.ID, f.move.Index, f.move.To, f.err, next.To)
			}
			moves = append(moves, next)
		}
	}
	if len(stored) == 0 {
		return nil, nil, errors.Join(lost...)
	}
	next := *m
	next.Revision = m.Rev() + 1
	next.Shares = slices.Clone(m.Shares)
	changed := false
	for _, mv := range stored {
		i := slices.IndexFunc(next.Shares, func(s manifest.Share) bool { return s.Index == mv.Index })
		rec := mv.stored
		if mv.Copy {
			if !mv.Named || i < 0 {
				continue
			}
			// The same share where the manifest puts it, but for the
			// version its upload stored on a host that keeps versions.
			rec = next.Shares[i]
			rec.ObjectVersion = mv.stored.ObjectVersion
			if rec == next.Shares[i] {
				continue
			}
		}
		changed = true
		if i >= 0 {
			next.Shares[i] = rec
		} else {
			next.Shares = append(next.Shares, rec)
		}
	}
	if !changed {
		return nil, stored, errors.Join(lost...)
	}
	slices.SortFunc(next.Shares, func(a, b manifest.Share) int { return a.Index - b.Index })
	if err := writeRevision(ctx, listings, &next); err != nil {
		return nil, nil, err
	}
	return &next, stored, errors.Join(lost...)
}

// failure is a move whose upload failed, and why.
type failure struct {
	move Move
	err  error
}

// rebuild joins the stream from the good shares r found, regenerating the
// shares of moves as it goes, streamed to their hosts. A share whose
// upload fails is given up, alone, and returned among failed; the others
// go on. A rebuilt share that differs from the one the manifest records
// stops it all: nothing is stored.
func rebuild(ctx context.Context, r *scrub.Report, moves []Move, opts Options) (done []Move, failed []failure, err error) {
	m := r.Manifest
	var sources []shard.Source
	for _, s := range r.Shares {
		if s.Good {
			sources = append(sources, s.At.Source(s.Path, s.Version))
		}
	}
	if len(sources) < m.K {
		for _, s := range damaged(r) {
			sources = append(sources, s.At.Source(s.Path, s.Version))
		}
	}
	outs := make([]*upload, len(moves)) // by move
	defer func() {
		for _, u := range outs {
			if u != nil {
				u.abort()
			}
		}
	}()
	// Two bad copies of one share are regenerated at once.
	writers := map[int]io.Writer{}
	var live []int // moves whose upload started
	for k, mv := range moves {
		// Hashed as m pins its shares, for the revision: in version 4
		// the share's units without their blocks, which the join
		// checked or computed; before, the whole file.
		u := &upload{move: mv, pin: m.Pin(), whole: m.Pin().WholeFile(), meta: shard.NewMetaHash(m.BlockSize)}
		if rm, err := mv.To.Remote(ctx); err != nil {
			u.err = err
		} else if u.up, err = rm.Create(ctx, mv.Path); err != nil {
			u.err = err
		}
		if u.err != nil {
			failed = append(failed, failure{mv, u.err})
			continue
		}
		outs[k] = u
		if w, ok := writers[mv.Index]; ok {
			writers[mv.Index] = io.MultiWriter(w, u)
		} else {
			writers[mv.Index] = u
		}
		live = append(live, k)
	}
	if len(live) == 0 {
		return nil, failed, nil
	}
	if opts.Progress != nil {
		i := moves[live[0]].Index
		writers[i] = io.MultiWriter(writers[i], progressWriter(opts.Progress))
	}
	// The good shares are read, and the damaged ones only when the good
	// are fewer than k. The
	// join verifies the stripes and regenerates the shares of moves from
	// them as it goes.
	if _, err := catalog.Join(ctx, m, sources, io.Discard, shard.JoinOptions{Regenerate: writers}); err != nil {
		return nil, nil, fmt.Errorf("rebuilding backup %s: %w", m.ID, err)
	}
	var whole []int
	for _, k := range live {
		mv, u := &moves[k], outs[k]
		if u.err != nil {
			failed = append(failed, failure{*mv, u.err})
			continue
		}
		mv.stored = manifest.Share{Index: mv.Index, Host: mv.To.URL(), Path: mv.Path, Size: shareSize(m)}
		m.SetSum(&mv.stored, u.digest())
		if i := slices.IndexFunc(m.Shares, func(s manifest.Share) bool { return s.Index == mv.Index }); i >= 0 && m.Shares[i].Sum() != mv.stored.Sum() {
			return nil, nil, fmt.Errorf("backup %s: share %d rebuilt is not the one stored (%s %s, the manifest says %s); nothing was stored",
				m.ID, mv.Index, u.pin, mv.stored.Sum(), m.Shares[i].Sum())
		}
		whole = append(whole, k)
	}
	// Only once every share rebuilt matched its manifest does one take
	// its name; a bad copy, which holds the name, goes just before.
	for _, k := range whole {
		mv := moves[k]
		if mv.Copy {
			if err := mv.To.Remove(ctx, mv.Path); err != nil {
				failed = append(failed, failure{mv, err})
				continue
			}
		}
		if err := outs[k].up.Commit(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			failed = append(failed, failure{mv, err})
			continue
		}
		mv.stored.ObjectVersion = remote.UploadVersion(outs[k].up)
		outs[k] = nil
		done = append(done, mv)
	}
	return done, failed, nil
}

// upload is one rebuilt share on its way to its host, written a unit
// (header, record, trailer) at a time. A write that fails gives the
// upload up (its temp file removed, nothing under its name) and swallows
// the rest, so the other shares go on.
type upload struct {
	move  Move
	up    remote.Upload
	err   error
	pin   manifest.Pin
	whole hash.Hash       // the whole file's hash, before version 4; else nil
	meta  *shard.MetaHash // version 4's, of the units without their blocks
}

func (u *upload) Write(p []byte) (int, error) {
	if u.err == nil {
		if _, err := u.up.Write(p); err != nil {
			u.err = err
			u.up.Abort()
		}
		if u.whole != nil {
			u.whole.Write(p)
		} else {
			u.meta.Write(p)
		}
	}
	return len(p), nil
}

// digest is the hash of what was written, as the manifest pins shares.
func (u *upload) digest() []byte {
	if u.whole != nil {
		return u.whole.Sum(nil)
	}
	sum := u.meta.Sum()
	return sum[:]
}

func (u *upload) abort() {
	if u.up != nil {
		u.up.Abort()
	}
}

// writeRevision stores the manifest revision m on every host reached, all
// at once, as bk-push stores its manifests: each waits for its own fsync,
// not for the others'. It counts only on max(2, k) of them: fewer is an
// error.
func writeRevision(ctx context.Context, listings []*catalog.Listing, m *manifest.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	path := manifest.RevisionPath(m.ID, m.Rev())
	errs := make([]error, len(listings))
	var wg sync.WaitGroup
	for i, l := range listings {
		if l.Err != nil {
			continue
		}
		wg.Go(func() {
			if err := l.Host.Put(ctx, path, data); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", l.Host, err)
			}
		})
	}
	wg.Wait()
	stored := 0
	for i, l := range listings {
		if l.Err == nil && errs[i] == nil {
			stored++
		}
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

// NoHostError is a plan that found no host for a share: every host reached
// holds a share of the backup, failed, or has no room. The backup stays as it is
// (restorable, since Plan refuses lost ones) until a host comes back, a
// spare is added or room is made.
// WaitError is a backup that the hosts reached cannot rebuild (a stripe
// has fewer than k good blocks there) and that shares on the unreachable
// Hosts may still make whole: it waits for them.
type WaitError struct {
	ID    string
	Hosts []string
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("backup %s: fewer than k good blocks in a stripe on the hosts reached; it waits for %s, unreachable, whose shares may make it whole",
		e.ID, strings.Join(e.Hosts, ", "))
}

type NoHostError struct {
	ID    string
	Index int
	Size  int64
}

func (e *NoHostError) Error() string {
	return fmt.Sprintf("backup %s: no host to take share %d: every host reached holds a share of it, failed, or has no room for %d bytes", e.ID, e.Index, e.Size)
}
