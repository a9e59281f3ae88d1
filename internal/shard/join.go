package shard

import (
	"bytes"
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
	// Open reads the share from offset on.
	Open(ctx context.Context, offset int64) (io.ReadCloser, error)
}

// JoinOptions receives the messages of a join.
type JoinOptions struct {
	Warn func(format string, args ...any) // a share is missing or damaged
	Note func(format string, args ...any) // optional: anything else worth a line
}

// JoinReport says what a join found.
type JoinReport struct {
	Info    SetInfo
	Trailer Trailer
	// Missing and Damaged name the shares that were not found or that had
	// a damaged part; the stream was rebuilt without those parts.
	Missing, Damaged []string
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
	kind    itemKind
	buf     []byte // the record: block then checksums
	sum     [HashSize]byte
	hashed  bool
	bad     bool // its checksum was compared and did not match
	trailer Trailer
	err     error
	pool    chan []byte
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

type shareState int

const (
	stateIdle shareState = iota
	stateActive
	stateDead // can give no more stripes
)

// share is one share index of the set and where it is read from.
type share struct {
	index    int
	name     string // "share 2 (path)"
	src      Source // nil when the share comes in a stream
	hdrSize  int64
	state    shareState
	failed   bool // had a bad block; reopened only when nothing else is left
	items    chan *item
	stop     context.CancelFunc
	cur      *item
	why      string // why it is dead
	reported bool
}

// joiner rebuilds the stream stripe by stripe from the items of its
// active shares, opening more when a stripe cannot be verified.
type joiner struct {
	ctx    context.Context
	info   SetInfo
	enc    reedsolomon.Encoder
	shares []*share // by index; nil when missing
	opts   JoinOptions
	report JoinReport
	spares chan []byte

	streamErr error // set by the stream reader before it gives up
	endErr    error // what was wrong with the stream's end frame

	out    chan *outStripe
	stream streamHash // of the stripes rebuilt so far
	final  Trailer
	failed bool
}

type outStripe struct {
	blocks [][]byte
	sums   []byte // checksums of the data blocks, for the stream hash
	items  []*item
	spares [][]byte
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
	enc, err := reedsolomon.New(info.K, info.N-info.K)
	if err != nil {
		return nil, err
	}
	return &joiner{
		ctx: ctx, info: info, enc: enc, opts: opts,
		shares: make([]*share, info.N),
		spares: make(chan []byte, 2*info.K),
		out:    make(chan *outStripe, 1),
		report: JoinReport{Info: info},
		stream: newStreamHash(),
	}, nil
}

func newPool() chan []byte {
	pool := make(chan []byte, poolSize)
	for range poolSize {
		pool <- nil // allocated on first use
	}
	return pool
}

// start reads sh from stripe on, in its own goroutine, hashing each block
// as it arrives so that checking is spread over the CPUs.
func (j *joiner) start(sh *share, from int64) {
	ctx, cancel := context.WithCancel(j.ctx)
	sh.stop, sh.state = cancel, stateActive
	items := make(chan *item, 1)
	sh.items = items
	pool := newPool()
	info := j.info
	go func() {
		defer close(items)
		send := func(it *item) bool {
			select {
			case items <- it:
				return true
			case <-ctx.Done():
				it.release()
				return false
			}
		}
		rc, err := sh.src.Open(ctx, sh.hdrSize+from*int64(info.RecordSize()))
		if err != nil {
			send(&item{kind: kindBad, err: err})
			return
		}
		defer rc.Close()
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
			it := &item{buf: b, pool: pool}
			n, err := io.ReadFull(rc, b)
			classify(it, info, s, n, err)
			if it.kind == kindRecord {
				it.sum, it.hashed = BlockHash(info.SetID, s, sh.index, b[:info.BlockSize]), true
			} else {
				it.release()
			}
			if !send(it) || it.kind != kindRecord {
				return
			}
		}
	}()
}

// classify says what n bytes read at stripe s are: a record, the trailer,
// or the sign of a truncated or padded share.
func classify(it *item, info SetInfo, s int64, n int, err error) {
	switch {
	case err == nil:
		it.kind = kindRecord
	case n == TrailerSize && errors.Is(err, io.ErrUnexpectedEOF):
		t, perr := ParseTrailer(it.buf[:n], info)
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

// need is how many shares are read at once: K, but at least two, so that
// every block is checked against another share's record of it.
func (j *joiner) need() int { return max(j.info.K, 2) }

// openable returns the next share to read from: never-failed ones first,
// data shares before parity.
func (j *joiner) openable() *share {
	var best *share
	for _, sh := range j.shares {
		if sh == nil || sh.src == nil || sh.state != stateIdle {
			continue
		}
		if best == nil || best.failed && !sh.failed {
			best = sh
		}
	}
	return best
}

// decision is what a stripe turned out to be.
type decision struct {
	end     bool
	trailer Trailer
	good    []int // indices of verified blocks, ascending
}

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
		select {
		case j.out <- o:
		case <-j.ctx.Done():
			o.release(j)
			return context.Cause(j.ctx)
		}
		j.settle(d)
	}
}

