package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The zstd seekable format (contrib/seekable_format in the zstd sources):
// a skippable frame at the very end of the stream lists every frame's
// compressed and decompressed size, and its last bytes say so. `zstd -d`
// skips it like any skippable frame.
const (
	seekTableMagic  = 0x184D2A5E // the skippable frame holding the table
	seekFooterMagic = 0x8F92EAB1
	seekFooterLen   = 9 // number of frames, descriptor, magic
	seekEntryLen    = 8 // compressed size, decompressed size (no checksums)
	skippableHead   = 8 // magic, payload length
	// maxFrames bounds the table a reader accepts: a 2 MiB frame each is
	// 2 PiB of archive.
	maxFrames = 1 << 30
)

// Frame is one frame of a seekable stream, in stream order: its size in
// the stream, the bytes it decompresses to (0 for a skippable frame), and,
// when it is a skippable frame the writer's caller added, the caller's tag
// (0 for frames of data).
type Frame struct {
	Compressed uint32
	Size       uint32
	Tag        int
}

// SeekWriter compresses as Compress does and records every frame, so that
// Finish can end the stream with a seek table. Skippable frames of the
// caller's (a catalogue) go between the frames of data.
type SeekWriter struct {
	cw     *chunkWriter
	frames []Frame
}

// CompressSeekable returns a writer that compresses into w as Compress does
// and, once Finish is called, ends the stream with a seek table.
func CompressSeekable(w io.Writer, level int, opts ...Option) (*SeekWriter, error) {
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("compression level %d out of range (1–22)", level)
	}
	cw, err := newChunkWriter(w, zstd.EncoderLevelFromZstd(level), ChunkSize, runtime.GOMAXPROCS(0), optionsOf(opts))
	if err != nil {
		return nil, err
	}
	s := &SeekWriter{cw: cw}
	cw.table = &s.frames
	return s, nil
}

func (s *SeekWriter) Write(p []byte) (int, error) { return s.cw.Write(p) }

// Skippable queues a skippable frame (magic 0x184D2A50 to 0x184D2A5F, but
// not the seek table's) with payload, to follow the frames of everything
// written so far. tag (not 0) marks it in the frames Finish reports.
func (s *SeekWriter) Skippable(magic uint32, payload []byte, tag int) error {
	if magic&0xFFFFFFF0 != 0x184D2A50 || magic == seekTableMagic || tag == 0 {
		return fmt.Errorf("skippable frame: bad magic %#x or tag %d", magic, tag)
	}
	s.cw.side(sideFrame{frame: SkippableFrame(magic, payload), tag: tag})
	return nil
}

// SkippableFrame is payload in a skippable frame of magic.
func SkippableFrame(magic uint32, payload []byte) []byte {
	f := make([]byte, skippableHead, skippableHead+len(payload))
	binary.LittleEndian.PutUint32(f, magic)
	binary.LittleEndian.PutUint32(f[4:], uint32(len(payload)))
	return append(f, payload...)
}

// Finish compresses what is left and writes every frame out; then last,
// given every frame written (in order), returns one more skippable frame
// (or nil), and the seek table ends the stream. It does not close the
// underlying writer.
func (s *SeekWriter) Finish(last func(frames []Frame) ([]byte, error)) error {
	if err := s.cw.Close(); err != nil {
		return err
	}
	if last != nil {
		f, err := last(s.frames)
		if err != nil {
			return err
		}
		if f != nil {
			s.cw.writeSide(sideFrame{frame: f, tag: -1})
		}
	}
	if s.cw.err != nil {
		return s.cw.err
	}
	_, err := s.cw.w.Write(seekTable(s.frames))
	return err
}

// seekTable is the skippable frame of the zstd seekable format for frames.
func seekTable(frames []Frame) []byte {
	b := make([]byte, 0, len(frames)*seekEntryLen+seekFooterLen)
	for _, f := range frames {
		b = binary.LittleEndian.AppendUint32(b, f.Compressed)
		b = binary.LittleEndian.AppendUint32(b, f.Size)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(frames)))
	b = append(b, 0) // descriptor: no checksums (age authenticates every byte)
	b = binary.LittleEndian.AppendUint32(b, seekFooterMagic)
	return SkippableFrame(seekTableMagic, b)
}

// ErrNoSeekTable says a zstd stream does not end with a seek table: made
// before bk-pack wrote one, or by zstd itself.
var ErrNoSeekTable = errors.New("the archive has no seek table")

// SeekTable is the frame list of a seekable stream, with each frame's
// offset in the stream and in the decompressed data.
type SeekTable struct {
	Frames []Frame
	// Offsets[i] and Starts[i] are where frame i begins in the stream and
	// in the data; one more element each holds the ends.
	Offsets, Starts []int64
}

