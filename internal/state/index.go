package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/fsutil"
)

// indexMagic is the first line of an index file; the number is its version.
const indexMagic = "bk-state-index 1\n"

// Record types of an index file.
const (
	recTops   = 'T' // the block of the paths packed
	recBlock  = 'B' // a directory's block: uvarint top, string name
	recEntry  = 'e' // one entry of the current block
	recPoison = 'P' // string name: changed, but not stored by this backup
	recEnd    = 'Z' // 32 bytes: SHA-256 of everything before this byte
)

// maxString bounds a name or target read from an index, against a damaged
// length turning into a huge allocation.
const maxString = 1 << 20

// Header is the index file's second line, JSON.
type Header struct {
	Chain  string    `json:"chain"`            // the chain's ID, 32 hex digits
	Level  int       `json:"level"`            // 0 for a full backup
	Pack   string    `json:"pack"`             // this backup's pack ID, 32 hex digits
	Parent string    `json:"parent,omitempty"` // the parent's pack ID
	Start  time.Time `json:"start"`            // when the walk started
	Paths  []string  `json:"paths"`            // the member names of the paths packed, in order
}

// Entry is what the index keeps of one file, directory or symlink: what
// tells whether it changed.
type Entry struct {
	Name         string // base name; in the tops block, the member name
	Type         byte   // 'f' file, 'd' directory, 'l' symlink
	Mode         uint32 // fs.FileMode: permission and special bits
	UID, GID     uint32
	Dev, Ino     uint64
	Size         uint64
	Mtime, Ctime int64 // nanoseconds since 1970
	Target       string
}

func entryOf(c archive.Child) Entry {
	e := Entry{Name: c.Name, Mode: uint32(c.Info.Mode()), Target: c.Target}
	switch {
	case c.Info.IsDir():
		e.Type = 'd'
	case c.Info.Mode()&fs.ModeSymlink != 0:
		e.Type = 'l'
	default:
		e.Type = 'f'
	}
	if st, ok := c.Info.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = st.Uid, st.Gid
		e.Dev, e.Ino = uint64(st.Dev), st.Ino
		e.Size = uint64(st.Size)
		mtime, ctime := fsutil.StatTimes(st)
		e.Mtime, e.Ctime = mtime.UnixNano(), ctime.UnixNano()
	}
	return e
}

// same tells whether nothing that makes a file changed differs.
func (e *Entry) same(o *Entry) bool {
	return e.Type == o.Type && e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID &&
		e.Dev == o.Dev && e.Ino == o.Ino && e.Size == o.Size && e.Mtime == o.Mtime &&
		e.Ctime == o.Ctime && e.Target == o.Target
}

// indexWriter writes an index file.
type indexWriter struct {
	f   *os.File
	bw  *bufio.Writer
	sum hash.Hash
	w   io.Writer // bw and sum
	buf []byte
	err error
}

func newIndexWriter(f *os.File, h Header) (*indexWriter, error) {
	w := &indexWriter{f: f, bw: bufio.NewWriterSize(f, 256<<10), sum: sha256.New()}
	w.w = io.MultiWriter(w.bw, w.sum)
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	w.write([]byte(indexMagic))
	w.write(append(js, '\n'))
	return w, w.err
}

func (w *indexWriter) write(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

func (w *indexWriter) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *indexWriter) str(s string)     { w.uvarint(uint64(len(s))); w.buf = append(w.buf, s...) }

func (w *indexWriter) flushRec() {
	w.write(w.buf)
	w.buf = w.buf[:0]
}

func (w *indexWriter) tops() { w.buf = append(w.buf, recTops); w.flushRec() }

func (w *indexWriter) block(top int, dir string) {
	w.buf = append(w.buf, recBlock)
	w.uvarint(uint64(top))
	w.str(dir)
	w.flushRec()
}

func (w *indexWriter) entry(e *Entry) {
	w.buf = append(w.buf, recEntry)
	w.str(e.Name)
	w.buf = append(w.buf, e.Type)
	w.uvarint(uint64(e.Mode))
	w.uvarint(uint64(e.UID))
	w.uvarint(uint64(e.GID))
	w.uvarint(e.Dev)
	w.uvarint(e.Ino)
	w.uvarint(e.Size)
	w.buf = binary.AppendVarint(w.buf, e.Mtime)
	w.buf = binary.AppendVarint(w.buf, e.Ctime)
	w.str(e.Target)
	w.flushRec()
}

func (w *indexWriter) poison(name string) {
	w.buf = append(w.buf, recPoison)
	w.str(name)
	w.flushRec()
}

// finish ends the file with its checksum, syncs and closes it, and returns
// the checksum in hex.
func (w *indexWriter) finish() (string, error) {
	w.write([]byte{recEnd})
	sum := w.sum.Sum(nil)
	w.err = closeSummed(w.err, w.bw, w.f, sum)
	return hex.EncodeToString(sum), w.err
}

// record is one record read from an index.
type record struct {
	kind  byte
	top   int
	name  string
	entry Entry
	sum   []byte
}

// indexReader reads an index file record by record.
type indexReader struct {
	br     *bufio.Reader
	sum    hash.Hash // nil when not checking
	header Header
	peeked *record
	rec    record
}

