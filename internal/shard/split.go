package shard

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// SplitOptions chooses the shape of a set.
type SplitOptions struct {
	K, N      int
	BlockSize int    // 0 means DefaultBlockSize
	Label     string // optional, kept in every share's header
	// Workers encode stripes in parallel; 0 means one per CPU.
	Workers int
	// AllowEmpty splits an empty input. Without it an empty input is
	// refused before anything is written (ErrEmpty): the stage before
	// bk-split most likely died, and an empty backup must not look good.
	AllowEmpty bool
	// SetID, when not zero, is the set's ID instead of a random one: a
	// set split again from its stream with its own ID and parameters gives
	// its shares back byte for byte, which is how a lost share is rebuilt.
	SetID [16]byte
}

// ErrEmpty is an empty input, refused unless SplitOptions.AllowEmpty.
var ErrEmpty = errors.New("the input is empty")

// MaxStripeMemory bounds what the stripes in flight take: N records each.
// A stripe larger than that is refused, so that no choice of K, N and
// block size needs gigabytes whatever the input.
const MaxStripeMemory = 256 << 20

// StripeMemory is the memory one stripe takes while it is split or joined.
func (s SetInfo) StripeMemory() int64 { return int64(s.N) * int64(s.RecordSize()) }

// FittingBlockSize is the largest power-of-two block size whose stripe of
// n records fits in MaxStripeMemory.
func FittingBlockSize(n int) int {
	bs := MaxBlockSize
	for bs > MinBlockSize && (SetInfo{N: n, BlockSize: bs}).StripeMemory() > MaxStripeMemory {
		bs /= 2
	}
	return bs
}

// CheckMemory refuses a set whose stripe does not fit in MaxStripeMemory.
func (s SetInfo) CheckMemory() error {
	if s.StripeMemory() <= MaxStripeMemory {
		return nil
	}
	return fmt.Errorf("%d shares of %d-byte blocks need %d MiB for one stripe, above the limit of %d MiB; blocks of %d bytes fit",
		s.N, s.BlockSize, (s.StripeMemory()+1<<20-1)>>20, MaxStripeMemory>>20, FittingBlockSize(s.N))
}

func (o SplitOptions) info() (SetInfo, error) {
	info := SetInfo{K: o.K, N: o.N, BlockSize: o.BlockSize, Label: o.Label}
	if info.BlockSize == 0 {
		info.BlockSize = DefaultBlockSize
	}
	if err := info.Check(); err != nil {
		return SetInfo{}, err
	}
	if err := info.CheckMemory(); err != nil {
		return SetInfo{}, err
	}
	info.SetID = o.SetID
	if info.SetID != ([16]byte{}) {
		return info, nil
	}
	if _, err := rand.Read(info.SetID[:]); err != nil {
		return SetInfo{}, err
	}
	return info, nil
}

// SplitStream reads r to its end and writes the share stream of its N
// shares to w.
func SplitStream(ctx context.Context, r io.Reader, w io.Writer, opts SplitOptions) (SetInfo, Trailer, error) {
	info, err := opts.info()
	if err != nil {
		return SetInfo{}, Trailer{}, err
	}
	if r, err = opts.nonEmpty(r); err != nil {
		return SetInfo{}, Trailer{}, err
	}
	sw, err := newStreamWriter(w, Header{SetInfo: info})
	if err != nil {
		return SetInfo{}, Trailer{}, err
	}
	// Units come with frameHeaderSize bytes of room in front, so a frame
	// is written with one call and no copy; a stripe's N frames lie one
	// after the other, so they go in one call too: a third of the writes
	// at N=3, and of the wake-ups of the stage reading them.
	emit := func(index int, unit []byte) error {
		putFrameHeader(unit, index, len(unit)-frameHeaderSize)
		_, err := w.Write(unit)
		return err
	}
	emitStripe := func(buf []byte) error {
		for i := range info.N {
			putFrameHeader(info.slot(buf, i), i, info.RecordSize())
		}
		_, err := w.Write(buf)
		return err
	}
	t, err := split(ctx, r, info, opts.Workers, emit, emitStripe)
	if err != nil {
		return SetInfo{}, Trailer{}, err
	}
	return info, t, sw.Close()
}

// Split reads r to its end and writes share i of it to shares[i]; there
// must be N writers.
func Split(ctx context.Context, r io.Reader, shares []io.Writer, opts SplitOptions) (SetInfo, Trailer, error) {
	info, err := opts.info()
	if err != nil {
		return SetInfo{}, Trailer{}, err
	}
	if len(shares) != info.N {
		return SetInfo{}, Trailer{}, fmt.Errorf("%d writers for %d shares", len(shares), info.N)
	}
	if r, err = opts.nonEmpty(r); err != nil {
		return SetInfo{}, Trailer{}, err
	}
	emit := func(index int, unit []byte) error {
		_, err := shares[index].Write(unit[frameHeaderSize:])
		return err
	}
	emitStripe := func(buf []byte) error {
		for i := range info.N {
			if err := emit(i, info.slot(buf, i)); err != nil {
				return err
			}
		}
		return nil
	}
	t, err := split(ctx, r, info, opts.Workers, emit, emitStripe)
	return info, t, err
}

