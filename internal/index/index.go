// Package index is the catalogue bk-pack writes inside an archive: every
// entry's name, type, size, mode, time, owner, link target and where its
// headers start in the tar stream, in chunks of skippable zstd frames
// written as the archive goes, and an index of the chunks just before the
// seek table at the end (docs/FORMAT.md, section 1a). bk-find searches it
// and bk-restore uses it to read only the entries it restores.
package index

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/seal"
)

// Magic is the skippable frame magic of catalogue frames; the payload's
// first bytes say which kind.
const Magic = 0x184D2A5B

// Version is the catalogue format version bk writes and reads.
const Version = 1

const (
	chunkTag = "bkcc" // a chunk of entries
	indexTag = "bkci" // the index of the chunks, last before the seek table
	// A chunk is cut at this many entries or bytes of records, so memory
	// stays bounded whatever the number of entries.
	chunkEntries = 8192
	chunkBytes   = 512 << 10
	// maxChunk bounds what a reader decompresses for one chunk.
	maxChunk = 64 << 20
)

// Flags of an entry.
const (
	// FlagDumpdir: a directory with a GNU.dumpdir record (an incremental
	// backup's), which says what was deleted.
	FlagDumpdir = 1 << iota
	// FlagDelta: a delta (a BK.delta record) of the file named as the
	// entry without its ".bk-delta" suffix, which it changes.
	FlagDelta
)

// Target is the name of what the entry restores: for a delta, the file it
// changes.
func (e *Entry) Target() string {
	if e.Flags&FlagDelta != 0 {
		return strings.TrimSuffix(e.Name, archive.DeltaSuffix)
	}
	return e.Name
}

// Entry is one entry of an archive as the catalogue holds it.
type Entry struct {
	Name         string // member name, cleaned ("." for the top, no trailing "/")
	Type         byte   // tar typeflag
	Flags        uint64
	Mode         int64 // permission bits and setuid, setgid, sticky as in the header
	Uid, Gid     int
	Uname, Gname string
	ModTime      time.Time
	Size         int64  // a regular file's size (a sparse one's real size)
	Link         string // symlink or hard link target
	// Offset is where the entry's first header block (its PAX header, if
	// any) starts in the tar stream; Length runs to the next entry's.
	Offset, Length int64
}

// Writer builds the catalogue of an archive as it is written: Add each
// entry as it starts, End with the offset of the end-of-archive marker,
// then Trailer gives the index frame.
type Writer struct {
	sw       *seal.SeekWriter
	enc      *zstd.Encoder
	buf      []byte // records of the chunk being filled
	n        int    // entries in buf
	first    string // name of the chunk's first entry
	prev     string // name of the last entry added
	pending  *Entry // added, waiting for its length
	chunks   []chunkInfo
	total    int64
	end      int64 // offset of the end-of-archive marker
	perChunk int   // entries a chunk holds at most
}

type chunkInfo struct {
	entries int
	first   string
}

// NewWriter writes catalogue frames into sw.
func NewWriter(sw *seal.SeekWriter) (*Writer, error) {
	// A window of one chunk: the default (8 MiB) gave the encoder a 16 MiB
	// history buffer, a third of bk-pack's heap, for chunks of 512 KiB,
	// and a heap that full made the collector run back to back.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(chunkBytes))
	if err != nil {
		return nil, err
	}
	return &Writer{sw: sw, enc: enc, perChunk: chunkEntries}, nil
}

// Add records the entry of header h (a sparse file's with its real size),
// whose first header block starts at offset in the tar stream.
func (w *Writer) Add(h *tar.Header, offset int64) error {
	if err := w.settle(offset); err != nil {
		return err
	}
	e := &Entry{
		Name: path.Clean(strings.TrimSuffix(h.Name, "/")), Type: h.Typeflag, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname, ModTime: h.ModTime,
		Size: h.Size, Link: h.Linkname, Offset: offset,
	}
	if _, ok := h.PAXRecords["GNU.dumpdir"]; ok {
		e.Flags |= FlagDumpdir
	}
	if _, ok := h.PAXRecords["BK.delta"]; ok && strings.HasSuffix(e.Name, archive.DeltaSuffix) {
		e.Flags |= FlagDelta
	}
	w.pending = e
	return nil
}

// End records where the end-of-archive marker starts, which ends the last
// entry.
func (w *Writer) End(offset int64) error {
	if err := w.settle(offset); err != nil {
		return err
	}
	w.end = offset
	return w.cut()
}

