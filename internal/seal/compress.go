package seal

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// DefaultLevel is the compression level bk-pack uses, on zstd's scale (1–22,
// mapped to the nearest klauspost level: 1–2 fastest, 3–5 default, 6–9
// better, 10+ best).
//
// Chosen by BenchmarkCompress (bench_test.go) on 128 MiB, alternating 1 MiB
// of random bytes and 1 MiB of Go source, on 2 shared cores, against
// `zstd -3 -T0` in the same run, three runs:
//
//	level 3, 2 MiB chunks: 1.7–2.1× zstd's speed, 1.005× its size, RSS 32 MiB
//	level 1, 2 MiB chunks: 2.1–2.2× its speed, 1.018× its size
//	level 3, 4 MiB chunks: slower (fewer chunks to share out), RSS 71 MiB
//	one klauspost stream, level 3: 1.5× its speed (one core compresses)
//	stream with WithConcurrentBlocks: 0.8× its speed, 760 MiB heap
//
// Level 3 is well within the 5 % size budget and twice as fast as the
// reference; level 1 buys little more speed for three times the size loss.
const DefaultLevel = 3

// ChunkSize is how much input goes into each zstd frame. Frames are
// compressed independently, so both cores work on one stream; at 2 MiB
// the loss from frames not sharing history is 0.5 %, memory stays near
// 32 MiB, and the window (at most the chunk) is far within the 8 MiB every
// zstd decoder accepts by default.
const ChunkSize = 2 << 20

// MaxWindow bounds decompression memory against hostile input: a frame
// that declares a larger window is refused before anything is allocated for
// it. 128 MiB is the limit of `zstd -d` without --memory, so whatever it
// reads without flags, Decompress reads too, `zstd --long` output included.
const MaxWindow = 128 << 20

// Option changes how Compress and CompressSeekable write.
type Option func(*options)

type options struct {
	checksums bool
}

// Sealed says the stream goes into a layer that authenticates every byte
// (age): its frames then carry no content checksum. The XXH64 of each
// frame would catch nothing age does not, and it is a pass over every
// byte: 1.2 % of bk-pack's instructions on small files. A frame's header
// says whether it has one, so readers read both kinds.
func Sealed() Option { return func(o *options) { o.checksums = false } }

func optionsOf(opts []Option) options {
	o := options{checksums: true}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Compress returns a writer that compresses what is written to it into w
// as a series of standard zstd frames (one per ChunkSize of input, each with
// its content checksum unless Sealed) that `zstd -d` reads as one stream.
// Close flushes the last frame; it does not close w.
//
// Up to GOMAXPROCS+1 chunks are in flight, so memory stays near
// (GOMAXPROCS+2) × 2 × ChunkSize plus the encoders' tables, whatever the
// input size.
func Compress(w io.Writer, level int, opts ...Option) (io.WriteCloser, error) {
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("compression level %d out of range (1–22)", level)
	}
	return newChunkWriter(w, zstd.EncoderLevelFromZstd(level), ChunkSize, runtime.GOMAXPROCS(0), optionsOf(opts))
}

// chunkWriter compresses fixed-size chunks of its input as independent
// frames on several goroutines and writes the frames out in input order.
type chunkWriter struct {
	w       io.Writer
	enc     *zstd.Encoder
	size    int
	cur     *chunk   // being filled
	pending []*chunk // compressing or done, oldest first
	max     int      // how many chunks may be pending
	free    []*chunk
	frames  int // dispatched so far
	err     error
	closed  bool
	// table, when not nil, records each frame written, for a seek table.
	table *[]Frame
}

type chunk struct {
	in, out []byte
	done    chan struct{}
	after   []sideFrame // skippable frames written after this chunk's frame
}

// sideFrame is a skippable frame queued behind the data written before it.
type sideFrame struct {
	frame []byte
	tag   int
}

func newChunkWriter(w io.Writer, level zstd.EncoderLevel, size, procs int, o options) (*chunkWriter, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(procs),
		zstd.WithWindowSize(min(size, 8<<20)),
		zstd.WithEncoderCRC(o.checksums),
		zstd.WithZeroFrames(true),
		// A history of one chunk (plus a block) instead of two: a frame
		// never reaches back past its own start, and the 2 MiB saved
		// on each encoder leave the collector room in bk-pack's heap.
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	return &chunkWriter{w: w, enc: enc, size: size, max: procs + 1}, nil
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if cw.closed {
		return 0, errors.New("write to closed compressor")
	}
	n := 0
	for len(p) > 0 && cw.err == nil {
		if cw.cur == nil {
			cw.cur = cw.newChunk()
		}
		c := cw.cur
		m := copy(c.in[len(c.in):cw.size], p)
		c.in = c.in[:len(c.in)+m]
		p = p[m:]
		n += m
		if len(c.in) == cw.size {
			cw.dispatch()
		}
	}
	return n, cw.err
}

