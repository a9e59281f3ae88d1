// Package scrub checks backups where they are stored, without the key:
// every share of a backup is read on its host and held against what the
// manifest (which counts under the reading rules) records of it, and the
// backup is judged by how many good shares it has left. bk-check and
// bk-ls build on it.
package scrub

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
)

// State is how a backup or a host fares.
type State string

// The states, from best to worst.
const (
	Healthy  State = "healthy"  // every share good
	Degraded State = "degraded" // some shares bad or missing, more than k good
	AtRisk   State = "at risk"  // exactly k good: one more loss loses it
	Lost     State = "lost"     // fewer than k good: it cannot be restored
)

// StateOf judges a backup of k-of-n shares with good of them good.
func StateOf(good, k, n int) State {
	switch {
	case good >= n:
		return Healthy
	case good > k:
		return Degraded
	case good == k:
		return AtRisk
	}
	return Lost
}

// Worse is the worse of two states.
func Worse(a, b State) State {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func rank(s State) int {
	switch s {
	case Degraded:
		return 1
	case AtRisk:
		return 2
	case Lost:
		return 3
	}
	return 0
}

// Share is what was found of one share.
type Share struct {
	Index int `json:"index"`
	// Host is where the share was read, or where the manifest says it is
	// when it was found nowhere; empty when the manifest lists no host
	// (its host failed during the push).
	Host string `json:"host,omitempty"`
	Path string `json:"path,omitempty"`
	// At is the host Host names, when it is known.
	At *catalog.Host `json:"-"`
	// Version is the version of the file read on At ("" for the current
	// one): catalog.Placed.VersionOn.
	Version string `json:"-"`
	// Good is whether the share holds what the manifest records; else
	// Problem says what is wrong, and Missing whether it is simply absent.
	Good    bool   `json:"good"`
	Missing bool   `json:"missing,omitempty"`
	Problem string `json:"problem,omitempty"`
	// Unreachable is a share missing because its host could not be
	// reached: it may well be whole there.
	Unreachable bool `json:"unreachable,omitempty"`
	// BadStripes are the stripes whose blocks are all that is wrong with
	// a share not good (a version-4 manifest pins its checksums, and the
	// rest of it is whole): its other blocks still count for a restore,
	// which rebuilds a stripe from any k good blocks.
	BadStripes []int64 `json:"bad_stripes,omitempty"`
	// Outside is a share that no host given holds, whose host the
	// manifest names is not among them: a restore still reads it there
	// (docs/FORMAT.md, section 5, rule 5), but it is not counted good,
	// since nothing the user gave looks after it (bk-prune, quotas,
	// bk-check's alarms): its host moved, or was dropped from the list.
	Outside bool `json:"outside,omitempty"`
	// BadCopies are the other copies of the share found bad: on hosts
	// beside the one named above (a share a repair stored on a spare
	// while its host was down, which came back with its own copy). A
	// restore that finds the good copy's host down reads one of these, so
	// each makes the backup at least degraded, for bk-repair to replace.
	BadCopies []Copy `json:"bad_copies,omitempty"`
}

// Copy is a copy of a share, on a host that holds a file of its path,
// found bad.
type Copy struct {
	Host    string `json:"host"`
	Path    string `json:"path"`
	Problem string `json:"problem"`
	// At is the host Host names; Named, whether it is the one the
	// manifest names for the share; Version, the version of the file
	// read there (catalog.Placed.VersionOn).
	At      *catalog.Host `json:"-"`
	Named   bool          `json:"-"`
	Version string        `json:"-"`
}

// OutsideHint is the way forward from a share that is Outside.
const OutsideHint = "if that host moved, give its line as it is now; if it is gone for good, bk-repair HOSTS stores " +
	"the share on a host given that holds none of the backup (add a spare when every host holds one)"

// AnyOutside reports whether a share of reports is Outside.
func AnyOutside(reports []*Report) bool { return len(OutsideHosts(reports)) > 0 }

// OutsideHosts names the hosts that the Outside shares of reports stand
// on, each once, and counts those shares.
func OutsideHosts(reports []*Report) map[string]int {
	hosts := map[string]int{}
	for _, r := range reports {
		for _, s := range r.Shares {
			if s.Outside {
				hosts[s.Host]++
			}
		}
	}
	return hosts
}

// Report is what checking one backup found.
type Report struct {
	Manifest *manifest.Manifest `json:"-"`
	Shares   []Share            `json:"shares"` // all n, by index
	Good     int                `json:"good"`
	// PartlyGood counts the shares not good whose only fault is a few
	// bad blocks (BadStripes): they count for their other stripes.
	PartlyGood int   `json:"partly_good"`
	State      State `json:"state"`
	// WaitsFor names the unreachable hosts whose shares a backup needs:
	// with fewer than k good blocks in a stripe on the hosts reached, it
	// is at risk, not lost, as those shares may be whole.
	WaitsFor []string `json:"waits_for,omitempty"`
}

// Options tune a check.
type Options struct {
	// Quick checks only presence, size, header and trailer of each share;
	// else every byte is read.
	Quick bool
	// Parallel bounds the shares read at once; 0 means 4.
	Parallel int
	// Progress, when not nil, is told of the bytes read.
	Progress func(n int)
}

// Check reads the shares of backup m from the hosts of listings and
// judges it. Each share is read on every host that lists it (catalog.Place),
// every copy as deeply as opts say: a share is good when one copy is, and
// each other copy found bad is reported with it (Share.BadCopies).
func Check(ctx context.Context, cat *catalog.Catalog, listings []*catalog.Listing, m *manifest.Manifest, opts Options) (*Report, error) {
	placed, err := cat.Place(m, listings)
	if err != nil {
		return nil, err
	}
	r := newReport(m)
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	read := func(do func()) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			do()
		})
	}
	results := make([][]copyResult, len(placed))
	for i, p := range placed {
		if outside(p) {
			read(func() { r.Shares[p.Index] = checkOutside(ctx, m, p, opts) })
			continue
		}
		results[i] = make([]copyResult, len(p.Found))
		for k, f := range p.Found {
			read(func() {
				res := &results[i][k]
				res.missing, res.err = checkCopy(ctx, m, p.Share, f.Host, p.VersionOn(f.Host), f.Info.Size, opts)
			})
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, p := range placed {
		if !outside(p) {
			r.Shares[p.Index] = judgeCopies(p, results[i])
		}
	}
	r.judge()
	return r, nil
}

// newReport is a report on m with every share missing.
func newReport(m *manifest.Manifest) *Report {
	r := &Report{Manifest: m, Shares: make([]Share, m.N)}
	for i := range r.Shares {
		r.Shares[i] = Share{Index: i, Missing: true, Problem: "not stored: its host failed during the push"}
	}
	return r
}

// judge counts the good shares and says what that makes of the backup.
// Shares with a few bad blocks (BadStripes) count stripe by stripe: the
// backup fares as its worst stripe, with as many good shares as that
// stripe has good blocks, since a restore rebuilds each stripe from any k.
// A backup that shares on unreachable hosts could still make whole is at
// risk, not lost: a host down for the night does not lose it.
func (r *Report) judge() {
	r.Good, r.PartlyGood, r.WaitsFor = 0, 0, nil
	worst := 0 // the most shares with a bad block in one stripe
	bad := map[int64]int{}
	unknown := 0 // shares on unreachable hosts
	var unreachable []string
	for _, s := range r.Shares {
		if s.Good {
			r.Good++
		}
		if s.Unreachable {
			unknown++
			if !slices.Contains(unreachable, s.Host) {
				unreachable = append(unreachable, s.Host)
			}
		}
		if len(s.BadStripes) > 0 {
			r.PartlyGood++
		}
		for _, st := range s.BadStripes {
			bad[st]++
			worst = max(worst, bad[st])
		}
	}
	known := r.Good + r.PartlyGood - worst
	r.State = StateOf(known, r.Manifest.K, r.Manifest.N)
	if r.State == Lost && known+unknown >= r.Manifest.K {
		r.State, r.WaitsFor = AtRisk, unreachable
	}
	if r.State == Healthy && slices.ContainsFunc(r.Shares, func(s Share) bool { return len(s.BadCopies) > 0 }) {
		r.State = Degraded
	}
}

// absent is share p when no copy of it is good.
func absent(p catalog.Placed) Share {
	s := Share{Index: p.Index, Path: p.Path, Host: p.Named.String(), At: p.Named, Missing: true, Problem: "missing"}
	switch {
	case !p.Listed:
		s.Problem, s.Outside = "its host is not among the hosts given", len(p.Found) == 0
	case p.Named.Failed():
		s.Problem, s.Unreachable = "host unreachable", true
	}
	return s
}

// outside reports whether share p is Outside: no host given holds it.
func outside(p catalog.Placed) bool { return !p.Listed && len(p.Found) == 0 }

// checkOutside checks share p where the manifest says, to tell whether it
// is there, as a restore would read it (and a repair, short of good
// shares); not good all the same, as bk-ls, which reads no share, says
// too.
func checkOutside(ctx context.Context, m *manifest.Manifest, p catalog.Placed, opts Options) Share {
	out := absent(p)
	missing, err := checkCopy(ctx, m, p.Share, p.Named, p.VersionOn(p.Named), -1, opts)
	out.Missing = missing
	if err == nil {
		out.Problem += " (the share is there, good)"
	} else {
		out.Problem += " (there: " + err.Error() + ")"
	}
	return out
}

// copyResult is what checking a copy of a share found: checkCopy's
// results.
type copyResult struct {
	missing bool
	err     error
}

// judgeCopies is share p by what the checks of its copies (p.Found) found,
// res[k] of p.Found[k]: good at the first good copy, the others that are
// bad its BadCopies; when none is good, the first copy's problem is the
// share's, and the rest are its BadCopies.
func judgeCopies(p catalog.Placed, res []copyResult) Share {
	out := absent(p)
	first := slices.IndexFunc(res, func(r copyResult) bool { return r.err == nil })
	if first < 0 && len(res) > 0 {
		first = 0
	}
	for k, f := range p.Found {
		h, err := f.Host, res[k].err
		switch {
		case k == first && err == nil:
			good := Share{Index: p.Index, Path: p.Path, Host: h.String(), At: h, Version: p.VersionOn(h), Good: true}
			good.BadCopies = out.BadCopies
			out = good
		case k == first:
			out.Host, out.At, out.Version, out.Missing, out.Problem = h.String(), h, p.VersionOn(h), res[k].missing, err.Error()
			if bb := (*badBlocks)(nil); errors.As(err, &bb) {
				out.BadStripes = bb.stripes
			}
		case err != nil:
			out.BadCopies = append(out.BadCopies, Copy{Host: h.String(), Path: p.Path, Problem: err.Error(), At: h, Named: h == p.Named, Version: p.VersionOn(h)})
		}
	}
	return out
}

// checkCopy checks the share s of m on host h, of version unless ""
// (catalog.Placed.VersionOn), listed at size listed by this run (or -1);
// missing says the file is not there at all.
// A share of a version-3 manifest is read for the hash of the whole file
// alone, which pins every byte of it (docs/FORMAT.md, section 8); only a
// share that fails is read again, block by block, to name what is wrong
// in it. Other versions are read once, each block checked against its
// checksum.
func checkCopy(ctx context.Context, m *manifest.Manifest, s manifest.Share, h *catalog.Host, version string, listed int64, opts Options) (missing bool, err error) {
	wholeOnly := m.Pin() == manifest.PinBLAKE3
	missing, err = readCopy(ctx, m, s, h, version, listed, opts, wholeOnly)
	if wholeOnly && errors.Is(err, errPin) {
		missing, err = readCopy(ctx, m, s, h, version, listed, opts, false)
	}
	return missing, err
}

// errPin is a share whose file does not have the hash the manifest pins.
var errPin = errors.New("its checksums of the other shares' blocks differ from those stored")

// readCopy reads the share s of m on host h (of version, unless ""): its
// whole file for its hash alone when wholeOnly, else each block against
// its checksum too, and the rest for the hash m pins it by.
func readCopy(ctx context.Context, m *manifest.Manifest, s manifest.Share, h *catalog.Host, version string, listed int64, opts Options, wholeOnly bool) (missing bool, err error) {
	r, err := h.Remote(ctx)
	if err != nil {
		return true, fmt.Errorf("host unreachable: %w", err)
	}
	// The size this run's listing gave is what a Stat would say (a
	// request: an S3 HEAD, an SFTP stat), from the same host; a file
	// gone or changed since fails the reads below, which end at its
	// trailer.
	size := listed
	if listed < 0 || version != "" {
		st, err := remote.StatVersion(ctx, r, s.Path, version)
		if errors.Is(err, remote.ErrNotExist) {
			return true, errors.New("missing")
		}
		if err != nil {
			return false, err
		}
		size = st.Size
	}
	if size != s.Size {
		return false, fmt.Errorf("%d bytes, the manifest says %d", size, s.Size)
	}
	rc, err := remote.OpenVersion(ctx, r, s.Path, version, 0)
	if err != nil {
		return errors.Is(err, remote.ErrNotExist), err
	}
	defer rc.Close()
	counted := io.Reader(rc)
	if opts.Progress != nil {
		counted = progressReader{counted, opts.Progress}
	}
	// Smaller than a chunk, so the body's reads go past it straight into
	// the chunk buffers; a quick check reads a header alone.
	bufSize := 64 << 10
	if opts.Quick {
		bufSize = quickBuffer
	}
	br := bufio.NewReaderSize(counted, bufSize)
	var head bytes.Buffer
	hdr, err := readHeader(io.TeeReader(br, &head), m, s.Index)
	if err != nil {
		return false, err
	}
	stripes := (m.StreamSize + hdr.StripeSize() - 1) / hdr.StripeSize()
	if want := hdr.Offset(stripes) + shard.TrailerSize; s.Size != want {
		return false, fmt.Errorf("the manifest says %d bytes, its stream makes shares of %d", s.Size, want)
	}
	if opts.Quick {
		return false, quickTrailer(ctx, r, rc, s, version, hdr, m)
	}
	// The units of the file go to whole, the hash of the whole file of
	// versions 1 to 3, or else to meta, version 4's.
	pin := m.Pin()
	whole, meta := pin.WholeFile(), shard.NewMetaHash(hdr.BlockSize)
	sum := io.Writer(meta)
	if whole != nil {
		sum = whole
	}
	sum.Write(head.Bytes())
	var blocks *badBlocks // blocks bad, the rest of the share read on
	if wholeOnly {
		err = hashBody(br, whole, hdr.Offset(stripes)-hdr.Offset(0))
	} else {
		err = checkBlocks(br, hdr, stripes, s.Index, whole, meta)
	}
	if errors.As(err, &blocks) {
		if whole != nil {
			// The hash of the whole file pins the blocks too: with
			// them bad, nothing checks the rest of the share.
			return false, errors.New(err.Error())
		}
		err = nil
	}
	if err != nil {
		return false, err
	}
	tb := make([]byte, shard.TrailerSize)
	if _, err := io.ReadFull(br, tb); err != nil {
		return false, fmt.Errorf("trailer: %w", err)
	}
	sum.Write(tb)
	if n, err := io.Copy(io.Discard, br); err != nil || n > 0 {
		return false, fmt.Errorf("%d stray bytes after the trailer (%v)", n, err)
	}
	if err := checkTrailer(tb, hdr, m); err != nil {
		return false, err
	}
	got := meta.Sum()
	if whole != nil {
		got = [shard.HashSize]byte(whole.Sum(nil))
	}
	if hex.EncodeToString(got[:]) != s.Sum() {
		return false, fmt.Errorf("%w (%s mismatch)", errPin, pin)
	}
	if blocks != nil {
		return false, blocks
	}
	return false, nil
}

// badBlocks is a share whose blocks of stripes do not match their
// checksums. Under a version-4 manifest, whose hash pins the checksums,
// a share with nothing else wrong still serves its other stripes.
type badBlocks struct{ stripes []int64 }

func (e *badBlocks) Error() string {
	if len(e.stripes) == 1 {
		return fmt.Sprintf("stripe %d: its block does not match its checksum", e.stripes[0])
	}
	return fmt.Sprintf("stripes %d and %d more: their blocks do not match their checksums", e.stripes[0], len(e.stripes)-1)
}

// maxBadStripes bounds the bad stripes a share's check lists: past them
// the share is taken as bad whole, and reading it stops.
const maxBadStripes = 1 << 12

// hashBody feeds the next size bytes of r to sum, a chunk at a time.
func hashBody(r io.Reader, sum hash.Hash, size int64) error {
	bufs := chunkBuffers.Get().(*[2][]byte)
	defer chunkBuffers.Put(bufs)
	want := int(min(chunkSize, size))
	if cap(bufs[0]) < want {
		bufs[0] = make([]byte, want)
	}
	buf := bufs[0][:want]
	for size > 0 {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size)])
		sum.Write(buf[:n])
		size -= int64(n)
		if err != nil {
			return fmt.Errorf("%d bytes short: %w", size, err)
		}
	}
	return nil
}

