package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/reedsolomon"
)

// ErrOtherSet means that NewReaderAt found no share of the set asked for.
var ErrOtherSet = errors.New("shares of another set")

// RangeSource is a Source that may open a part of its share alone, so
// that a ReaderAt of a source whose Open reads on to the end (rclone's)
// gets only the parts it needs.
type RangeSource interface {
	Source
	// OpenRange reads length bytes from offset on, or fewer at the end.
	// Its error wraps errors.ErrUnsupported when the source reads parts
	// through its Open's io.ReaderAt instead.
	OpenRange(ctx context.Context, offset, length int64) (io.ReadCloser, error)
}

// ReadAtOptions configure a ReaderAt.
type ReadAtOptions struct {
	JoinOptions
	// Length is the stream's length, from a manifest that counts (or one
	// the user gave): it says where the shares end. The trailers there
	// must not contradict it (see ReaderAt).
	Length int64
	// StreamHash, when not zero, is the stream hash that manifest gives;
	// trailers must not contradict it either.
	StreamHash [HashSize]byte
	// CacheBytes bounds the decoded stripes kept for the next reads; 0
	// means DefaultCacheBytes. At least two stripes are always kept.
	CacheBytes int64
	// ReadAhead bounds how many stripes after a read that goes on from
	// the one before (as age's reader goes through a zstd frame, 64 KiB
	// at a time) are decoded in the background, so that the next stripe
	// is on its way while this one is used: as many as the reads in a
	// row moved across, up to ReadAhead and half the cache. 0 means
	// DefaultReadAhead; a negative number, none.
	ReadAhead int
}

// DefaultReadAhead is ReadAtOptions.ReadAhead when none is given.
const DefaultReadAhead = 4

// DefaultCacheBytes is how much decoded stream a ReaderAt keeps by
// default: a few zstd frames' worth, so that a reader going through one
// frame in age's 64 KiB chunks fetches each stripe once.
const DefaultCacheBytes = 8 << 20

// ReadStats counts what a ReaderAt has read.
type ReadStats struct {
	// Fetched is the bytes read from the shares: headers, trailers,
	// records and checksums. (What a transport reads ahead of what was
	// asked is not counted.)
	Fetched int64
	// ShareBytes is the size of all N shares of the set together (with
	// the header of one of them), found or not: what Fetched is a part of.
	ShareBytes int64
	// Stripes is how many stripes were read and checked, or tried (cache
	// hits not counted).
	Stripes int64
}

// ReaderAt reads any byte range of the stream that a set of stored shares
// rebuilds, fetching only the stripes that cover it: an io.ReaderAt over
// the stream as bk-join would write it, for readers that seek (age's
// DecryptReaderAt, then a zstd frame index).
//
// Each stripe it decodes is checked exactly as Join checks it (FORMAT.md
// section 3, "Reading shares"): the records (32·N bytes) of every share
// that can be read and the blocks of K of them, data shares first; a
// block counts only when every record read names it; where records
// disagree, every block of the stripe is read and two consistent versions
// are both refused, naming their shares; a bad block makes it read other
// shares' blocks; missing data blocks are rebuilt with Reed-Solomon. So
// fewer than K dishonest hosts can never make ReadAt return wrong bytes,
// nor fail while K honest shares can be read, and K or more can at most
// make it fail naming them. Only the stream hash is not checked, since
// that would mean reading every stripe's records; nothing it adds is
// needed for the bytes read, which each stripe's check already pins down.
//
// The stream's length comes from the caller (a manifest that counts).
// NewReaderAt reads every share's header and trailer: a trailer that K or
// more shares hold and that says another length or stream hash fails it,
// naming them; lesser disagreement makes those shares damaged. A share
// whose header, trailer or any stripe read is bad is reported once through
// Warn and in Report, as Join reports it, and its blocks are read only
// when no other share's will do; a share that cannot be read at all is
// not asked again.
//
// A RangeSource that can (rclone's) is opened for each range with
// OpenRange; other sources whose Open returns an io.ReaderAt (local
// files, SFTP, S3) are opened once and read at offsets; the rest are
// opened at each range and closed once it is read. A bounded cache keeps
// recently decoded stripes, and reads in order have the next stripes
// decoded ahead (ReadAtOptions.ReadAhead). ReadAt is safe for concurrent
// use; concurrent reads of one stripe decode it once. Canceling the
// context given to NewReaderAt, or Close, ends the reads under way.
type ReaderAt struct {
	ctx    context.Context
	cancel context.CancelFunc
	info   SetInfo
	trail  Trailer
	enc    reedsolomon.Encoder
	opts   ReadAtOptions
	shares []*atShare // by index; nil when missing
	stats  struct{ fetched, stripes atomic.Int64 }
	share  int64 // ShareBytes

	mu       sync.Mutex
	report   JoinReport
	reported []bool // by index: its damage was reported
	failed   []bool // by index: had a bad block, read last
	dead     []string
	cache    []*cachedStripe // most recently used last
	keep     int
	pending  map[int64]*pendingStripe
	last     int64          // the last stripe read
	run      int64          // stripes the reads in a row moved across
	ahead    int            // stripes to read ahead
	reading  sync.WaitGroup // stripes read ahead
}