// settle closes, after a stripe, the shares that were bad in it and the
// ones read beyond need, keeping the data shares, which need no decoding.
func (j *joiner) settle(d decision) {
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
		case it.bad && sh.src != nil:
			sh.failed = true
			sh.close()
		}
	}
	if !lazy {
		return
	}
	active := 0
	for _, sh := range j.shares {
		if sh != nil && sh.state == stateActive {
			active++
		}
	}
	for i := len(j.shares) - 1; i >= 0 && active > j.need(); i-- {
		if sh := j.shares[i]; sh != nil && sh.state == stateActive {
			sh.close()
			active--
		}
	}
}

// decide reads stripe s from the active shares, opening more until it
// is sure what the stripe holds.
func (j *joiner) decide(s int64) (decision, error) {
	for {
		var recs, trls []*share
		for _, sh := range j.shares {
			if sh == nil || sh.state != stateActive {
				continue
			}
			if sh.cur == nil {
				select {
				case it, ok := <-sh.items:
					if !ok {
						it = &item{kind: kindBad, err: context.Cause(j.ctx)}
					}
					sh.cur = it
				case <-j.ctx.Done():
					return decision{}, context.Cause(j.ctx)
				}
			}
			switch sh.cur.kind {
			case kindRecord:
				recs = append(recs, sh)
			case kindTrailer:
				trls = append(trls, sh)
			case kindBad:
				if sh.why == "" {
					sh.why = sh.cur.err.Error()
					j.damaged(sh, s, sh.why)
				}
			}
		}
		more := j.openable()
		switch {
		case len(trls) > len(recs):
			// The stream ends here if a trailer says so that matches what
			// was rebuilt; the others are damaged.
			var t Trailer
			found := false
			for _, sh := range trls {
				if tr := sh.cur.trailer; j.stream.matches(tr) {
					t, found = tr, true
				}
			}
			if found {
				for _, sh := range append(recs, trls...) {
					switch {
					case sh.cur.kind == kindRecord:
						j.damaged(sh, s, "it does not end where the others do")
					case sh.cur.trailer != t:
						j.damaged(sh, s, "its trailer does not match the rebuilt stream")
					}
					sh.cur.release()
				}
				return decision{end: true, trailer: t}, nil
			}
			if more == nil {
				return decision{}, errors.New("the rebuilt stream does not match the checksum in any share's trailer")
			}
		case len(recs) > len(trls):
			good := j.verify(s, recs, more != nil)
			if len(good) >= j.info.K {
				j.blame(s, recs, good)
				for _, sh := range recs {
					if sh.cur.bad {
						j.damaged(sh, s, "its block does not match the checksums the other shares keep of it")
					}
				}
				for _, sh := range trls {
					j.damaged(sh, s, "it ends before the others do")
				}
				return decision{good: good}, nil
			}
		}
		if more == nil {
			return decision{}, j.failure(s, recs)
		}
		j.start(more, s)
	}
}

// verify returns the shares whose block in stripe s matches the checksum
// that most records of it agree on. Blocks are hashed only as needed,
// data shares first; with confirm, a block's own record is not enough.
func (j *joiner) verify(s int64, recs []*share, confirm bool) []int {
	var good []int
	next := 0
	for len(good) < j.info.K && next < len(recs) {
		batch := recs[next:min(len(recs), next+j.info.K-len(good))]
		next += len(batch)
		var wg sync.WaitGroup
		for _, sh := range batch {
			if it := sh.cur; !it.hashed {
				wg.Go(func() {
					it.sum, it.hashed = BlockHash(j.info.SetID, s, sh.index, it.buf[:j.info.BlockSize]), true
				})
			}
		}
		wg.Wait()
		for _, sh := range batch {
			want, ok := j.accepted(sh.index, recs, confirm)
			switch {
			case ok && want == sh.cur.sum:
				good = append(good, sh.index)
			case ok:
				sh.cur.bad = true
			}
		}
	}
	return good
}

// accepted returns the checksum of block i that more records name than any
// other value, provided one of them is not block i's own share.
func (j *joiner) accepted(i int, recs []*share, confirm bool) ([HashSize]byte, bool) {
	type tally struct {
		sum    [HashSize]byte
		votes  int
		others bool
	}
	var tallies []tally
	off := j.info.BlockSize + i*HashSize
	for _, sh := range recs {
		sum := [HashSize]byte(sh.cur.buf[off : off+HashSize])
		k := slices.IndexFunc(tallies, func(t tally) bool { return t.sum == sum })
		if k < 0 {
			tallies = append(tallies, tally{sum: sum})
			k = len(tallies) - 1
		}
		tallies[k].votes++
		tallies[k].others = tallies[k].others || sh.index != i
	}
	best, tie := -1, false
	for k, t := range tallies {
		switch {
		case best < 0 || t.votes > tallies[best].votes:
			best, tie = k, false
		case t.votes == tallies[best].votes:
			tie = true
		}
	}
	if best < 0 || tie || confirm && !tallies[best].others {
		return [HashSize]byte{}, false
	}
	return tallies[best].sum, true
}