// chunkBuffers are checkBlocks' pairs of chunk buffers (hashBody's is the
// first), kept for the next share: a full check of the soak's hosts late in its year reads
// some 1,200 shares, and allocating and clearing two buffers for each,
// and collecting them, was a quarter of bk-check's and bk-repair's CPU.
var chunkBuffers = sync.Pool{New: func() any { return new([2][]byte) }}

// chunkSize is about how much of a share checkBlocks reads at a time:
// large reads, and hash writes large enough for the hash's SIMD code.
const chunkSize = 2 << 20

// checkBlocks reads the stripes' records of share index from r and checks
// each block against its own checksum. Another goroutine works on each
// chunk read beside this one: with whole (the hash of the whole file of
// versions 1 and 2) it feeds it the same bytes, in order; without, it
// checks the blocks of the chunk's second half, while this one feeds each
// record's checksums to meta. Every byte is read once, and the hashing
// runs on two cores. Of two buffers, one is read into while the other is
// still being worked on. The error names the first bad stripe.
func checkBlocks(r io.Reader, hdr shard.Header, stripes int64, index int, whole hash.Hash, meta *shard.MetaHash) error {
	recSize := hdr.RecordSize()
	perChunk := min(int64(max(1, chunkSize/recSize)), max(1, stripes))
	bufs := chunkBuffers.Get().(*[2][]byte)
	defer chunkBuffers.Put(bufs) // deferred first: run once the worker below is waited for
	for i, b := range bufs {
		if size := int(perChunk) * recSize; cap(b) < size {
			bufs[i] = make([]byte, size)
		}
	}
	own := hdr.BlockSize + index*shard.HashSize
	var bad []int64
	check := func(chunk []byte, first, from, to int64) error {
		var found []int64
		for j := from; j < to; j++ {
			rec := chunk[int(j)*recSize:][:recSize]
			if shard.BlockHash(hdr.SetID, first+j, index, rec[:hdr.BlockSize]) != [shard.HashSize]byte(rec[own:]) {
				found = append(found, first+j)
			}
		}
		if len(found) == 0 {
			return nil
		}
		return &badBlocks{found}
	}
	// took adds the bad stripes a check found, in order; past
	// maxBadStripes they end the read.
	took := func(err error) error {
		var b *badBlocks
		if !errors.As(err, &b) {
			return err
		}
		bad = append(bad, b.stripes...)
		if len(bad) > maxBadStripes {
			// Bad as a whole; the rest is not read, so not counted.
			return fmt.Errorf("stripes %d and more than %d others: their blocks do not match their checksums", bad[0], maxBadStripes-1)
		}
		return nil
	}
	done := make(chan error, 1)
	working := false
	defer func() {
		if working {
			<-done
		}
	}()
	for first, i := int64(0), 0; first < stripes; first, i = first+perChunk, i+1 {
		n := min(perChunk, stripes-first)
		chunk := bufs[i%2][:int(n)*recSize]
		if got, err := io.ReadFull(r, chunk); err != nil {
			return fmt.Errorf("stripe %d: %w", first+int64(got/recSize), err)
		}
		if working {
			working = false
			if err := took(<-done); err != nil {
				return err
			}
		}
		split := n
		if whole == nil {
			split = (n + 1) / 2
		}
		working = true
		go func() {
			if whole != nil {
				whole.Write(chunk)
				done <- nil
				return
			}
			done <- check(chunk, first, split, n)
		}()
		if err := took(check(chunk, first, 0, split)); err != nil {
			return err
		}
		if whole == nil {
			for j := range n {
				meta.Write(chunk[int(j)*recSize:][:recSize])
			}
		}
	}
	if working {
		working = false
		if err := took(<-done); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		return &badBlocks{bad}
	}
	return nil
}

