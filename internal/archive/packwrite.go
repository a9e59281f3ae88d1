package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"strconv"

	"github.com/restic/chunker"
)

// readContent reads a file's content; tests replace it to fail part way,
// as a failing disk does.
var readContent = readFd

// loadBatch reads the files of a batch into its buffer. It runs in a read
// worker.
func (p *packer) loadBatch(b *batch) {
	defer close(b.done)
	// One byte more per file than its budget: see load.
	need := int(b.budget) + b.files
	if cap(b.buf) < need {
		b.buf = make([]byte, need)
	}
	buf := b.buf[:need]
	for _, it := range b.items {
		if it.load {
			n := int(it.budget) + 1
			p.load(it, buf[:n:n])
			buf = buf[n:]
		}
	}
}

// load opens a queued file and reads its head into buf (all of it when it
// fits the item's budget). buf has one byte more than the budget: a file
// read whole asks for one byte more than its size, so a short read shows
// both that it did not grow and that it ended, sparing the writer a read.
func (p *packer) load(it *item, buf []byte) {
	it.fd = -1
	if err := p.ctx.Err(); err != nil {
		it.err = err
		return
	}
	fd, err := openRead(it.path)
	if err != nil {
		it.err = err
		return
	}
	st := &statInfo{name: it.fi.Name()}
	err = fstat(fd, it.path, &st.st)
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("no longer a regular file")
	}
	if err != nil {
		closeFd(fd)
		it.err = err
		return
	}
	it.st, it.fd = st, fd
	if !it.again { // the walker listed those of a hard link's other names
		it.xattrs, it.xattrErr = listXattrsFd(fd, it.path)
	}
	size := st.Size()
	if st.st.Blocks*512 < size { // fewer blocks than bytes: there may be holes
		if it.sparse = dataRegions(fd, size); it.sparse != nil {
			return // the writer reads the data regions
		}
	}
	whole := size <= it.budget
	if whole {
		buf = buf[:size+1]
	} else {
		buf = buf[:it.budget]
	}
	n := 0
	for n < len(buf) {
		m, err := readContent(fd, it.path, buf[n:])
		n += m
		if err == io.EOF {
			it.end = true
			break
		}
		if err != nil && n == 0 {
			it.err = err // nothing read: the file is skipped
			it.close()
			return
		}
		if err != nil {
			it.readErr = err // stored with what was read, marked damaged
			break
		}
		if whole && int64(n) >= size && n < len(buf) {
			it.end = true // a short read of a regular file is its end
			break
		}
	}
	if int64(n) > size {
		it.grew = true
		n = int(size)
	}
	it.data = buf[:n]
}

// close closes the item's file, if open.
func (it *item) close() {
	if it.st != nil && it.fd >= 0 {
		closeFd(it.fd)
		it.fd = -1
	}
}

// writer turns items into tar records, in order, in the calling goroutine.
type writer struct {
	p      *packer
	tw     *tar.Writer
	out    *CountWriter // under tw, for the headers tw cannot write
	stats  PackStats
	links  map[devIno]string // hard-linked inodes stored so far
	users  map[uint32]string
	groups map[uint32]string
	buf    []byte
	// Large files: the chunker and its chunk buffers, and delta commands.
	chunker   *chunker.Chunker
	chunkBufs [2][]byte
	cmd       []byte
}

func (w *writer) run() error {
	for b := range w.p.order {
		<-b.done
		var err error
		for _, it := range b.items {
			if err == nil {
				if err = w.p.ctx.Err(); err == nil {
					err = w.write(it)
				}
			}
			it.close()
			it.data = nil
		}
		w.p.budget.give(b.budget)
		if err != nil {
			return err
		}
		clear(b.items)
		*b = batch{items: b.items[:0], buf: b.buf}
		select {
		case w.p.free <- b:
		default:
		}
	}
	if err := w.p.ctx.Err(); err != nil {
		return err
	}
	if err := w.begin(nil); err != nil {
		return err
	}
	return w.tw.Close()
}

// begin tells PackOptions.Entry, if set, that the entry h (nil: the end
// of the archive) starts here.
func (w *writer) begin(h *tar.Header) error {
	if w.p.opts.Entry == nil {
		return nil
	}
	// Flush writes the padding of the entry before, if any.
	if err := w.tw.Flush(); err != nil {
		return err
	}
	return w.p.opts.Entry(h, w.out.N)
}