// blame marks the blocks of stripe s that were read but not used as bad
// when the shares whose blocks verified record another checksum for them.
func (j *joiner) blame(s int64, recs []*share, good []int) {
	var trusted []*share
	for _, i := range good {
		trusted = append(trusted, j.shares[i])
	}
	for _, sh := range recs {
		if it := sh.cur; it.hashed && !it.bad && !slices.Contains(good, sh.index) {
			want, ok := j.accepted(sh.index, trusted, false)
			it.bad = ok && want != it.sum
		}
	}
}

// failure explains why stripe s cannot be rebuilt: how many good blocks
// it had, and what was wrong with each other share.
func (j *joiner) failure(s int64, recs []*share) error {
	if j.streamErr != nil {
		return j.streamErr
	}
	good := j.verify(s, recs, false)
	var bad []string
	for i, sh := range j.shares {
		switch {
		case slices.Contains(good, i):
		case sh == nil:
			bad = append(bad, fmt.Sprintf("share %d missing", i))
		case sh.state == stateDead || sh.cur != nil && sh.cur.kind == kindBad:
			bad = append(bad, fmt.Sprintf("%s %s", sh.name, sh.why))
		case sh.cur != nil && sh.cur.kind == kindRecord:
			bad = append(bad, sh.name+" damaged")
		case sh.cur != nil && sh.cur.kind == kindTrailer:
			bad = append(bad, sh.name+" ends early")
		default:
			bad = append(bad, sh.name+" not readable")
		}
	}
	return fmt.Errorf("cannot rebuild stripe %d: it needs %d good blocks, found %d (%s)",
		s, j.info.K, len(good), strings.Join(bad, "; "))
}

// rebuild decodes the data blocks of a stripe from its first K good ones.
func (j *joiner) rebuild(s int64, good []int) (*outStripe, error) {
	o := &outStripe{}
	shards := make([][]byte, j.info.N)
	for _, i := range good[:j.info.K] {
		shards[i] = j.shares[i].cur.buf[:j.info.BlockSize]
	}
	missing := false
	for i := range j.info.K {
		if shards[i] != nil {
			continue
		}
		missing = true
		var b []byte
		select {
		case b = <-j.spares:
		default:
			b = make([]byte, j.info.BlockSize)
		}
		o.spares = append(o.spares, b)
		shards[i] = b[:0]
	}
	if missing {
		if err := j.enc.ReconstructData(shards); err != nil {
			o.release(j)
			return nil, err
		}
	}
	o.sums = make([]byte, j.info.K*HashSize)
	// A rebuilt block is checked too, against the records read of it:
	// one of them must name it, unless they do not agree on any value.
	var recs []*share
	for _, sh := range j.shares {
		if sh != nil && sh.cur != nil && sh.cur.kind == kindRecord {
			recs = append(recs, sh)
		}
	}
	var wg sync.WaitGroup
	var bad []int
	var mu sync.Mutex
	for i := range j.info.K {
		if sh := j.shares[i]; sh != nil && sh.cur != nil && slices.Contains(good[:j.info.K], i) {
			copy(o.sums[i*HashSize:], sh.cur.sum[:])
			continue
		}
		wg.Go(func() {
			sum := BlockHash(j.info.SetID, s, i, shards[i])
			copy(o.sums[i*HashSize:], sum[:])
			off := j.info.BlockSize + i*HashSize
			named := slices.ContainsFunc(recs, func(sh *share) bool { return bytes.Equal(sh.cur.buf[off:off+HashSize], sum[:]) })
			if _, agreed := j.accepted(i, recs, false); !named && agreed {
				mu.Lock()
				bad = append(bad, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		o.release(j)
		return nil, fmt.Errorf("stripe %d: rebuilt blocks %v do not match their checksums", s, bad)
	}
	// The data blocks read as they are go out with the stripe; the rest
	// are no longer needed.
	for _, sh := range j.shares {
		if sh == nil || sh.cur == nil {
			continue
		}
		if sh.index < j.info.K && slices.Contains(good[:j.info.K], sh.index) {
			o.items = append(o.items, sh.cur)
		} else {
			sh.cur.release()
		}
	}
	o.blocks = shards[:j.info.K]
	return o, nil
}

// write sends the rebuilt stripes to w, holding back each one until the
// next is known, so that the last goes out only once a trailer matching
// the whole stream was found: w gets only verified data.
func (j *joiner) write(w io.Writer) error {
	var written int64
	var held *outStripe
	var err error
	for o := range j.out {
		if held != nil && err == nil {
			for _, b := range held.blocks {
				if _, err = w.Write(b); err != nil {
					break
				}
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
	}
	return nil
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
	if err != nil {
		return j.report, err
	}
	return j.report, nil
}