// newChunk takes a chunk from the free list. There are never more than
// max+1 chunks: max pending and one being filled.
func (cw *chunkWriter) newChunk() *chunk {
	if k := len(cw.free); k > 0 {
		c := cw.free[k-1]
		cw.free = cw.free[:k-1]
		return c
	}
	// Room for the worst case, so EncodeAll never grows it.
	return &chunk{in: make([]byte, 0, cw.size), out: make([]byte, 0, cw.enc.MaxEncodedSize(cw.size))}
}

// dispatch starts compressing the current chunk, then writes out finished
// chunks: those done at the head of the queue, and the oldest one even if
// not done yet when the queue is full.
func (cw *chunkWriter) dispatch() {
	c := cw.cur
	cw.cur = nil
	c.done = make(chan struct{})
	cw.pending = append(cw.pending, c)
	cw.frames++
	go func() {
		c.out = cw.enc.EncodeAll(c.in, c.out[:0])
		close(c.done)
	}()
	for len(cw.pending) > 0 && cw.err == nil {
		if len(cw.pending) <= cw.max {
			select {
			case <-cw.pending[0].done:
			default:
				return
			}
		}
		cw.writeHead()
	}
}

// writeHead waits for the oldest pending chunk and writes its frame.
func (cw *chunkWriter) writeHead() {
	c := cw.pending[0]
	<-c.done
	cw.pending = cw.pending[1:]
	if _, err := cw.w.Write(c.out); err != nil {
		cw.err = err
	}
	if cw.table != nil {
		*cw.table = append(*cw.table, Frame{Compressed: uint32(len(c.out)), Size: uint32(len(c.in))})
	}
	for _, f := range c.after {
		cw.writeSide(f)
	}
	clear(c.after)
	c.after = c.after[:0]
	c.in = c.in[:0]
	cw.free = append(cw.free, c)
}

// writeSide writes a skippable frame and records it.
func (cw *chunkWriter) writeSide(f sideFrame) {
	if cw.err != nil {
		return
	}
	if _, err := cw.w.Write(f.frame); err != nil {
		cw.err = err
	}
	if cw.table != nil {
		*cw.table = append(*cw.table, Frame{Compressed: uint32(len(f.frame)), Tag: f.tag})
	}
}

// side queues a skippable frame to follow the frames of everything
// written so far.
func (cw *chunkWriter) side(f sideFrame) {
	switch {
	case cw.cur != nil:
		cw.cur.after = append(cw.cur.after, f)
	case len(cw.pending) > 0:
		last := cw.pending[len(cw.pending)-1]
		last.after = append(last.after, f)
	default:
		cw.writeSide(f)
	}
}

// Close compresses what is left and writes all frames out. An empty input
// still makes one (empty) frame, so the output is a valid zstd stream.
func (cw *chunkWriter) Close() error {
	if cw.closed {
		return cw.err
	}
	cw.closed = true
	if cw.cur != nil || (cw.err == nil && cw.frames == 0) {
		if cw.cur == nil {
			cw.cur = cw.newChunk()
		}
		cw.dispatch()
	}
	for len(cw.pending) > 0 {
		// Wait even after an error: the goroutines still use the buffers.
		if cw.err != nil {
			<-cw.pending[0].done
			cw.pending = cw.pending[1:]
			continue
		}
		cw.writeHead()
	}
	cw.enc.Close()
	return cw.err
}

// Decompress reads a zstd stream: one or more frames, skippable frames
// allowed. It refuses frames whose window is over MaxWindow, so hostile
// input cannot make it allocate more than a few windows. Close releases the
// decoder's goroutines, keeping the decoder for the next Decompress; it
// does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	if d, ok := decoders.Get().(*zstd.Decoder); ok {
		if err := d.Reset(r); err == nil {
			return &zstdReader{d}, nil
		}
		d.Close()
	}
	d, err := zstd.NewReader(r,
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderMaxMemory(MaxWindow),
		zstd.WithDecoderConcurrency(2),
		zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return &zstdReader{d}, nil
}

// decoders keeps the decoders of closed streams: a chain's restore opens a
// stream per backup, and a new decoder's buffers cost more than decoding a
// small incremental backup.
var decoders sync.Pool

// zstdReader says what a refused window means; the decoder's own "window
// size exceeded" does not say whose limit it is.
type zstdReader struct{ d *zstd.Decoder }

func (z *zstdReader) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, zstd.ErrDecoderClosed
	}
	n, err := z.d.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("zstd frame needs a window over %d MiB, more than bk allows "+
			"(decompress it with `zstd -d --long=31` first): %w", MaxWindow>>20, err)
	}
	return n, err
}

func (z *zstdReader) Close() error {
	if z.d == nil {
		return nil
	}
	if z.d.Reset(nil) == nil {
		decoders.Put(z.d)
	} else {
		z.d.Close()
	}
	z.d = nil
	return nil
}
