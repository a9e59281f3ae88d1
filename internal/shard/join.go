package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// Source is one stored share, read lazily: Join opens it at the offset of
// the stripe it needs, so a share that is not needed is barely read.
type Source interface {
	// Name says where the share is, for messages: a path, "host nas".
	Name() string
	// Open reads the share from offset on. When the reader is also an
	// io.ReaderAt (offsets counted from the start of the share, safe for
	// concurrent calls), a share whose blocks are not needed is read for
	// its checksums only.
	Open(ctx context.Context, offset int64) (io.ReadCloser, error)
}

// fileNamer is a Source named by its host, which holds many files, that
// also names the file it reads: messages about a file that is no share of
// the set, which no share index identifies, name the file too.
type fileNamer interface {
	File() string
}

// fileName names src with the file it reads, when its Name does not.
func fileName(src Source) string {
	if o, ok := src.(*opened); ok {
		src = o.Source
	}
	if f, ok := src.(fileNamer); ok {
		return fmt.Sprintf("%s (%s)", src.Name(), f.File())
	}
	return src.Name()
}

// JoinOptions receives the messages of a join.
type JoinOptions struct {
	Warn func(format string, args ...any) // a share is missing or damaged
	Note func(format string, args ...any) // optional: anything else worth a line
	// SetID, when not zero, is the set to rebuild (from a manifest):
	// shares of any other set are bad shares. Without it the set most
	// shares belong to is rebuilt.
	SetID [16]byte
	// EachMissing names every missing share in a warning of its own;
	// without it more than a few are summed up in one (Summary).
	EachMissing bool
	// Regenerate, when not empty, also rebuilds the share files of these
	// indices from the stripes the join verified, each to its writer, as
	// bk-split wrote them (regen.go). Nothing here checks such a file as a
	// whole: the caller holds it against a pin (a manifest's hash) before
	// it trusts it. A write that fails fails the join.
	Regenerate map[int]io.Writer
}

// namedShares is how many names Summary gives before counting the rest.
const namedShares = 4

// Summary joins names with commas, or, when there are many, the first few
// and how many more: "share 0, share 2, share 4, share 6 … (and 124
// more)". 128 names on a line tell a reader less than the count does.
func Summary(names []string) string {
	if len(names) <= namedShares+1 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s … (and %d more)", strings.Join(names[:namedShares], ", "), len(names)-namedShares)
}

// JoinReport says what a join found.
type JoinReport struct {
	Info    SetInfo
	Trailer Trailer
	// Missing and Damaged name the shares that were not found or that had
	// a damaged part; the stream was rebuilt without those parts.
	Missing, Damaged []string
	// Incomplete says what was missing at the end of a share stream whose
	// data verified all the same (its end frame, some trailers).
	Incomplete error
}

// Degraded reports whether the stream was rebuilt around something that
// was missing or bad: then a restore is finished, but not healthy.
func (r JoinReport) Degraded() bool {
	return len(r.Missing) > 0 || len(r.Damaged) > 0 || r.Incomplete != nil
}

const poolSize = 4 // buffers per share being read: enough to read ahead

type itemKind int

const (
	kindRecord  itemKind = iota
	kindTrailer          // the share ended here with a valid trailer
	kindBad              // the share cannot be read from here on
)

// item is what one share holds at one stripe.
type item struct {
	kind      itemKind
	buf       []byte // the record (block then checksums), or its checksums only
	full      bool   // buf holds the block too
	sum       [HashSize]byte
	hashed    bool
	bad       bool // its block was checked and is not the one the stripe needs
	badRecord bool // it names a checksum that a good block of the stripe does not have
	trailer   Trailer
	err       error
	pool      chan []byte
}

func (it *item) release() {
	if it.buf != nil {
		select {
		case it.pool <- it.buf:
		default:
		}
		it.buf = nil
	}
}

// checksums is the record's checksums of all N blocks of the stripe.
func (it *item) checksums(info SetInfo) []byte {
	if it.full {
		return it.buf[info.BlockSize:info.RecordSize()]
	}
	return it.buf[:info.N*HashSize]
}

// names returns the checksum the record gives for block i.
func (it *item) names(info SetInfo, i int) [HashSize]byte {
	return [HashSize]byte(it.checksums(info)[i*HashSize:])
}

func (it *item) block(info SetInfo) []byte { return it.buf[:info.BlockSize] }