// ReadSeekTable reads the seek table at the end of a zstd stream of size
// bytes. The frames it lists must add up to the stream exactly.
func ReadSeekTable(r io.ReaderAt, size int64) (*SeekTable, error) {
	if size < skippableHead+seekFooterLen {
		return nil, ErrNoSeekTable
	}
	var foot [seekFooterLen]byte
	if err := readFullAt(r, foot[:], size-seekFooterLen); err != nil {
		return nil, fmt.Errorf("reading the seek table: %w", err)
	}
	if binary.LittleEndian.Uint32(foot[5:]) != seekFooterMagic {
		return nil, ErrNoSeekTable
	}
	n := int64(binary.LittleEndian.Uint32(foot[:]))
	if foot[4] != 0 {
		return nil, fmt.Errorf("seek table: descriptor %#x, bk writes 0 (a newer bk?)", foot[4])
	}
	tableLen := n*seekEntryLen + seekFooterLen
	if n > maxFrames || skippableHead+tableLen > size {
		return nil, fmt.Errorf("seek table: %d frames do not fit a stream of %d bytes: damaged", n, size)
	}
	b := make([]byte, skippableHead+tableLen)
	if err := readFullAt(r, b, size-int64(len(b))); err != nil {
		return nil, fmt.Errorf("reading the seek table: %w", err)
	}
	if binary.LittleEndian.Uint32(b) != seekTableMagic || int64(binary.LittleEndian.Uint32(b[4:])) != tableLen {
		return nil, errors.New("seek table: its frame header does not match its footer: damaged")
	}
	t := &SeekTable{Frames: make([]Frame, n), Offsets: make([]int64, n+1), Starts: make([]int64, n+1)}
	e := b[skippableHead:]
	for i := range t.Frames {
		f := Frame{Compressed: binary.LittleEndian.Uint32(e[i*seekEntryLen:]), Size: binary.LittleEndian.Uint32(e[i*seekEntryLen+4:])}
		t.Frames[i] = f
		t.Offsets[i+1] = t.Offsets[i] + int64(f.Compressed)
		t.Starts[i+1] = t.Starts[i] + int64(f.Size)
	}
	if t.Offsets[n] != size-int64(len(b)) {
		return nil, fmt.Errorf("seek table: its frames make %d bytes, the stream has %d before the table: damaged", t.Offsets[n], size-int64(len(b)))
	}
	return t, nil
}

// Skippable reads the payload of frame i, which must be a skippable frame
// of magic.
func (t *SeekTable) Skippable(r io.ReaderAt, i int, magic uint32) ([]byte, error) {
	f := t.Frames[i]
	if f.Size != 0 || f.Compressed < skippableHead {
		return nil, fmt.Errorf("frame %d is not a skippable frame", i)
	}
	b := make([]byte, f.Compressed)
	if err := readFullAt(r, b, t.Offsets[i]); err != nil {
		return nil, fmt.Errorf("reading frame %d: %w", i, err)
	}
	if binary.LittleEndian.Uint32(b) != magic || binary.LittleEndian.Uint32(b[4:]) != f.Compressed-skippableHead {
		return nil, fmt.Errorf("frame %d is not the skippable frame the seek table says", i)
	}
	return b[skippableHead:], nil
}

// FrameReader reads the decompressed data of a seekable stream at any
// offset, decompressing only the frames that hold it (and keeping the last
// one). It is safe for concurrent use.
type FrameReader struct {
	r     io.ReaderAt
	t     *SeekTable
	dec   *zstd.Decoder
	mu    sync.Mutex
	last  int // the frame in buf, or -1
	buf   []byte
	Count func(frames int64) // if set, told of each compressed byte read
}

// NewFrameReader reads the data of the stream r that t describes.
func NewFrameReader(r io.ReaderAt, t *SeekTable) (*FrameReader, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderMaxMemory(MaxWindow),
		zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return &FrameReader{r: r, t: t, dec: dec, last: -1}, nil
}

// Size is the length of the decompressed data.
func (fr *FrameReader) Size() int64 { return fr.t.Starts[len(fr.t.Frames)] }

// Close releases the decoder.
func (fr *FrameReader) Close() { fr.dec.Close() }

func (fr *FrameReader) ReadAt(p []byte, off int64) (int, error) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	n := 0
	for n < len(p) {
		if off >= fr.Size() {
			return n, io.EOF
		}
		i := fr.frameAt(off)
		if err := fr.load(i); err != nil {
			return n, err
		}
		m := copy(p[n:], fr.buf[off-fr.t.Starts[i]:])
		n += m
		off += int64(m)
	}
	return n, nil
}

// frameAt is the data frame holding the data byte at off.
func (fr *FrameReader) frameAt(off int64) int {
	lo, hi := 0, len(fr.t.Frames)
	for lo < hi { // the last frame whose start is <= off, with data
		mid := (lo + hi) / 2
		if fr.t.Starts[mid+1] <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// load decompresses frame i into buf, checking its size against the table.
func (fr *FrameReader) load(i int) error {
	if fr.last == i {
		return nil
	}
	f := fr.t.Frames[i]
	comp := make([]byte, f.Compressed)
	if err := readFullAt(fr.r, comp, fr.t.Offsets[i]); err != nil {
		return fmt.Errorf("reading zstd frame %d: %w", i, err)
	}
	if fr.Count != nil {
		fr.Count(int64(len(comp)))
	}
	fr.last = -1
	out, err := fr.dec.DecodeAll(comp, fr.buf[:0])
	if err != nil {
		return fmt.Errorf("zstd frame %d at byte %d: %w", i, fr.t.Offsets[i], err)
	}
	if len(out) != int(f.Size) {
		return fmt.Errorf("zstd frame %d decompresses to %d bytes, the seek table says %d: damaged", i, len(out), f.Size)
	}
	fr.buf, fr.last = out, i
	return nil
}

// readFullAt reads len(p) bytes at off: a ReaderAt may say io.EOF with
// the last bytes of its input, which is no error here.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
