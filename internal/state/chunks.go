package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/bk-backup/bk/internal/archive"
)

// The chunk lists of the large files (archive.DeltaMin bytes or more) of
// the last stored backup live in their own file, beside the index: they
// are known only once a file was read, after its index entry was written.
// Section 6 of docs/FORMAT.md.
const (
	chunksFile  = "chunks"
	nextChunks  = "chunks.next"
	chunksMagic = "bk-state-chunks 1\n"
	recFile     = 'F' // string name, uvarint size, hash, uvarint count, count × (uvarint length, hash)
	// maxChunks bounds the count of one record against a damaged one:
	// a file of 64 TiB in chunks of 64 KiB.
	maxChunks = 1 << 30
)

// chunksHeader is a chunks file's second line.
type chunksHeader struct {
	Pack string `json:"pack"` // the backup whose files it describes
}

// chunkLoc is where a file's record lies in the old chunks file.
type chunkLoc struct{ off, len int64 }

// chunkStore is a Tracker's view of the chunk lists: the old file's
// records by name, and the new file being written (by the walker, for
// unchanged files, and the writer, for stored ones).
type chunkStore struct {
	old     *os.File
	oldLocs map[string]chunkLoc
	// Why the old lists are not used, when there is an old index; Older
	// when the state is simply older than chunk lists.
	Missing string
	Older   bool

	mu  sync.Mutex
	f   *os.File
	bw  *bufio.Writer
	sum hash.Hash
	w   io.Writer
	buf []byte
	err error
}

func createChunks(path, pack string) (*chunkStore, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	c := &chunkStore{f: f, bw: bufio.NewWriterSize(f, 64<<10), sum: sha256.New()}
	c.w = io.MultiWriter(c.bw, c.sum)
	js, _ := json.Marshal(chunksHeader{Pack: pack})
	c.write(append([]byte(chunksMagic), append(js, '\n')...))
	return c, c.err
}

func (c *chunkStore) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

// openOld reads and checks the chunks file of the backup pack, noting the
// place of each record. A missing or damaged one is not an error: the
// large files that changed are then stored whole.
func (c *chunkStore) openOld(path, pack string) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.Missing = fmt.Sprintf("the state in %s has no chunk lists (a state of an older bk)", filepath.Dir(path))
		c.Older = true
		return
	}
	if err != nil {
		c.Missing = fmt.Sprintf("the chunk lists in %s cannot be read (%v)", path, err)
		return
	}
	locs, err := readChunkLocs(f, pack)
	if err != nil {
		f.Close()
		c.Missing = fmt.Sprintf("the chunk lists in %s are not usable (%v)", path, err)
		return
	}
	c.old, c.oldLocs = f, locs
}

// countingReader counts and checksums what it reads.
type countingReader struct {
	br  *bufio.Reader
	sum hash.Hash
	n   int64
}

func (r *countingReader) ReadByte() (byte, error) {
	b, err := r.br.ReadByte()
	if err == nil {
		r.sum.Write([]byte{b})
		r.n++
	}
	return b, err
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.br.Read(p)
	r.sum.Write(p[:n])
	r.n += int64(n)
	return n, err
}

func readChunkLocs(f *os.File, pack string) (map[string]chunkLoc, error) {
	r := &countingReader{br: bufio.NewReaderSize(f, 64<<10), sum: sha256.New()}
	magic, err := r.br.ReadString('\n')
	if err != nil || magic != chunksMagic {
		return nil, errors.New("not a version 1 bk-state-chunks file")
	}
	line, err := r.br.ReadBytes('\n')
	var h chunksHeader
	if err != nil || json.Unmarshal(line, &h) != nil {
		return nil, errors.New("damaged header")
	}
	if h.Pack != pack {
		return nil, errors.New("they belong to another backup than the index")
	}
	r.sum.Write([]byte(magic))
	r.sum.Write(line)
	r.n = int64(len(magic) + len(line))
	locs := map[string]chunkLoc{}
	for {
		start := r.n
		kind, err := r.ReadByte()
		if err != nil {
			return nil, errors.New("cut short")
		}
		if kind == recEnd {
			want := r.sum.Sum(nil)
			got := make([]byte, sha256.Size)
			if _, err := io.ReadFull(r.br, got); err != nil || !bytes.Equal(got, want) {
				return nil, errors.New("checksum mismatch")
			}
			return locs, nil
		}
		if kind != recFile {
			return nil, fmt.Errorf("unknown record type %q", kind)
		}
		name, _, err := readFileChunks(r, false)
		if err != nil {
			return nil, err
		}
		locs[name] = chunkLoc{off: start, len: r.n - start}
	}
}

