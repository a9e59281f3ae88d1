package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/restic/chunker"

	"github.com/bk-backup/bk/internal/blake3"
	"github.com/bk-backup/bk/internal/rsdelta"
)

// Large files (issue 12): a regular file of DeltaMin bytes or more is cut
// into content-defined chunks as it is read, and its chunk list kept by the
// Deltas of PackOptions. When it changed since the backup before, its
// entry holds a librsync delta against that version: copies of the chunks
// the old version had too, the other bytes literally.
const (
	DeltaMin = 4 << 20
	// DeltaSuffix ends the member name of a delta: the entry of file f is
	// named f.bk-delta, so that tar -x puts it beside the old version,
	// which rdiff patch needs.
	DeltaSuffix = ".bk-delta"

	// The chunker: restic's Rabin fingerprints, on a fixed polynomial
	// (chunk lists of one series must agree), 64 KiB to 1 MiB, 320 KiB on
	// average: changes cost little more than their size in a delta.
	chunkMin     = 64 << 10
	chunkMax     = 1 << 20
	chunkAvgBits = 18
	chunkPol     = chunker.Pol(0x3DA3358B4DC173)
)

// PAX records of a delta entry (section 6 of docs/FORMAT.md).
const (
	deltaRecord   = "BK.delta"             // "1": the content is a librsync delta, version 1 of this use
	deltaBaseSize = "BK.delta.base.size"   // the size of the version it applies to
	deltaBaseHash = "BK.delta.base.blake3" // the BLAKE3-256 of that version, hex
	deltaSize     = "BK.delta.size"        // the size of the result
	deltaHash     = "BK.delta.blake3"      // the BLAKE3-256 of the result, hex
)

// ChunkRef is one chunk of a file: its length and BLAKE3-256.
type ChunkRef struct {
	Len  uint32
	Hash [32]byte
}

// FileChunks describes one version of a large file: its size, BLAKE3-256
// and chunks, in order.
type FileChunks struct {
	Size   int64
	Hash   [32]byte
	Chunks []ChunkRef
}

// Deltas keeps the chunk lists of large files from one backup to the next.
// Pack calls it from one goroutine.
type Deltas interface {
	// Base returns the chunk list of the version of the file (by member
	// name) that the backup before stored, or nil: then the file is stored
	// whole.
	Base(name string) *FileChunks
	// Keep records the chunk list of the version this backup stores.
	Keep(name string, c *FileChunks)
}

// contentReader yields a file's content in order: the head a worker read,
// then the rest from the descriptor, size bytes at most. A read error ends
// it early (as io.EOF, for the chunker) and is kept in err. It runs in the
// chunker's goroutine.
type contentReader struct {
	w    *writer
	it   *item
	head []byte
	left int64
	err  error
}

func (r *contentReader) Read(b []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(b, r.head)
		r.head = r.head[n:]
		r.left -= int64(n)
		return n, nil
	}
	if r.left <= 0 || r.err != nil {
		return 0, io.EOF
	}
	if r.err = r.w.p.ctx.Err(); r.err != nil {
		return 0, io.EOF
	}
	n, err := readContent(r.it.fd, r.it.path, b[:min(int64(len(b)), r.left)])
	r.left -= int64(n)
	if err != nil {
		r.err = err
		if n == 0 {
			return 0, io.EOF
		}
	}
	return n, nil
}