type shareState int

const (
	stateIdle shareState = iota
	stateActive
	stateDead // can give no more stripes
)

// share is one share index of the set and where it is read from.
type share struct {
	index   int
	name    string // "share 2 (path)"
	src     Source // nil when the share comes in a stream
	hdrSize int64
	state   shareState
	full    bool // its blocks are read, not only its checksums
	failed  bool // had a bad block; its blocks are read again only when nothing else is left
	items   chan *item
	// first is the reader of the header, open after it, that the share's
	// first read from stripe 0 goes on with (Join), or nil.
	first    io.ReadCloser
	stop     context.CancelFunc
	cur      *item
	why      string // why it is dead
	reported bool
}

// joiner rebuilds the stream stripe by stripe. It reads the checksums of
// every reachable share and the blocks of K of them, opening more blocks
// where a stripe cannot be verified from those.
type joiner struct {
	ctx    context.Context
	info   SetInfo
	enc    reedsolomon.Encoder
	shares []*share // by index; nil when missing
	opts   JoinOptions
	report JoinReport
	spares chan []byte

	// fetch, when set, reads the whole records of shs at stripe s into
	// their cur at once, for a reader that decodes stripes one by one
	// (ReaderAt); without it, shares are read as streams.
	fetch func(s int64, shs []*share)

	streamErr error // set by the stream reader before it gives up
	endErr    error // what was wrong with the stream's end frame

	out    chan *outStripe
	regen  regenerator
	stream streamHash // of the stripes rebuilt so far
	last   [][]byte   // the data blocks of the last stripe rebuilt
	final  Trailer
	failed bool
}

type outStripe struct {
	blocks  [][]byte
	sums    []byte // checksums of the data blocks, for the stream hash
	items   []*item
	spares  [][]byte
	records [][]byte // of the shares regenerated, in regen.indices' order
}

func (o *outStripe) release(j *joiner) {
	for _, it := range o.items {
		it.release()
	}
	for _, b := range o.spares {
		select {
		case j.spares <- b:
		default:
		}
	}
	j.regen.release(o)
}

func (j *joiner) warn(format string, args ...any) {
	if j.opts.Warn != nil {
		j.opts.Warn(format, args...)
	}
}

func (j *joiner) note(format string, args ...any) {
	if j.opts.Note != nil {
		j.opts.Note(format, args...)
	}
}

// damaged records and reports, once per share, that sh had a bad part.
func (j *joiner) damaged(sh *share, stripe int64, why string) {
	if sh.reported {
		return
	}
	sh.reported = true
	j.report.Damaged = append(j.report.Damaged, sh.name)
	j.warn("%s: damaged at stripe %d: %s; rebuilding from the other shares", sh.name, stripe, why)
}

func newJoiner(ctx context.Context, info SetInfo, opts JoinOptions) (*joiner, error) {
	// Decoded in the joiner's goroutine: a block is decoded in
	// microseconds, and the library's own fan-out of it over goroutines
	// kept the joiner waiting for them behind the readers (most of its
	// time in a trace of bk-repair on a busy machine). The stripes are
	// read, checked and written concurrently already.
	enc, err := reedsolomon.New(info.K, info.N-info.K, reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		return nil, err
	}
	regen := newRegenerator(info, opts.Regenerate)
	if err := regen.check(); err != nil {
		return nil, err
	}
	return &joiner{
		ctx: ctx, info: info, enc: enc, opts: opts,
		shares: make([]*share, info.N),
		spares: make(chan []byte, 2*info.K),
		out:    make(chan *outStripe, 1),
		report: JoinReport{Info: info},
		regen:  regen,
		stream: newStreamHash(),
	}, nil
}

func newPool(size int) chan []byte {
	pool := make(chan []byte, size)
	for range size {
		pool <- nil // allocated on first use
	}
	return pool
}

// start reads sh from stripe on in its own goroutine: whole records when
// full (each block hashed as it arrives, so that checking is spread over
// the CPUs), else only the checksums of each record.
func (j *joiner) start(sh *share, from int64, full bool) {
	ctx, cancel := context.WithCancel(j.ctx)
	sh.stop, sh.state, sh.full = cancel, stateActive, full
	items := make(chan *item, 1)
	sh.items = items
	var first io.ReadCloser
	if from == 0 {
		first, sh.first = sh.first, nil
	}
	go j.read(ctx, sh, from, full, first, items)
}