// readFileChunks reads a record after its type byte; with keep, it returns
// the chunk list too.
func readFileChunks(r interface {
	io.Reader
	io.ByteReader
}, keep bool) (string, *archive.FileChunks, error) {
	damaged := func(what string) error { return fmt.Errorf("%w: %s", errDamaged, what) }
	n, err := binary.ReadUvarint(r)
	if err != nil || n > maxString {
		return "", nil, damaged("a name")
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(r, name); err != nil {
		return "", nil, damaged("a name")
	}
	fc := &archive.FileChunks{}
	size, err := binary.ReadUvarint(r)
	if err != nil || size > 1<<62 {
		return "", nil, damaged("a size")
	}
	fc.Size = int64(size)
	if _, err := io.ReadFull(r, fc.Hash[:]); err != nil {
		return "", nil, damaged("a hash")
	}
	count, err := binary.ReadUvarint(r)
	if err != nil || count > maxChunks {
		return "", nil, damaged("a chunk count")
	}
	var total uint64
	for range count {
		var c archive.ChunkRef
		l, err := binary.ReadUvarint(r)
		if err != nil || l > 1<<32-1 {
			return "", nil, damaged("a chunk length")
		}
		c.Len = uint32(l)
		total += l
		if _, err := io.ReadFull(r, c.Hash[:]); err != nil {
			return "", nil, damaged("a chunk hash")
		}
		if keep {
			fc.Chunks = append(fc.Chunks, c)
		}
	}
	if total != size {
		return "", nil, damaged("chunks that do not add up to the file")
	}
	return string(name), fc, nil
}

// base reads the old chunk list of name, or returns nil.
func (c *chunkStore) base(name string) *archive.FileChunks {
	loc, ok := c.oldLocs[name]
	if !ok {
		return nil
	}
	br := bufio.NewReader(io.NewSectionReader(c.old, loc.off+1, loc.len-1))
	_, fc, err := readFileChunks(br, true)
	if err != nil {
		return nil
	}
	return fc
}

// keep appends the record of a file.
func (c *chunkStore) keep(name string, fc *archive.FileChunks) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := append(c.buf[:0], recFile)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(fc.Size))
	b = append(b, fc.Hash[:]...)
	b = binary.AppendUvarint(b, uint64(len(fc.Chunks)))
	for _, ch := range fc.Chunks {
		b = binary.AppendUvarint(b, uint64(ch.Len))
		b = append(b, ch.Hash[:]...)
	}
	c.buf = b
	c.write(b)
}

// carry copies the old record of an unchanged file, if any.
func (c *chunkStore) carry(name string) {
	loc, ok := c.oldLocs[name]
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		_, c.err = io.Copy(c.w, io.NewSectionReader(c.old, loc.off, loc.len))
	}
}

// finish ends the new file with its checksum, syncs and closes both.
func (c *chunkStore) finish() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write([]byte{recEnd})
	c.err = closeSummed(c.err, c.bw, c.f, c.sum.Sum(nil))
	c.close()
	return c.err
}

// abort closes both files, after a failure.
func (c *chunkStore) abort() {
	c.f.Close()
	c.close()
}

// close closes the old file.
func (c *chunkStore) close() {
	if c.old != nil {
		c.old.Close()
		c.old = nil
	}
}