// chunks cuts what r yields into chunks, calling fn with each chunk's
// bytes and hash, and returns the chunk list of what it read. The chunker
// (reading the file) runs in a goroutine of its own, a chunk ahead of the
// hashing and fn, on two buffers that take turns.
func (w *writer) chunks(r io.Reader, fn func(data []byte, sum *[32]byte) error) (*FileChunks, error) {
	if w.chunker == nil {
		w.chunker = chunker.NewWithBoundaries(r, chunkPol, chunkMin, chunkMax)
		w.chunkBufs = [2][]byte{make([]byte, chunkMax), make([]byte, chunkMax)}
	} else {
		w.chunker.ResetWithBoundaries(r, chunkPol, chunkMin, chunkMax)
	}
	w.chunker.SetAverageBits(chunkAvgBits)
	free, full := make(chan []byte, 2), make(chan []byte, 2)
	free <- w.chunkBufs[0]
	free <- w.chunkBufs[1]
	stop := make(chan struct{})
	var chunkErr error
	go func() {
		defer close(full)
		for {
			var buf []byte
			select {
			case <-stop:
				return
			default:
			}
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			c, err := w.chunker.Next(buf)
			if err != nil {
				if err != io.EOF {
					chunkErr = err
				}
				return
			}
			full <- c.Data
		}
	}()
	whole := blake3.New()
	fc := &FileChunks{}
	var err error
	for data := range full {
		if err == nil {
			w.p.opts.Progress(len(data))
			sum := blake3.Sum256(data)
			whole.Write(data)
			fc.Chunks = append(fc.Chunks, ChunkRef{Len: uint32(len(data)), Hash: sum})
			fc.Size += int64(len(data))
			if err = fn(data, &sum); err != nil {
				close(stop)
			}
		}
		free <- data[:cap(data)]
	}
	if err == nil {
		err = chunkErr
	}
	if err != nil {
		return nil, err
	}
	whole.Sum(fc.Hash[:0])
	return fc, nil
}

// chunked says whether a file's content is cut into chunks as it is
// stored: a large, regular one read without error so far.
func (w *writer) chunked(it *item, size int64) bool {
	return w.p.opts.Deltas != nil && size >= DeltaMin && it.sparse == nil && it.readErr == nil
}