// atShare is a share opened for ranged reads.
type atShare struct {
	src     Source
	index   int
	name    string
	hdrSize int64
	rc      io.ReadCloser // open for the ReaderAt's life, or nil
	at      io.ReaderAt   // rc's, or one that opens src for each range
	r       *ReaderAt
}

type cachedStripe struct {
	s      int64
	blocks [][]byte
}

type pendingStripe struct {
	done   chan struct{}
	blocks [][]byte
	err    error
}

// opened is a source with its reader kept open after the header was
// read: what admit takes as a source.
type opened struct {
	Source
	rc io.ReadCloser // nil when at opens the source for each range
	at io.ReaderAt
}

// NewReaderAt opens the shares of sources for ranged reads of the stream
// they rebuild. It reads every header and trailer (of one copy of a
// share found on several hosts, as Join), picks the set as Join does
// (opts.SetID, else the one most shares belong to), and fails when fewer
// than K shares of it are left. Close releases the shares.
func NewReaderAt(ctx context.Context, sources []Source, opts ReadAtOptions) (*ReaderAt, error) {
	if opts.Length < 0 {
		return nil, fmt.Errorf("stream length %d out of range", opts.Length)
	}
	ctx, cancel := context.WithCancel(ctx)
	var headers atomic.Int64
	probes := probeCopies(sources, opts.SetID, func(sources []Source) []probe {
		probes := make([]probe, len(sources))
		var wg sync.WaitGroup
		for i, src := range sources {
			wg.Go(func() { probes[i] = openProbe(ctx, src, &headers) })
		}
		wg.Wait()
		return probes
	})
	fail := func(err error) (*ReaderAt, error) {
		for _, p := range probes {
			if o, ok := p.src.(*opened); ok && o.rc != nil {
				o.rc.Close()
			}
		}
		cancel()
		return nil, err
	}
	j, err := admit(ctx, probes, opts.JoinOptions)
	if err != nil {
		return fail(err)
	}
	if want := (SetInfo{SetID: opts.SetID}); opts.SetID != ([16]byte{}) && j.info.SetID != opts.SetID {
		return fail(fmt.Errorf("%w: no share of set %s, only of set %s", ErrOtherSet, want.ShortID(), j.info.ShortID()))
	}
	r := &ReaderAt{
		ctx: ctx, cancel: cancel, info: j.info, enc: j.enc, opts: opts,
		shares:   make([]*atShare, j.info.N),
		report:   j.report,
		reported: make([]bool, j.info.N),
		failed:   make([]bool, j.info.N),
		dead:     make([]string, j.info.N),
		pending:  map[int64]*pendingStripe{},
		last:     -2,
	}
	r.stats.fetched.Store(headers.Load())
	r.keep = int(max(2, cmpOr(opts.CacheBytes, DefaultCacheBytes)/j.info.StripeSize()))
	switch {
	case opts.ReadAhead == 0:
		r.ahead = DefaultReadAhead
	case opts.ReadAhead > 0:
		r.ahead = opts.ReadAhead
	}
	kept := map[io.ReadCloser]bool{}
	for _, sh := range j.shares {
		if sh == nil {
			continue
		}
		o := sh.src.(*opened)
		r.shares[sh.index] = &atShare{src: o.Source, index: sh.index, name: sh.name, hdrSize: sh.hdrSize, rc: o.rc, at: o.at, r: r}
		kept[o.rc] = true
	}
	for _, p := range probes {
		if o, ok := p.src.(*opened); ok && o.rc != nil && !kept[o.rc] {
			o.rc.Close()
		}
	}
	if err := r.checkTrailers(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func cmpOr(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// openProbe opens src and reads its header: through OpenRange, for a
// RangeSource that can; else through Open, whose reader is kept for
// reads at offsets when it can, or else closed.
func openProbe(ctx context.Context, src Source, fetched *atomic.Int64) probe {
	if rs, ok := src.(RangeSource); ok {
		at := &sourceAt{ctx: ctx, src: rs}
		ha := &headerAt{at: at}
		h, err := ReadHeader(ha)
		if !errors.Is(err, errors.ErrUnsupported) {
			fetched.Add(ha.off)
			return probe{src: &opened{Source: src, at: at}, h: h, err: err}
		}
	}
	rc, err := src.Open(ctx, 0)
	if err != nil {
		return probe{src: src, err: err}
	}
	if at, ok := rc.(io.ReaderAt); ok {
		// One request, where a transport's Read would read ahead.
		ha := &headerAt{at: at}
		h, err := ReadHeader(ha)
		fetched.Add(ha.off)
		return probe{src: &opened{Source: src, rc: rc, at: at}, h: h, err: err}
	}
	cr := &headerCounter{r: rc}
	h, err := ReadHeader(cr)
	fetched.Add(cr.n)
	rc.Close()
	return probe{src: &opened{Source: src, at: &sourceAt{ctx: ctx, src: src}}, h: h, err: err}
}

// sourceAt reads a share at offsets by opening it for each range: with
// OpenRange, for a RangeSource, else with Open, reading what it needs.
type sourceAt struct {
	ctx context.Context
	src Source
}

func (s *sourceAt) ReadAt(p []byte, off int64) (int, error) {
	var rc io.ReadCloser
	var err error
	rs, ranged := s.src.(RangeSource)
	if ranged {
		rc, err = rs.OpenRange(s.ctx, off, int64(len(p)))
	} else {
		rc, err = s.src.Open(s.ctx, off)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return n, io.EOF
	case err == nil && ranged:
		// Read the range to its end, where a reader reports a failure
		// that cut it short (rclone's exit status).
		if _, err := rc.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
			return n, err
		}
	}
	return n, err
}

// headerAt reads a share's header through ReadAt: the first bytes of the
// share at once, and any more the header needs.
type headerAt struct {
	at  io.ReaderAt
	off int64 // bytes read so far
	buf []byte
}

// headerGuess holds the header of a share with a label of any length.
const headerGuess = 512

func (h *headerAt) Read(p []byte) (int, error) {
	if len(h.buf) == 0 {
		size := max(len(p), headerGuess)
		if h.off > 0 {
			size = len(p)
		}
		h.buf = make([]byte, size)
		n, err := h.at.ReadAt(h.buf, h.off)
		h.buf, h.off = h.buf[:n], h.off+int64(n)
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
	}
	n := copy(p, h.buf)
	h.buf = h.buf[n:]
	return n, nil
}

// headerCounter counts the bytes read through it.
type headerCounter struct {
	r io.Reader
	n int64
}

func (c *headerCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Size is the length of the stream.
func (r *ReaderAt) Size() int64 { return r.trail.Length }

// Info is the set's parameters.
func (r *ReaderAt) Info() SetInfo { return r.info }

// Report says which shares were missing and which were found damaged so
// far; Degraded tells a read that needed to work around them.
func (r *ReaderAt) Report() JoinReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.report
	rep.Missing = slices.Clone(rep.Missing)
	rep.Damaged = slices.Clone(rep.Damaged)
	return rep
}

// Stats counts what was read so far.
func (r *ReaderAt) Stats() ReadStats {
	return ReadStats{Fetched: r.stats.fetched.Load(), ShareBytes: r.share, Stripes: r.stats.stripes.Load()}
}

// Close closes the shares; reads after it fail.
func (r *ReaderAt) Close() error {
	r.cancel()
	r.reading.Wait()
	for _, sh := range r.shares {
		if sh != nil && sh.rc != nil {
			sh.rc.Close()
		}
	}
	return nil
}

// ReadAt reads len(p) bytes of the stream at off, decoding the stripes
// that hold them (several at once) unless they are cached. At the end of
// the stream it returns fewer bytes and io.EOF; on a failure, the bytes
// of the stripes before the one that failed, and the error.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("shard.ReaderAt: negative offset")
	}
	if err := context.Cause(r.ctx); err != nil {
		return 0, err
	}
	size := r.Size()
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), size)
	ss := r.info.StripeSize()
	first, last := off/ss, (end-1)/ss
	r.readAhead(first, last)
	// Each stripe goes into p once decoded: a long read holds no more
	// stripes than the cache does.
	errs := make([]error, last-first+1)
	var failed atomic.Bool
	var wg sync.WaitGroup
	sem := make(chan struct{}, readAtParallel)
	for i := range errs {
		if sem <- struct{}{}; failed.Load() {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s := first + int64(i)
			blocks, err := r.stripe(s)
			if errs[i] = err; err != nil {
				failed.Store(true)
				return
			}
			for b, block := range blocks {
				start := s*ss + int64(b)*int64(r.info.BlockSize)
				if lo, hi := max(off, start), min(end, start+int64(len(block))); lo < hi {
					copy(p[lo-off:], block[lo-start:hi-start])
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return int(max(off, (first+int64(i))*ss) - off), err
		}
	}
	if n := int(end - off); n < len(p) {
		return n, io.EOF
	}
	return len(p), nil
}

// readAtParallel is how many stripes one ReadAt decodes at once: enough
// to keep a few round trips to each host in flight.
const readAtParallel = 4

// readAhead notes that stripes first to last are read. When reads go on
// from where the last one ended, it starts decoding as many stripes after
// them as the reads in a row have moved across (up to r.ahead): a run of
// reads that stays in one stripe (a header parsed) reads nothing ahead,
// and a short run reads ahead no more than it read.
func (r *ReaderAt) readAhead(first, last int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if first == r.last || first == r.last+1 {
		r.run += last - r.last
	} else {
		r.run = 0
	}
	r.last = last
	stripes := stripesFor(r.Size(), r.info)
	for s := last + 1; s <= last+min(int64(r.ahead), int64(r.keep/2), r.run) && s < stripes; s++ {
		if _, ok := r.pending[s]; ok || slices.ContainsFunc(r.cache, func(c *cachedStripe) bool { return c.s == s }) {
			continue
		}
		// A failure is left for the read that needs the stripe to meet.
		r.reading.Go(func() { _, _ = r.stripe(s) })
	}
}

// stripe returns the data blocks of stripe s, from the cache, from a read
// of it already under way, or decoded now.
func (r *ReaderAt) stripe(s int64) ([][]byte, error) {
	r.mu.Lock()
	if i := slices.IndexFunc(r.cache, func(c *cachedStripe) bool { return c.s == s }); i >= 0 {
		c := r.cache[i]
		r.cache = append(slices.Delete(r.cache, i, i+1), c)
		r.mu.Unlock()
		return c.blocks, nil
	}
	if p, ok := r.pending[s]; ok {
		r.mu.Unlock()
		select {
		case <-p.done:
			return p.blocks, p.err
		case <-r.ctx.Done():
			return nil, context.Cause(r.ctx)
		}
	}
	p := &pendingStripe{done: make(chan struct{})}
	r.pending[s] = p
	r.mu.Unlock()

	p.blocks, p.err = r.decode(s)
	r.stats.stripes.Add(1)

	r.mu.Lock()
	delete(r.pending, s)
	if p.err == nil {
		r.cache = append(r.cache, &cachedStripe{s: s, blocks: p.blocks})
		if len(r.cache) > r.keep {
			r.cache = slices.Delete(r.cache, 0, len(r.cache)-r.keep)
		}
	}
	r.mu.Unlock()
	close(p.done)
	return p.blocks, p.err
}

// decode reads and checks stripe s as Join does, with a joiner of its
// own that holds what each share gave at s.
func (r *ReaderAt) decode(s int64) ([][]byte, error) {
	j := &joiner{
		ctx: r.ctx, info: r.info, enc: r.enc, opts: r.opts.JoinOptions,
		shares: make([]*share, r.info.N),
		spares: make(chan []byte, r.info.K),
		report: JoinReport{Info: r.info},
	}
	r.mu.Lock()
	var light []*share
	for i, a := range r.shares {
		if a == nil {
			continue
		}
		sh := &share{index: i, name: a.name, src: a.src, hdrSize: a.hdrSize, state: stateActive,
			failed: r.failed[i], reported: r.reported[i], why: r.dead[i]}
		if sh.why != "" {
			sh.state = stateDead
		} else {
			light = append(light, sh)
		}
		j.shares[i] = sh
	}
	r.mu.Unlock()
	j.fetch = func(s int64, shs []*share) { r.fetch(s, shs, true) }
	light = preferred(light)
	full := light[:min(len(light), r.info.K)]
	var wg sync.WaitGroup
	wg.Go(func() { r.fetch(s, full, true) })
	wg.Go(func() { r.fetch(s, light[len(full):], false) })
	wg.Wait()

	d, err := j.decide(s)
	var blocks [][]byte
	if err == nil {
		var o *outStripe
		if o, err = j.rebuild(s, d.good); err == nil {
			blocks = o.blocks
		}
	}
	r.settle(j)
	return blocks, err
}

// settle keeps what a stripe's joiner learnt about the shares: the
// damage reported, the blocks found bad, the shares that cannot be read.
func (r *ReaderAt) settle(j *joiner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range j.report.Damaged {
		if !slices.Contains(r.report.Damaged, name) {
			r.report.Damaged = append(r.report.Damaged, name)
		}
	}
	for i, sh := range j.shares {
		if sh == nil {
			continue
		}
		r.reported[i] = r.reported[i] || sh.reported
		if sh.cur == nil {
			continue
		}
		if sh.cur.bad {
			r.failed[i] = true
		}
		if sh.cur.kind == kindBad && r.dead[i] == "" {
			r.dead[i] = sh.cur.err.Error()
		}
	}
}

// fetch reads the record of stripe s of each share of shs (its block too
// when full, else its checksums only) into the share's cur, all at once.
func (r *ReaderAt) fetch(s int64, shs []*share, full bool) {
	var wg sync.WaitGroup
	for _, sh := range shs {
		a := r.shares[sh.index]
		wg.Go(func() { sh.cur = a.record(s, full) })
	}
	wg.Wait()
}

// record reads the record of stripe s, or its checksums only.
func (a *atShare) record(s int64, full bool) *item {
	info := a.r.info
	off := a.hdrSize + s*int64(info.RecordSize())
	size := info.RecordSize()
	if !full {
		off += int64(info.BlockSize)
		size = info.N * HashSize
	}
	it := &item{buf: make([]byte, size), full: full}
	n, err := a.readAt(it.buf, off)
	switch {
	case n == size:
		it.kind = kindRecord
	case err == nil || errors.Is(err, io.EOF):
		// The trailer was found past this stripe: the share was cut short
		// since, or it lies.
		it.kind, it.err = kindBad, errors.New("ends before its trailer says (truncated)")
	default:
		it.kind, it.err = kindBad, err
	}
	return it
}

// readAt reads len(p) bytes at off of the share, or up to its end.
func (a *atShare) readAt(p []byte, off int64) (int, error) {
	n, err := a.at.ReadAt(p, off)
	a.r.stats.fetched.Add(int64(n))
	return n, err
}

// checkTrailers reads each share's trailer where the stream's length puts
// it and holds them against that length and hash.
func (r *ReaderAt) checkTrailers() error {
	info := r.info
	stripes := stripesFor(r.opts.Length, info)
	type found struct {
		sh *atShare
		it *item
	}
	var all []found
	for _, a := range r.shares {
		if a != nil {
			r.share = int64(info.N) * (a.hdrSize + stripes*int64(info.RecordSize()) + TrailerSize)
			break
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, a := range r.shares {
		if a == nil {
			continue
		}
		wg.Go(func() {
			unit := make([]byte, TrailerSize+1)
			n, err := a.readAt(unit, a.hdrSize+stripes*int64(info.RecordSize()))
			if err == nil {
				n, err = len(unit), nil
			} else if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
				if n == 0 {
					err = io.EOF
				}
			}
			it := &item{}
			classify(it, unit, info, stripes, n, err)
			if it.kind == kindRecord {
				it.kind, it.err = kindBad, errors.New("it goes on past the stream's end")
			}
			mu.Lock()
			all = append(all, found{a, it})
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(all, func(x, y found) int { return x.sh.index - y.sh.index })
	expected := func(t Trailer) bool {
		return t.Length == r.opts.Length && (r.opts.StreamHash == [HashSize]byte{} || t.StreamHash == r.opts.StreamHash)
	}
	groups := map[Trailer][]int{}
	var order []Trailer
	for _, f := range all {
		if f.it.kind != kindTrailer {
			r.damaged(f.sh, f.it.err.Error())
			continue
		}
		t := f.it.trailer
		if _, ok := groups[t]; !ok {
			order = append(order, t)
		}
		groups[t] = append(groups[t], f.sh.index)
	}
	// The trailer K shares hold, else the one most of those that fit the
	// length hold (without a hash to hold them against, it tells only
	// which shares to call damaged).
	slices.SortStableFunc(order, func(a, b Trailer) int { return len(groups[b]) - len(groups[a]) })
	var chosen *Trailer
	for _, t := range order {
		idx := groups[t]
		switch {
		case len(idx) >= info.K && chosen != nil && len(groups[*chosen]) >= info.K:
			return fmt.Errorf("the shares' trailers disagree (%s %s %d bytes, stream hash %x…; %s %s %d bytes, stream hash %x…); refusing the set",
				r.names(groups[*chosen]), says(groups[*chosen]), chosen.Length, chosen.StreamHash[:4], r.names(idx), says(idx), t.Length, t.StreamHash[:4])
		case len(idx) >= info.K && !expected(t):
			return fmt.Errorf("%s %s the stream is %d bytes (stream hash %x…), not %d%s; refusing the set",
				r.names(idx), says(idx), t.Length, t.StreamHash[:4], r.opts.Length, r.wantHash())
		case expected(t) && chosen == nil:
			chosen = &t
		}
	}
	if chosen == nil {
		return fmt.Errorf("no share of set %s ends where a stream of %d bytes would end", info.ShortID(), r.opts.Length)
	}
	for _, t := range order {
		if t == *chosen {
			continue
		}
		for _, i := range groups[t] {
			r.damaged(r.shares[i], fmt.Sprintf("its trailer says %d bytes (stream hash %x…), the others %d (%x…)",
				t.Length, t.StreamHash[:4], chosen.Length, chosen.StreamHash[:4]))
		}
	}
	r.trail = *chosen
	r.report.Trailer = *chosen
	return nil
}

// wantHash is the stream hash expected, for messages.
func (r *ReaderAt) wantHash() string {
	if r.opts.StreamHash == [HashSize]byte{} {
		return ""
	}
	return fmt.Sprintf(" (stream hash %x…)", r.opts.StreamHash[:4])
}

// names lists shares by index for messages, as Join does.
func (r *ReaderAt) names(idx []int) string {
	j := &joiner{shares: make([]*share, r.info.N)}
	for i, a := range r.shares {
		if a != nil {
			j.shares[i] = &share{name: a.name}
		}
	}
	return j.names(idx)
}

// damaged reports, once per share, that a had a bad part.
func (r *ReaderAt) damaged(a *atShare, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported[a.index] {
		return
	}
	r.reported[a.index] = true
	r.report.Damaged = append(r.report.Damaged, a.name)
	if r.opts.Warn != nil {
		r.opts.Warn("%s: damaged at its end: %s", a.name, why)
	}
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// String names the set, for messages.
func (r *ReaderAt) String() string {
	var names []string
	for _, a := range r.shares {
		if a != nil {
			names = append(names, a.name)
		}
	}
	return fmt.Sprintf("set %s (%s)", r.info.ShortID(), strings.Join(names, ", "))
}