type progressReader struct {
	r    io.Reader
	tell func(int)
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.tell(n)
	return n, err
}

// readHeader reads a share's header and checks it is share index of the
// set m names.
func readHeader(r io.Reader, m *manifest.Manifest, index int) (shard.Header, error) {
	h, err := shard.ReadHeader(r)
	if err != nil {
		return h, fmt.Errorf("header: %w", err)
	}
	switch {
	case h.ID() != m.SetID:
		return h, fmt.Errorf("a share of set %s, the manifest names set %s", h.ShortID(), m.SetID[:8])
	case h.Index != index:
		return h, fmt.Errorf("holds share %d", h.Index)
	case h.K != m.K || h.N != m.N || h.BlockSize != m.BlockSize:
		return h, fmt.Errorf("header says k=%d n=%d block size %d, the manifest k=%d n=%d block size %d",
			h.K, h.N, h.BlockSize, m.K, m.N, m.BlockSize)
	}
	return h, nil
}

// quickBuffer is what a quick check reads of a share for its header: a
// header is some 70 bytes, a label's more (the reader reads on past
// the buffer for a longer one).
const quickBuffer = 4 << 10

// quickTrailer reads the trailer of share s through rc, which read its
// header, when rc reads at any offset (the remotes' readers do: a pread,
// an SFTP read, a ranged GET or the bytes Open's first one fetched), so
// that a share costs one open; else through a second open at it.
func quickTrailer(ctx context.Context, r remote.Remote, rc io.Reader, s manifest.Share, version string, hdr shard.Header, m *manifest.Manifest) error {
	tb := make([]byte, shard.TrailerSize)
	at := s.Size - shard.TrailerSize
	if ra, ok := rc.(io.ReaderAt); ok {
		// At the end of the file a full read may come with io.EOF.
		if n, err := ra.ReadAt(tb, at); n < len(tb) {
			return fmt.Errorf("trailer: %d of %d bytes (%w)", n, len(tb), cmp.Or(err, io.ErrUnexpectedEOF))
		}
		return checkTrailer(tb, hdr, m)
	}
	rc2, err := remote.OpenVersion(ctx, r, s.Path, version, at)
	if err != nil {
		return err
	}
	defer rc2.Close()
	if _, err := io.ReadFull(rc2, tb); err != nil {
		return fmt.Errorf("trailer: %w", err)
	}
	return checkTrailer(tb, hdr, m)
}