// read reads sh from stripe from on (first, when not nil, is a reader at
// stripe 0: read goes on with it rather than opening sh again).
func (j *joiner) read(ctx context.Context, sh *share, from int64, full bool, first io.ReadCloser, items chan<- *item) {
	defer close(items)
	info := j.info
	send := func(it *item) bool {
		select {
		case items <- it:
			return true
		case <-ctx.Done():
			it.release()
			return false
		}
	}
	rc := first
	if rc == nil {
		var err error
		if rc, err = sh.src.Open(ctx, sh.hdrSize+from*int64(info.RecordSize())); err != nil {
			send(&item{kind: kindBad, err: err})
			return
		}
	}
	defer rc.Close()
	at, canReadAt := rc.(io.ReaderAt)
	if !full && canReadAt {
		j.readChecksums(ctx, sh, at, from, send)
		return
	}
	pool := newPool(poolSize)
	for s := from; ; s++ {
		var b []byte
		select {
		case b = <-pool:
		case <-ctx.Done():
			return
		}
		if b == nil {
			b = make([]byte, info.RecordSize())
		}
		it := &item{buf: b, pool: pool, full: true}
		n, err := io.ReadFull(rc, b)
		classify(it, b, info, s, n, err)
		if it.kind == kindRecord && full {
			it.sum, it.hashed = BlockHash(info.SetID, s, sh.index, it.block(info)), true
		}
		if it.kind != kindRecord {
			it.release()
		}
		if !send(it) || it.kind != kindRecord {
			return
		}
	}
}

// checksumWindow is how many stripes' checksums are asked for at once at
// most: on a link with long round trips, reading them costs one trip per
// window, not one per stripe, in 32·N·checksumWindow bytes of buffers.
const checksumWindow = 64

// RequestSizer is a reader of a Source (an io.ReaderAt) whose every
// ReadAt is a request to a server, an S3 ranged GET, that costs about as
// much as RequestSize bytes more would: the checksums of several records
// are then read in one call, the blocks between them included, as long as
// that call reads no more than RequestSize bytes.
type RequestSizer interface {
	RequestSize() int
}

// spanReads is how many reads of several records' checksums are under way
// at once for one share: it bounds their buffers to a few RequestSizes.
const spanReads = 4

// checksumSpan is how many records' checksums one ReadAt of at reads:
// one, unless at is a RequestSizer and more fit its RequestSize.
func checksumSpan(at io.ReaderAt, info SetInfo) int {
	rs, ok := at.(RequestSizer)
	if !ok {
		return 1
	}
	return 1 + max(0, rs.RequestSize()-info.N*HashSize)/info.RecordSize()
}

// readChecksums reads only the checksums of each record of sh from
// stripe from on, a window of stripes at a time with concurrent reads.
// The windows double from one stripe to checksumWindow: the reads past
// the share's end that the last one holds are wasted (two requests each
// on a host that makes one of every read), so they stay fewer than the
// share's stripes, where a share of one stripe (a small incremental
// backup's) cost a whole window of them. Where a read is a request
// (RequestSizer), a window is read in spans of records, a read each, and
// the first window is one span.
func (j *joiner) readChecksums(ctx context.Context, sh *share, at io.ReaderAt, from int64, send func(*item) bool) {
	info := j.info
	span := checksumSpan(at, info)
	widest := checksumWindow
	if span > 1 {
		widest = min(checksumWindow, spanReads*span)
	}
	spans := make(chan []byte, spanReads)
	pool := newPool(2 * widest) // the next window is read while this one is used
	for s, size := from, span; ; s, size = s+int64(size), min(2*size, widest) {
		window := make([]*item, size)
		for i := range window {
			var b []byte
			select {
			case b = <-pool:
			case <-ctx.Done():
				for _, it := range window[:i] {
					it.release()
				}
				return
			}
			if b == nil {
				b = make([]byte, info.N*HashSize)
			}
			window[i] = &item{buf: b, pool: pool}
		}
		var wg sync.WaitGroup
		for first := 0; first < size; first += span {
			wg.Go(func() { checksumsIn(at, window[first:min(first+span, size)], info, sh.hdrSize, s+int64(first), spans) })
		}
		wg.Wait()
		for i, it := range window {
			if it.kind != kindRecord {
				it.release()
			}
			if !send(it) || it.kind != kindRecord {
				for _, rest := range window[i+1:] {
					rest.release()
				}
				return
			}
		}
	}
}