var errDamaged = errors.New("damaged")

func newIndexReader(r io.Reader, check bool) (*indexReader, error) {
	ir := &indexReader{br: bufio.NewReaderSize(r, 256<<10)}
	if check {
		ir.sum = sha256.New()
	}
	magic, err := ir.br.ReadString('\n')
	if err != nil || magic != indexMagic {
		if bytes.HasPrefix([]byte(magic), []byte("bk-state-index ")) {
			return nil, fmt.Errorf("index version %q not known to this bk", magic[len("bk-state-index "):len(magic)-1])
		}
		return nil, fmt.Errorf("%w: not a bk-state-index file", errDamaged)
	}
	line, err := ir.br.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("%w: header cut short", errDamaged)
	}
	if err := json.Unmarshal(line, &ir.header); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errDamaged, err)
	}
	if ir.sum != nil {
		ir.sum.Write([]byte(magic))
		ir.sum.Write(line)
	}
	return ir, nil
}

// ReadByte lets binary.ReadUvarint read through the checksum.
func (ir *indexReader) ReadByte() (byte, error) {
	b, err := ir.br.ReadByte()
	if err == nil && ir.sum != nil {
		ir.sum.Write([]byte{b})
	}
	return b, err
}

func (ir *indexReader) uvarint() (uint64, error) { return binary.ReadUvarint(ir) }

func (ir *indexReader) str() (string, error) {
	n, err := ir.uvarint()
	if err != nil {
		return "", err
	}
	if n > maxString {
		return "", fmt.Errorf("%w: a name of %d bytes", errDamaged, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(ir.br, b); err != nil {
		return "", err
	}
	if ir.sum != nil {
		ir.sum.Write(b)
	}
	return string(b), nil
}

// peek returns the next record without consuming it.
func (ir *indexReader) peek() (*record, error) {
	if ir.peeked != nil {
		return ir.peeked, nil
	}
	r, err := ir.read()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %v", errDamaged, err)
	}
	ir.peeked = r
	return r, nil
}

func (ir *indexReader) next() (*record, error) {
	r, err := ir.peek()
	ir.peeked = nil
	return r, err
}

func (ir *indexReader) read() (*record, error) {
	kind, err := ir.ReadByte()
	if err != nil {
		return nil, err
	}
	r := &ir.rec
	*r = record{kind: kind}
	switch kind {
	case recTops:
	case recBlock:
		top, err := ir.uvarint()
		if err != nil {
			return nil, err
		}
		r.top = int(top)
		if r.name, err = ir.str(); err != nil {
			return nil, err
		}
	case recPoison:
		if r.name, err = ir.str(); err != nil {
			return nil, err
		}
	case recEntry:
		if err := ir.readEntry(&r.entry); err != nil {
			return nil, err
		}
	case recEnd:
		var want []byte
		if ir.sum != nil {
			want = ir.sum.Sum(nil)
		}
		r.sum = make([]byte, sha256.Size)
		if _, err := io.ReadFull(ir.br, r.sum); err != nil {
			return nil, err
		}
		if want != nil && !bytes.Equal(want, r.sum) {
			return nil, errors.New("checksum mismatch")
		}
		if _, err := ir.br.ReadByte(); err != io.EOF {
			return nil, errors.New("data after the end")
		}
	default:
		return nil, fmt.Errorf("unknown record type %q", kind)
	}
	return r, nil
}

func (ir *indexReader) readEntry(e *Entry) error {
	var err error
	if e.Name, err = ir.str(); err != nil {
		return err
	}
	if e.Type, err = ir.ReadByte(); err != nil {
		return err
	}
	var v [6]uint64
	for i := range v {
		if v[i], err = ir.uvarint(); err != nil {
			return err
		}
	}
	e.Mode, e.UID, e.GID, e.Dev, e.Ino, e.Size = uint32(v[0]), uint32(v[1]), uint32(v[2]), v[3], v[4], v[5]
	if e.Mtime, err = binary.ReadVarint(ir); err != nil {
		return err
	}
	if e.Ctime, err = binary.ReadVarint(ir); err != nil {
		return err
	}
	e.Target, err = ir.str()
	return err
}

// verifyIndex reads a whole index file, checks its structure and checksum,
// and returns its header, checksum and the names it marks as not stored.
func verifyIndex(path string) (Header, string, map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, "", nil, err
	}
	defer f.Close()
	ir, err := newIndexReader(f, true)
	if err != nil {
		return Header{}, "", nil, err
	}
	poison := map[string]bool{}
	for {
		r, err := ir.next()
		if err != nil {
			return Header{}, "", nil, err
		}
		switch r.kind {
		case recPoison:
			poison[r.name] = true
		case recEnd:
			return ir.header, hex.EncodeToString(r.sum), poison, nil
		}
	}
}

// closeSummed ends a state file (index or chunk lists): its checksum last,
// then flush, sync and close. The file is closed even after an earlier error
// (err), which is returned first.
func closeSummed(err error, bw *bufio.Writer, f *os.File, sum []byte) error {
	if err == nil {
		_, err = bw.Write(sum)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