// copyChunked writes the content of a large file to the entry whose header
// is written, chunking it, and keeps its chunk list when it was read whole.
func (w *writer) copyChunked(it *item, size int64) (int64, error, error) {
	r := &contentReader{w: w, it: it, head: it.data, left: size}
	fc, err := w.chunks(r, func(data []byte, _ *[32]byte) error {
		_, err := w.tw.Write(data)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if err := w.p.ctx.Err(); err != nil {
		return fc.Size, nil, err
	}
	readErr := r.err
	if readErr == nil && fc.Size < size {
		readErr = io.EOF
	}
	if readErr == nil {
		w.p.opts.Deltas.Keep(it.name, fc)
	}
	return fc.Size, readErr, nil
}

// piece is a chunk of the new version: where it lies, and where it lay in
// the old one (-1: not there).
type piece struct {
	off, from int64
	len       int
	sum       [32]byte
}

// errNoDelta stops the first read of a file whose delta is not worth it.
var errNoDelta = errors.New("no delta")

// tryDelta stores a changed large file as a delta against base when that
// is smaller than half the file. It reads the file once to chunk it, then
// the chunks the old version did not have again, to write them. done says
// whether it stored the file; if not, the file is as it was, to be stored
// whole.
func (w *writer) tryDelta(it *item, h *tar.Header, size int64, base *FileChunks) (done bool, err error) {
	old := make(map[[32]byte]int64, len(base.Chunks))
	var off int64
	for _, c := range base.Chunks {
		if _, ok := old[c.Hash]; !ok {
			old[c.Hash] = off
		}
		off += int64(c.Len)
	}
	var pieces []piece
	var pos, literal int64
	r := &contentReader{w: w, it: it, head: it.data, left: size}
	fc, err := w.chunks(r, func(data []byte, sum *[32]byte) error {
		p := piece{off: pos, from: -1, len: len(data), sum: *sum}
		if o, ok := old[*sum]; ok {
			p.from = o
		} else if literal += int64(len(data)); literal > size/2 {
			return errNoDelta
		}
		pieces = append(pieces, p)
		pos += int64(len(data))
		return nil
	})
	if err := w.p.ctx.Err(); err != nil {
		return true, err
	}
	if err != nil && err != errNoDelta {
		return true, err
	}
	ops := deltaOps(pieces)
	n := deltaLen(ops)
	if err != nil || r.err != nil || fc.Size != size || n >= size/2 {
		// Not worth it, or the read failed or met a changed file: the
		// whole-file store reads it again and says what it finds.
		return false, seekFd(it.fd, int64(len(it.data)))
	}
	h.Name += DeltaSuffix
	h.Size = n
	if h.PAXRecords == nil {
		h.PAXRecords = map[string]string{}
	}
	h.PAXRecords[deltaRecord] = "1"
	h.PAXRecords[deltaBaseSize] = strconv.FormatInt(base.Size, 10)
	h.PAXRecords[deltaBaseHash] = fmt.Sprintf("%x", base.Hash)
	h.PAXRecords[deltaSize] = strconv.FormatInt(size, 10)
	h.PAXRecords[deltaHash] = fmt.Sprintf("%x", fc.Hash)
	if err := w.writeHeader(h); err != nil {
		return true, err
	}
	changed, err := w.writeOps(it, ops, pieces)
	if err != nil {
		return true, err
	}
	if changed {
		const reason = "changed while read: its delta does not make the file it was read as"
		w.warnf("%s: %s; marked damaged", it.path, reason)
		w.p.unstored(it.name)
		if err := w.damageMarker(it, reason); err != nil {
			return true, err
		}
	} else {
		w.p.opts.Deltas.Keep(it.name, fc)
	}
	return true, w.settle(it, size, size, nil, false)
}

// deltaOp is one command of a delta: a copy of len bytes from offset from
// of the old version, or (from -1) the literal pieces[first:last].
type deltaOp struct {
	from, len   int64
	first, last int
}

// deltaOps merges the pieces into commands: adjacent copies of adjacent
// old chunks into one copy, adjacent literal pieces into one literal.
func deltaOps(pieces []piece) []deltaOp {
	var ops []deltaOp
	for i, p := range pieces {
		if k := len(ops) - 1; k >= 0 {
			o := &ops[k]
			if (p.from < 0 && o.from < 0) || (p.from >= 0 && o.from >= 0 && o.from+o.len == p.from) {
				o.len += int64(p.len)
				o.last = i + 1
				continue
			}
		}
		ops = append(ops, deltaOp{from: p.from, len: int64(p.len), first: i, last: i + 1})
	}
	return ops
}

// deltaLen is the size of the delta of ops: magic, commands, literal
// bytes, end.
func deltaLen(ops []deltaOp) int64 {
	n := int64(4 + 1)
	for _, o := range ops {
		if o.from >= 0 {
			n += rsdelta.CopyLen(o.from, o.len)
		} else {
			n += rsdelta.LiteralLen(o.len) + o.len
		}
	}
	return n
}

// writeOps writes the delta's content, reading the literal pieces again.
// A piece that reads back other than it read before (the file changed
// meanwhile), or not at all, is written as read, or as zeros, and changed
// says so.
func (w *writer) writeOps(it *item, ops []deltaOp, pieces []piece) (changed bool, err error) {
	w.cmd = rsdelta.AppendMagic(w.cmd[:0])
	for _, o := range ops {
		if o.from >= 0 {
			w.cmd = rsdelta.AppendCopy(w.cmd, o.from, o.len)
			continue
		}
		w.cmd = rsdelta.AppendLiteral(w.cmd, o.len)
		if _, err := w.tw.Write(w.cmd); err != nil {
			return changed, err
		}
		w.cmd = w.cmd[:0]
		for _, p := range pieces[o.first:o.last] {
			if err := w.p.ctx.Err(); err != nil {
				return changed, err
			}
			data := w.chunkBufs[0][:p.len]
			n := 0
			if seekFd(it.fd, p.off) == nil {
				for n < len(data) {
					m, err := readContent(it.fd, it.path, data[n:])
					n += m
					if err != nil {
						break
					}
				}
			}
			clear(data[n:])
			if n < len(data) || blake3.Sum256(data) != p.sum {
				changed = true
			}
			if _, err := w.tw.Write(data); err != nil {
				return changed, err
			}
		}
	}
	w.cmd = rsdelta.AppendEnd(w.cmd)
	_, err = w.tw.Write(w.cmd)
	return changed, err
}