// nonEmpty reads the first byte of r, so that an empty input is refused
// before a header is written, and returns a reader of all of r.
func (o SplitOptions) nonEmpty(r io.Reader) (io.Reader, error) {
	if o.AllowEmpty {
		return r, nil
	}
	var first [1]byte
	n, err := io.ReadFull(r, first[:])
	switch {
	case errors.Is(err, io.EOF):
		return nil, ErrEmpty
	case err != nil:
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(first[:n]), r), nil
}

// stripe is one stripe in flight. buf holds N slots, one per share, each
// laid out as it is written: room for a frame header, the block, then the
// checksums of all N blocks.
type stripe struct {
	n      int64
	buf    []byte
	shards [][]byte
	done   chan struct{}
	err    error // set by the worker before done closes
}

func (info SetInfo) slotSize() int { return frameHeaderSize + info.RecordSize() }

func (info SetInfo) slot(buf []byte, i int) []byte {
	return buf[i*info.slotSize() : (i+1)*info.slotSize()]
}

func newStripe(info SetInfo) *stripe {
	st := &stripe{buf: make([]byte, info.N*info.slotSize()), shards: make([][]byte, info.N)}
	for i := range st.shards {
		st.shards[i] = info.slot(st.buf, i)[frameHeaderSize : frameHeaderSize+info.BlockSize]
	}
	return st
}

// split runs the pipeline: this goroutine reads stripes and hashes the
// stream, workers encode and checksum them in parallel, and a writer emits
// them in order. Memory stays at a few stripes whatever the stream's size.
// emit writes one unit of one share (a header or a trailer), emitStripe a
// stripe's buffer: N slots of a frame header's room and a record.
func split(ctx context.Context, r io.Reader, info SetInfo, workers int, emit func(int, []byte) error, emitStripe func([]byte) error) (Trailer, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// One goroutine per encoder: parallelism comes from encoding whole
	// stripes at once, which splits the work without any coordination.
	enc, err := reedsolomon.New(info.K, info.N-info.K, reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		return Trailer{}, err
	}
	for i := range info.N {
		h := Header{SetInfo: info, Index: i}.Marshal()
		if err := emit(i, append(make([]byte, frameHeaderSize, frameHeaderSize+len(h)), h...)); err != nil {
			return Trailer{}, err
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inflight := int(max(1, min(int64(workers+2), MaxStripeMemory/info.StripeMemory())))
	workers = min(workers, inflight)
	free := make(chan *stripe, inflight)
	work := make(chan *stripe, inflight)
	order := make(chan *stripe, inflight)

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for st := range work {
				st.err = encodeStripe(enc, info, st)
				close(st.done)
			}
		})
	}
	writeErr := make(chan error, 1)
	stream := newStreamHash()
	go func() {
		var err error
		for st := range order {
			<-st.done
			if err == nil {
				err = st.err
			}
			stream.add(info.slot(st.buf, 0)[frameHeaderSize+info.BlockSize:][:info.K*HashSize])
			if err == nil {
				err = emitStripe(st.buf)
			}
			if err != nil {
				cancel(err)
			}
			free <- st
		}
		writeErr <- err
	}()

	t, readErr := readStripes(ctx, r, info, free, work, order, inflight)
	close(work)
	close(order)
	wg.Wait()
	if err := <-writeErr; err != nil {
		return Trailer{}, err
	}
	if readErr != nil {
		return Trailer{}, readErr
	}
	t.StreamHash = stream.sum(t.Length)
	tb := t.Marshal(info.SetID)
	unit := append(make([]byte, frameHeaderSize, frameHeaderSize+len(tb)), tb...)
	for i := range info.N {
		if err := emit(i, unit); err != nil {
			return Trailer{}, err
		}
	}
	return t, nil
}

// readStripes fills stripes from r until its end.
func readStripes(ctx context.Context, r io.Reader, info SetInfo, free, work, order chan *stripe, inflight int) (Trailer, error) {
	var t Trailer
	allocated := 0
	for {
		var st *stripe
		select {
		case st = <-free:
		case <-ctx.Done():
			return Trailer{}, context.Cause(ctx)
		default:
			if allocated < inflight {
				allocated++
				st = newStripe(info)
				break
			}
			select {
			case st = <-free:
			case <-ctx.Done():
				return Trailer{}, context.Cause(ctx)
			}
		}
		filled := 0
		var err error
		for j := 0; j < info.K && err == nil; j++ {
			var n int
			n, err = io.ReadFull(r, st.shards[j])
			filled += n
			if err != nil {
				clear(st.shards[j][n:])
			}
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return Trailer{}, err
		}
		if filled > 0 {
			for j := (filled + info.BlockSize - 1) / info.BlockSize; j < info.K; j++ {
				clear(st.shards[j])
			}
			st.n = t.Stripes
			st.done = make(chan struct{})
			t.Stripes++
			t.Length += int64(filled)
			work <- st
			order <- st
		}
		if err != nil {
			return t, nil
		}
	}
}

// encodeStripe computes the parity blocks and the checksums of all blocks,
// and puts the checksums in every share's record.
func encodeStripe(enc reedsolomon.Encoder, info SetInfo, st *stripe) error {
	if err := enc.Encode(st.shards); err != nil {
		return err
	}
	first := info.slot(st.buf, 0)[frameHeaderSize+info.BlockSize:]
	for i, block := range st.shards {
		sum := BlockHash(info.SetID, st.n, i, block)
		copy(first[i*HashSize:], sum[:])
	}
	for i := 1; i < info.N; i++ {
		copy(info.slot(st.buf, i)[frameHeaderSize+info.BlockSize:], first)
	}
	return nil
}