func checkTrailer(b []byte, hdr shard.Header, m *manifest.Manifest) error {
	t, err := shard.ParseTrailer(b, hdr.SetInfo)
	switch {
	case err != nil:
		return fmt.Errorf("trailer: %w", err)
	case t.Length != m.StreamSize:
		return fmt.Errorf("trailer says %d bytes, the manifest %d", t.Length, m.StreamSize)
	case hex.EncodeToString(t.StreamHash[:]) != m.StreamHash:
		return errors.New("trailer's stream hash differs from the manifest's")
	}
	return nil
}

// Presence judges backup m by what the listings show, reading nothing: a
// share is good when a host lists a file of its path and of the size the
// manifest records, and a copy listed at another size is a bad one. It is
// what bk-ls shows; Check reads the files.
func Presence(cat *catalog.Catalog, listings []*catalog.Listing, m *manifest.Manifest) (*Report, error) {
	placed, err := cat.Place(m, listings)
	if err != nil {
		return nil, err
	}
	r := newReport(m)
	for _, p := range placed {
		res := make([]copyResult, len(p.Found))
		for k, f := range p.Found {
			if f.Info.Size != p.Size {
				res[k].err = fmt.Errorf("%d bytes, the manifest says %d", f.Info.Size, p.Size)
			}
		}
		r.Shares[p.Index] = judgeCopies(p, res)
	}
	r.judge()
	return r, nil
}