// settle gives the pending entry its length and appends it to the chunk.
func (w *Writer) settle(next int64) error {
	e := w.pending
	if e == nil {
		return nil
	}
	w.pending = nil
	e.Length = next - e.Offset
	if w.n == 0 {
		w.first, w.prev = e.Name, ""
	}
	w.buf = appendEntry(w.buf, e, w.prev)
	w.prev = e.Name
	w.n++
	w.total++
	if w.n >= w.perChunk || len(w.buf) >= chunkBytes {
		return w.cut()
	}
	return nil
}

// cut queues the chunk being filled as a frame.
func (w *Writer) cut() error {
	if w.n == 0 {
		return nil
	}
	p := append([]byte(chunkTag), Version)
	p = binary.AppendUvarint(p, uint64(w.n))
	p = w.enc.EncodeAll(w.buf, p)
	w.chunks = append(w.chunks, chunkInfo{entries: w.n, first: w.first})
	if err := w.sw.Skippable(Magic, p, len(w.chunks)); err != nil {
		return err
	}
	w.buf, w.n = w.buf[:0], 0
	return nil
}

// Trailer returns the index frame, given the frames written: what
// SeekWriter.Finish asks for.
func (w *Writer) Trailer(frames []seal.Frame) ([]byte, error) {
	defer w.enc.Close()
	p := append([]byte(indexTag), Version)
	p = binary.AppendUvarint(p, uint64(w.total))
	p = binary.AppendUvarint(p, uint64(w.end))
	p = binary.AppendUvarint(p, uint64(len(w.chunks)))
	found := 0
	for i, f := range frames {
		if f.Tag <= 0 {
			continue
		}
		if f.Tag != found+1 {
			return nil, fmt.Errorf("catalogue chunk %d written out of order", f.Tag)
		}
		c := w.chunks[found]
		found++
		p = binary.AppendUvarint(p, uint64(i))
		p = binary.AppendUvarint(p, uint64(c.entries))
		p = appendString(p, c.first)
	}
	if found != len(w.chunks) {
		return nil, fmt.Errorf("%d of %d catalogue chunks written", found, len(w.chunks))
	}
	return seal.SkippableFrame(Magic, p), nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEntry encodes e, its name as the length shared with prev and the
// rest (names come sorted within a directory, so they share a lot).
func appendEntry(b []byte, e *Entry, prev string) []byte {
	shared := 0
	for shared < len(prev) && shared < len(e.Name) && prev[shared] == e.Name[shared] {
		shared++
	}
	b = binary.AppendUvarint(b, uint64(shared))
	b = appendString(b, e.Name[shared:])
	b = append(b, e.Type)
	b = binary.AppendUvarint(b, e.Flags)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.Uid))
	b = binary.AppendUvarint(b, uint64(e.Gid))
	b = appendString(b, e.Uname)
	b = appendString(b, e.Gname)
	b = binary.AppendVarint(b, e.ModTime.Unix())
	b = binary.AppendUvarint(b, uint64(e.ModTime.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(e.Size))
	b = appendString(b, e.Link)
	b = binary.AppendUvarint(b, uint64(e.Offset))
	return binary.AppendUvarint(b, uint64(e.Length))
}

// ErrNoCatalogue says an archive with a seek table holds no catalogue.
var ErrNoCatalogue = errors.New("the archive has no catalogue")

// Catalogue is the index of an archive's catalogue, read from the frame
// before the seek table.
type Catalogue struct {
	Entries int64 // in the whole archive
	End     int64 // offset of the end-of-archive marker in the tar stream
	Chunks  []Chunk
	r       io.ReaderAt
	t       *seal.SeekTable
}

// Chunk is one chunk of the catalogue: its frame in the seek table, its
// number of entries and its first entry's name.
type Chunk struct {
	Frame   int
	Entries int
	First   string
}