// errNotRead marks the stripes of a span after one that is no record:
// the share ends there for the join, which looks no further.
var errNotRead = errors.New("not read: the share ends before")

// checksumsIn reads the checksums of the records of stripes s, s+1, …
// into its: with several, in one read from the first one's checksums to
// the last one's, the blocks between included (a buffer of spans, which
// holds spanReads of them). A stripe whose checksums that read did not
// give whole is told a trailer or the end of a truncated or padded share
// from what the read got when it ended with the share, else it is read
// alone (checksumsAt); the ones after it are read only while it is a
// record.
func checksumsIn(at io.ReaderAt, its []*item, info SetInfo, hdrSize, s int64, spans chan []byte) {
	if len(its) == 1 {
		checksumsAt(at, its[0], info, hdrSize, s)
		return
	}
	record, sums := info.RecordSize(), info.N*HashSize
	length := (len(its)-1)*record + sums
	var buf []byte
	select {
	case buf = <-spans:
	default:
	}
	if cap(buf) < length {
		buf = make([]byte, length)
	}
	defer func() {
		select {
		case spans <- buf:
		default:
		}
	}()
	n, err := at.ReadAt(buf[:length], hdrSize+s*int64(record)+int64(info.BlockSize))
	for i, it := range its {
		if end := i*record + sums; end <= n {
			copy(it.buf, buf[i*record:end])
			it.kind = kindRecord
			continue
		}
		// The read ended with the share, after the checksums of the
		// stripe before: it holds what is left from this stripe's unit on.
		if unit := i*record - info.BlockSize; i > 0 && errors.Is(err, io.EOF) {
			classifyEnd(it, buf[unit:min(n, unit+TrailerSize+1)], info, s+int64(i), io.EOF)
		} else {
			checksumsAt(at, it, info, hdrSize, s+int64(i))
		}
		if it.kind != kindRecord {
			for _, rest := range its[i+1:] {
				rest.kind, rest.err = kindBad, errNotRead
			}
			return
		}
	}
}

// checksumsAt reads the checksums of the record of stripe s, skipping its
// block; where there is no whole record, it reads the unit again to tell
// the trailer from a truncated or padded share.
func checksumsAt(at io.ReaderAt, it *item, info SetInfo, hdrSize, s int64) {
	record := hdrSize + s*int64(info.RecordSize())
	n, err := at.ReadAt(it.buf, record+int64(info.BlockSize))
	if n == len(it.buf) {
		it.kind = kindRecord
		return
	}
	if err != nil && !errors.Is(err, io.EOF) {
		it.kind, it.err = kindBad, err
		return
	}
	unit := make([]byte, TrailerSize+1)
	n, err = at.ReadAt(unit, record)
	classifyEnd(it, unit[:n], info, s, err)
}