// WithChain judges an incremental backup together with its chain: it
// restores only when every ancestor does, so it fares no better than the
// worst of them, and it is lost when one is not among the backups on the
// hosts (states holds the state of each backup there, by ID). The reason
// is empty unless an ancestor is missing.
func WithChain(m *manifest.Manifest, own State, states map[string]State) (State, string) {
	st := own
	for _, a := range m.Ancestors {
		as, ok := states[a.ID]
		if !ok {
			return Lost, fmt.Sprintf("backup %s, which it builds on, is not on the hosts", a.ID)
		}
		st = Worse(st, as)
	}
	return st, ""
}

// WithChains applies WithChain to the backups judged here (their own
// states by ID) among all those on the hosts; a backup on the hosts that
// was not judged here counts as healthy when it counts at all. warn hears
// of each missing ancestor.
func WithChains(judged map[string]State, all []*catalog.Backup, warn func(id, why string)) map[string]State {
	states := map[string]State{}
	for _, b := range all {
		if b.Counts {
			states[b.ID] = Healthy
		}
	}
	maps.Copy(states, judged)
	out := map[string]State{}
	for _, b := range all {
		own, ok := judged[b.ID]
		if !ok {
			continue
		}
		st, why := WithChain(b.Manifest, own, states)
		if why != "" {
			warn(b.ID, why)
		}
		out[b.ID] = st
	}
	return out
}