// Open reads the catalogue index of the zstd stream r, whose seek table is t.
func Open(r io.ReaderAt, t *seal.SeekTable) (*Catalogue, error) {
	n := len(t.Frames)
	if n == 0 || t.Frames[n-1].Size != 0 {
		return nil, ErrNoCatalogue
	}
	p, err := t.Skippable(r, n-1, Magic)
	if err != nil || !bytes.HasPrefix(p, []byte(indexTag)) {
		return nil, ErrNoCatalogue
	}
	d := &decoder{b: p[len(indexTag):]}
	if v := d.byte(); d.err == nil && v != Version {
		return nil, fmt.Errorf("catalogue version %d: this bk reads version %d", v, Version)
	}
	c := &Catalogue{Entries: int64(d.uvarint()), End: int64(d.uvarint()), r: r, t: t}
	chunks := d.uvarint()
	if chunks > uint64(n) {
		return nil, errors.New("catalogue index: more chunks than frames: damaged")
	}
	var sum int64
	for range chunks {
		ch := Chunk{Frame: int(d.uvarint()), Entries: int(d.uvarint()), First: d.string()}
		if d.err != nil {
			break
		}
		if ch.Frame >= n-1 || t.Frames[ch.Frame].Size != 0 || (len(c.Chunks) > 0 && ch.Frame <= c.Chunks[len(c.Chunks)-1].Frame) {
			return nil, fmt.Errorf("catalogue index: chunk in frame %d is not a skippable frame in order: damaged", ch.Frame)
		}
		sum += int64(ch.Entries)
		c.Chunks = append(c.Chunks, ch)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New("bytes after its end")
	}
	if d.err != nil {
		return nil, fmt.Errorf("catalogue index: %v: damaged", d.err)
	}
	if sum != c.Entries {
		return nil, fmt.Errorf("catalogue index: chunks hold %d entries, the index says %d: damaged", sum, c.Entries)
	}
	return c, nil
}

// Chunk reads the entries of chunk i.
func (c *Catalogue) Chunk(i int) ([]Entry, error) {
	ch := c.Chunks[i]
	p, err := c.t.Skippable(c.r, ch.Frame, Magic)
	if err != nil {
		return nil, fmt.Errorf("catalogue chunk %d: %w", i, err)
	}
	if !bytes.HasPrefix(p, []byte(chunkTag)) || len(p) < len(chunkTag)+1 {
		return nil, fmt.Errorf("catalogue chunk %d: not a chunk: damaged", i)
	}
	if v := p[len(chunkTag)]; v != Version {
		return nil, fmt.Errorf("catalogue chunk %d: version %d, this bk reads version %d", i, v, Version)
	}
	d := &decoder{b: p[len(chunkTag)+1:]}
	n := d.uvarint()
	if d.err != nil || n != uint64(ch.Entries) {
		return nil, fmt.Errorf("catalogue chunk %d: %d entries, the index says %d: damaged", i, n, ch.Entries)
	}
	raw, err := decodeChunk(d.b)
	if err != nil {
		return nil, fmt.Errorf("catalogue chunk %d: %w", i, err)
	}
	entries := make([]Entry, 0, n)
	d = &decoder{b: raw}
	prev := ""
	for range n {
		e := d.entry(prev)
		if d.err != nil {
			break
		}
		entries = append(entries, e)
		prev = e.Name
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New("bytes after its last entry")
	}
	if d.err != nil {
		return nil, fmt.Errorf("catalogue chunk %d: %v: damaged", i, d.err)
	}
	if len(entries) > 0 && entries[0].Name != ch.First {
		return nil, fmt.Errorf("catalogue chunk %d starts with %q, the index says %q: damaged", i, entries[0].Name, ch.First)
	}
	return entries, nil
}

// Each calls fn for every entry, in archive order, one chunk in memory at
// a time; it stops at fn's first error.
func (c *Catalogue) Each(fn func(*Entry) error) error {
	for i := range c.Chunks {
		entries, err := c.Chunk(i)
		if err != nil {
			return err
		}
		for j := range entries {
			if err := fn(&entries[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeChunk(b []byte) ([]byte, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxChunk), zstd.WithDecoderMaxWindow(seal.MaxWindow))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	out, err := d.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("decompressing: %v: damaged", err)
	}
	return out, nil
}

// decoder reads the fields of a record; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("a number cut short")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("a number cut short")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("cut short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("a string cut short")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) entry(prev string) Entry {
	shared := d.uvarint()
	if shared > uint64(len(prev)) {
		d.err = errors.New("a name sharing more than the name before it")
		return Entry{}
	}
	e := Entry{Name: prev[:shared] + d.string(), Type: d.byte(), Flags: d.uvarint(), Mode: int64(d.uvarint()),
		Uid: int(d.uvarint()), Gid: int(d.uvarint()), Uname: d.string(), Gname: d.string()}
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.err = errors.New("nanoseconds out of range")
	}
	e.ModTime = time.Unix(sec, int64(nsec))
	e.Size = int64(d.uvarint())
	e.Link = d.string()
	e.Offset = int64(d.uvarint())
	e.Length = int64(d.uvarint())
	if e.Size < 0 || e.Offset < 0 || e.Length < 0 {
		d.err = errors.New("a size or offset out of range")
	}
	return e
}