// classifyEnd says what a share holds from stripe s's unit on where that
// is no whole record: the trailer, or the sign of a truncated or padded
// share. unit is at most TrailerSize+1 bytes of it, read with err.
func classifyEnd(it *item, unit []byte, info SetInfo, s int64, err error) {
	n := len(unit)
	switch {
	case n == TrailerSize+1:
		it.kind, it.err = kindBad, errors.New("stray bytes (truncated or padded)")
		return
	case n == 0 && (err == nil || errors.Is(err, io.EOF)):
		err = io.EOF
	case err == nil || errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
	classify(it, unit, info, s, n, err)
}

// classify says what n bytes of unit read at stripe s are: a record, the
// trailer, or the sign of a truncated or padded share.
func classify(it *item, unit []byte, info SetInfo, s int64, n int, err error) {
	switch {
	case err == nil:
		it.kind = kindRecord
	case n == TrailerSize && errors.Is(err, io.ErrUnexpectedEOF):
		t, perr := ParseTrailer(unit[:n], info)
		switch {
		case perr != nil:
			it.kind, it.err = kindBad, perr
		case t.Stripes != s:
			it.kind, it.err = kindBad, fmt.Errorf("trailer at stripe %d says %d stripes", s, t.Stripes)
		default:
			it.kind, it.trailer = kindTrailer, t
		}
	case errors.Is(err, io.EOF):
		it.kind, it.err = kindBad, errors.New("ends without a trailer (truncated)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		it.kind, it.err = kindBad, fmt.Errorf("%d stray bytes (truncated or padded)", n)
	default:
		it.kind, it.err = kindBad, err
	}
}

// close stops reading sh; it may be opened again later.
func (sh *share) close() {
	if sh.stop != nil {
		sh.stop()
		sh.stop = nil
	}
	if sh.cur != nil {
		sh.cur.release()
		sh.cur = nil
	}
	if sh.state == stateActive {
		sh.state = stateIdle
	}
}

// reopen reads sh again from stripe on, whole or for its checksums.
func (j *joiner) reopen(sh *share, from int64, full bool) {
	sh.close()
	j.start(sh, from, full)
}

// need is how many shares' blocks are read at once.
func (j *joiner) need() int { return j.info.K }

func (j *joiner) run() error {
	for s := int64(0); ; s++ {
		d, err := j.decide(s)
		if err != nil {
			return err
		}
		if d.end {
			j.final = d.trailer
			j.report.Trailer = d.trailer
			return nil
		}
		o, err := j.rebuild(s, d.good)
		if err != nil {
			return err
		}
		j.stream.add(o.sums)
		j.last = o.blocks
		select {
		case j.out <- o:
		case <-j.ctx.Done():
			o.release(j)
			return context.Cause(j.ctx)
		}
		j.settle(s)
	}
}

// settle gets the shares ready for the stripe after s: the ones that
// ended are dead, and the blocks of K shares are read, never-failed ones
// first and data shares before parity, which need no decoding.
func (j *joiner) settle(s int64) {
	lazy := false
	for _, sh := range j.shares {
		if sh == nil || sh.state != stateActive || sh.cur == nil {
			continue
		}
		lazy = lazy || sh.src != nil
		it := sh.cur
		sh.cur = nil // its buffer went out with the stripe or was released
		switch {
		case it.kind != kindRecord:
			sh.close()
			sh.state = stateDead
		case it.bad && sh.full && sh.src != nil:
			sh.failed = true
			j.reopen(sh, s+1, false)
		}
	}
	if !lazy {
		return
	}
	var full, light []*share
	for _, sh := range j.shares {
		if sh != nil && sh.state == stateActive {
			if sh.full {
				full = append(full, sh)
			} else {
				light = append(light, sh)
			}
		}
	}
	for i := len(full) - 1; i >= 0 && len(full) > j.need(); i-- {
		j.reopen(full[i], s+1, false)
		full = full[:len(full)-1]
	}
	for _, sh := range preferred(light) {
		if len(full) >= j.need() {
			break
		}
		j.reopen(sh, s+1, true)
		full = append(full, sh)
	}
}

// preferred orders shares the way their blocks are best read: never
// failed first, then by index (data shares before parity).
func preferred(shs []*share) []*share {
	out := slices.Clone(shs)
	slices.SortStableFunc(out, func(a, b *share) int {
		switch {
		case a.failed == b.failed:
			return a.index - b.index
		case a.failed:
			return 1
		}
		return -1
	})
	return out
}

// hash computes the checksums of the blocks of shs at stripe s that are
// not hashed yet, in parallel.
func (j *joiner) hash(s int64, shs []*share) {
	var todo []*share
	for _, sh := range shs {
		if !sh.cur.hashed {
			todo = append(todo, sh)
		}
	}
	together(len(todo), func(k int) {
		sh := todo[k]
		sh.cur.sum, sh.cur.hashed = BlockHash(j.info.SetID, s, sh.index, sh.cur.block(j.info)), true
	})
}

// together runs f(0) to f(n-1) at once and returns when all are done. The
// last runs on the caller's goroutine: one alone (a stripe with one block
// to hash, as in most joins around a lost share) goes straight on, where
// a goroutine of its own waited its turn behind the readers' (a third of
// the joiner's time in a trace of bk-repair on a busy machine).
func together(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n - 1 {
		wg.Go(func() { f(i) })
	}
	if n > 0 {
		f(n - 1)
	}
	wg.Wait()
}

// rebuild decodes the data blocks of a stripe from the K blocks of good
// and hands them to the writer.
func (j *joiner) rebuild(s int64, good []int) (*outStripe, error) {
	o := &outStripe{}
	shards, err := j.decode(o, good)
	if err != nil {
		o.release(j)
		return nil, err
	}
	if err := j.checkRebuilt(o, s, shards, good); err != nil {
		o.release(j)
		return nil, err
	}
	if err := j.regenerate(o, s, shards, good); err != nil {
		o.release(j)
		return nil, err
	}
	// The data blocks read as they are go out with the stripe; the rest
	// are no longer needed.
	for _, sh := range j.shares {
		if sh == nil || sh.cur == nil {
			continue
		}
		if sh.index < j.info.K && slices.Contains(good, sh.index) {
			o.items = append(o.items, sh.cur)
		} else {
			sh.cur.release()
		}
	}
	o.blocks = shards[:j.info.K]
	return o, nil
}

// decode fills in the data blocks that are not among good.
func (j *joiner) decode(o *outStripe, good []int) ([][]byte, error) {
	shards := make([][]byte, j.info.N)
	for _, i := range good {
		shards[i] = j.shares[i].cur.block(j.info)
	}
	missing := false
	for i := range j.info.K {
		if shards[i] != nil {
			continue
		}
		missing = true
		shards[i] = j.blockBuffer(o, i)
	}
	if missing {
		if err := j.enc.ReconstructData(shards); err != nil {
			return nil, err
		}
	}
	return shards, nil
}

// checkRebuilt computes the checksums of the stripe's data blocks for the
// stream hash. A decoded block must be one that a record read at this
// stripe names: else the blocks it was decoded from were not of one stripe.
func (j *joiner) checkRebuilt(o *outStripe, s int64, shards [][]byte, good []int) error {
	var recs []*item
	for _, sh := range j.shares {
		if sh != nil && sh.cur != nil && sh.cur.kind == kindRecord {
			recs = append(recs, sh.cur)
		}
	}
	o.sums = make([]byte, j.info.K*HashSize)
	var decoded []int
	for i := range j.info.K {
		if slices.Contains(good, i) {
			sum := j.shares[i].cur.sum
			copy(o.sums[i*HashSize:], sum[:])
		} else {
			decoded = append(decoded, i)
		}
	}
	named := make([]bool, len(decoded))
	together(len(decoded), func(k int) {
		i := decoded[k]
		sum := BlockHash(j.info.SetID, s, i, shards[i])
		copy(o.sums[i*HashSize:], sum[:])
		named[k] = slices.ContainsFunc(recs, func(it *item) bool { return it.names(j.info, i) == sum })
	})
	var bad []int
	for k, i := range decoded {
		if !named[k] {
			bad = append(bad, i)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("stripe %d: blocks %v rebuilt from %s do not match their checksums; refusing them",
			s, bad, j.names(good))
	}
	return nil
}

// write sends the rebuilt stripes to w, holding back each one until the
// next is known, so that the last goes out only once a trailer matching
// the whole stream was found: w gets only verified data. The shares
// regenerated get their header first, each stripe's record with it, and
// the trailer last.
func (j *joiner) write(w io.Writer) error {
	var written int64
	var held *outStripe
	err := j.regen.headers()
	for o := range j.out {
		if held != nil && err == nil {
			for _, b := range held.blocks {
				if _, err = w.Write(b); err != nil {
					break
				}
			}
			if err == nil {
				err = j.regen.records(held)
			}
			written += j.info.StripeSize()
		}
		if held != nil {
			held.release(j)
		}
		held = o
	}
	if err != nil || j.failed {
		if held != nil {
			held.release(j)
		}
		return err
	}
	t := j.final
	if held != nil {
		defer held.release(j)
		rest := t.Length - written
		for _, b := range held.blocks {
			n := min(int64(len(b)), rest)
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			rest -= n
		}
		if err := j.regen.records(held); err != nil {
			return err
		}
	}
	return j.regen.trailers(t)
}

// finish runs the joiner and its writer to the end.
func (j *joiner) finish(w io.Writer, cancel context.CancelCauseFunc) (JoinReport, error) {
	werr := make(chan error, 1)
	go func() {
		err := j.write(w)
		if err != nil {
			cancel(err)
		}
		werr <- err
	}()
	err := j.run()
	j.failed = err != nil
	close(j.out)
	if e := <-werr; err == nil {
		err = e
	}
	for _, sh := range j.shares {
		if sh != nil {
			sh.close()
		}
	}
	return j.report, err
}