// writeHeader starts an entry without content.
func (w *writer) writeHeader(h *tar.Header) error {
	if err := w.begin(h); err != nil {
		return err
	}
	return w.tw.WriteHeader(h)
}

func (w *writer) warnf(format string, args ...any) { w.p.opts.Warn(format, args...) }

func (w *writer) header(it *item, fi fs.FileInfo) *tar.Header {
	st := statOf(fi)
	h := &tar.Header{
		Name:    it.name,
		Mode:    int64(fi.Mode().Perm()),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		Uname:   w.userName(st.Uid),
		Gname:   w.groupName(st.Gid),
		ModTime: fi.ModTime(),
		Format:  tar.FormatPAX,
	}
	m := fi.Mode()
	if m&fs.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	if len(it.xattrs) > 0 {
		h.PAXRecords = it.xattrs
	}
	if it.dumpdir != "" {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[dumpdirRecord] = it.dumpdir
	}
	return h
}

func (w *writer) write(it *item) error {
	switch it.kind {
	case kindNote:
		w.warnf("%s", it.note)
		if it.skipped {
			w.stats.Skipped++
		}
		return nil
	case kindDir:
		h := w.header(it, it.fi)
		h.Typeflag = tar.TypeDir
		if it.name != "." {
			h.Name += "/"
		} else {
			h.Name = "./"
		}
		w.stats.Dirs++
		return w.writeHeader(h)
	case kindSymlink:
		h := w.header(it, it.fi)
		h.Typeflag = tar.TypeSymlink
		h.Linkname = it.target
		w.stats.Links++
		return w.writeHeader(h)
	}
	if it.again {
		if first, ok := w.links[it.key]; ok {
			h := w.header(it, it.fi)
			h.Typeflag = tar.TypeLink
			h.Linkname = first
			w.stats.Links++
			return w.writeHeader(h)
		}
		// The first name of this inode could not be read: try this one.
		it.budget = min(it.fi.Size(), headChunk)
		if err := w.p.budget.take(it.budget); err != nil {
			return err
		}
		defer w.p.budget.give(it.budget)
		w.p.load(it, make([]byte, it.budget+1))
	}
	if it.err != nil {
		if errors.Is(it.err, w.p.ctx.Err()) {
			return it.err
		}
		w.warnf("skipping %s: %v", it.path, it.err)
		w.stats.Skipped++
		w.p.unstored(it.name)
		return nil
	}
	if it.xattrErr != nil {
		w.warnf("%s: extended attributes not stored: %v", it.path, it.xattrErr)
	}
	return w.writeFile(it)
}

func (w *writer) writeFile(it *item) error {
	h := w.header(it, it.st)
	h.Typeflag = tar.TypeReg
	size := it.st.Size()
	if it.sparse != nil {
		return w.writeSparse(it, h, size)
	}
	chunked := w.chunked(it, size)
	if chunked && !it.noDelta && statOf(it.st).Nlink == 1 {
		if base := w.p.opts.Deltas.Base(it.name); base != nil {
			if done, err := w.tryDelta(it, h, size, base); done || err != nil {
				return err
			}
		}
	}
	h.Size = size
	if err := w.writeHeader(h); err != nil {
		return err
	}
	var n int64
	var readErr error
	if chunked {
		var err error
		if n, readErr, err = w.copyChunked(it, size); err != nil {
			return err
		}
	} else {
		if _, err := w.tw.Write(it.data); err != nil {
			return err
		}
		w.p.opts.Progress(len(it.data))
		n, readErr = int64(len(it.data)), it.readErr
		if readErr == nil {
			m, rerr, err := w.copyFile(w.tw, it, size-n)
			if err != nil {
				return err
			}
			n, readErr = n+m, rerr
		}
	}
	// tar needs as many bytes as the header said: pad with zeros.
	if err := pad(w.tw, size-n); err != nil {
		return err
	}
	grew := it.grew
	if readErr == nil && !it.grew && !it.end {
		var one [1]byte
		m, _ := readFd(it.fd, it.path, one[:])
		grew = m > 0 // the rest is not stored
	}
	return w.settle(it, size, n, readErr, grew)
}

// writeSparse writes a file with holes as a GNU sparse 1.0 entry: its
// headers and map, then the data regions, read from where they lie. The
// headers go straight to the output, between tar.Writer's entries.
func (w *writer) writeSparse(it *item, h *tar.Header, size int64) error {
	m := sparseMap(it.sparse, size)
	stored := int64(len(m))
	for _, r := range it.sparse {
		stored += r.len
	}
	whole := *h
	whole.Size = size
	if err := w.begin(&whole); err != nil {
		return err
	}
	if err := w.tw.Flush(); err != nil {
		return err
	}
	if _, err := w.out.Write(append(sparseHeader(h, size, stored), m...)); err != nil {
		return err
	}
	var readErr error
	var good int64 // the file's bytes read before a read error
	for _, r := range it.sparse {
		var n int64
		if readErr == nil {
			if readErr = seekFd(it.fd, r.off); readErr == nil {
				var err error
				if n, readErr, err = w.copyFile(w.out, it, r.len); err != nil {
					return err
				}
			}
			good = r.off + n
		}
		if err := pad(w.out, r.len-n); err != nil {
			return err
		}
	}
	if err := pad(w.out, padLen(stored)); err != nil {
		return err
	}
	if readErr == nil {
		good = size
	}
	return w.settle(it, size, good, readErr, false)
}

// copyFile copies up to n bytes from the file's offset to dst. It stops at
// the first read error, which it returns as readErr (io.EOF if the file
// ended first); err is an error writing dst or an interruption.
func (w *writer) copyFile(dst io.Writer, it *item, n int64) (copied int64, readErr, err error) {
	if w.buf == nil {
		w.buf = make([]byte, copyChunk)
	}
	for copied < n {
		if err := w.p.ctx.Err(); err != nil {
			return copied, nil, err
		}
		m, rerr := readContent(it.fd, it.path, w.buf[:min(int64(len(w.buf)), n-copied)])
		if m > 0 {
			if _, err := dst.Write(w.buf[:m]); err != nil {
				return copied, nil, err
			}
			w.p.opts.Progress(m)
			copied += int64(m)
		}
		if rerr != nil {
			return copied, rerr, nil
		}
	}
	return copied, nil, nil
}

// settle ends a file's entry: a read error makes it damaged, a file that
// ended early (readErr io.EOF), grew, or changed size or mtime meanwhile is
// warned about; then it is counted.
func (w *writer) settle(it *item, size, good int64, readErr error, changed bool) error {
	switch {
	case readErr == io.EOF:
		changed = true
	case readErr != nil:
		if err := w.markDamaged(it, good, size, readErr); err != nil {
			return err
		}
		w.p.unstored(it.name)
	}
	var st statInfo
	if fstat(it.fd, it.path, &st.st) == nil && (st.Size() != size || !st.ModTime().Equal(it.st.ModTime())) {
		changed = true
	}
	if changed {
		w.warnf("%s: file changed as we read it", it.path)
	}
	w.stats.Files++
	w.stats.Bytes += size
	if it.key != (devIno{}) {
		w.links[it.key] = it.name
	}
	return nil
}

// markDamaged follows the entry of a file whose read failed after n of
// size bytes with bk's damage marker, so that a restore says so.
func (w *writer) markDamaged(it *item, n, size int64, readErr error) error {
	var pe *fs.PathError
	if errors.As(readErr, &pe) {
		readErr = pe.Err // the path is in the message already
	}
	reason := fmt.Sprintf("read error after %d of %d bytes: %v", n, size, readErr)
	w.warnf("%s: %s; stored with zeros for the rest, marked damaged", it.path, reason)
	return w.damageMarker(it, reason)
}

// damageMarker writes bk's damage marker for the file just stored.
func (w *writer) damageMarker(it *item, reason string) error {
	w.stats.Damaged++
	return w.tw.WriteHeader(&tar.Header{
		Typeflag:   tar.TypeXGlobalHeader,
		Format:     tar.FormatPAX,
		PAXRecords: map[string]string{damagedPath: it.name, damagedReason: reason},
	})
}

// pad writes n zero bytes, from a shared block: a local array would escape
// and cost an allocation and a clearing on every file.
func pad(dst io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		if _, err := dst.Write(zeroBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func (w *writer) userName(uid uint32) string {
	return cachedName(w.users, uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func (w *writer) groupName(gid uint32) string {
	return cachedName(w.groups, gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

// cachedName looks an id's name up once; an unknown id has no name.
func cachedName(cache map[uint32]string, id uint32, lookup func(string) (string, error)) string {
	name, ok := cache[id]
	if !ok {
		name, _ = lookup(strconv.FormatUint(uint64(id), 10))
		cache[id] = name
	}
	return name
}
