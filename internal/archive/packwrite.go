package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"time"
)

// load opens a queued file and reads its head (all of it when it fits the
// item's budget). It runs in a read worker.
func (p *packer) load(it *item) {
	defer close(it.done)
	if err := p.ctx.Err(); err != nil {
		it.err = err
		return
	}
	f, err := os.OpenFile(it.path, os.O_RDONLY|oNOFOLL, 0)
	if err != nil {
		it.err = err
		return
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("no longer a regular file")
	}
	if err != nil {
		f.Close()
		it.err = err
		return
	}
	it.st = st
	head := min(st.Size(), it.budget)
	it.data = make([]byte, head)
	n, err := io.ReadFull(f, it.data)
	it.data = it.data[:n]
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		f.Close()
		it.err = err
		return
	}
	it.f = f // the writer streams the rest, if any, and checks for changes
}

// writer turns items into tar records, in order, in the calling goroutine.
type writer struct {
	p      *packer
	tw     *tar.Writer
	stats  PackStats
	links  map[devIno]string // hard-linked inodes stored so far
	users  map[uint32]string
	groups map[uint32]string
	buf    []byte
}

func (w *writer) run() error {
	for it := range w.p.order {
		if err := w.p.ctx.Err(); err != nil {
			w.release(it)
			return err
		}
		err := w.write(it)
		w.release(it)
		if err != nil {
			return err
		}
	}
	if err := w.p.ctx.Err(); err != nil {
		return err
	}
	return w.tw.Close()
}

// release waits for an item's worker and frees what it holds.
func (w *writer) release(it *item) {
	if it.done == nil {
		return
	}
	<-it.done
	if it.f != nil {
		it.f.Close()
		it.f = nil
	}
	it.data = nil
	w.p.budget.give(it.budget)
	it.budget = 0
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
		ModTime: time.Unix(st.Mtim.Unix()),
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
		return w.tw.WriteHeader(h)
	case kindSymlink:
		h := w.header(it, it.fi)
		h.Typeflag = tar.TypeSymlink
		h.Linkname = it.target
		w.stats.Links++
		return w.tw.WriteHeader(h)
	}
	if it.again {
		if first, ok := w.links[it.key]; ok {
			h := w.header(it, it.fi)
			h.Typeflag = tar.TypeLink
			h.Linkname = first
			w.stats.Links++
			return w.tw.WriteHeader(h)
		}
		// The first name of this inode could not be read: try this one.
		it.done = make(chan struct{})
		it.budget = min(it.fi.Size(), headChunk)
		if err := w.p.budget.take(it.budget); err != nil {
			return err
		}
		w.p.load(it)
	}
	<-it.done
	if it.err != nil {
		if errors.Is(it.err, w.p.ctx.Err()) {
			return it.err
		}
		w.warnf("skipping %s: %v", it.path, it.err)
		w.stats.Skipped++
		return nil
	}
	return w.writeFile(it)
}

func (w *writer) writeFile(it *item) error {
	h := w.header(it, it.st)
	h.Typeflag = tar.TypeReg
	h.Size = it.st.Size()
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := w.tw.Write(it.data); err != nil {
		return err
	}
	w.p.opts.Progress(len(it.data))
	n := int64(len(it.data))
	var readErr error
	if n < h.Size {
		if w.buf == nil {
			w.buf = make([]byte, copyChunk)
		}
		for n < h.Size && readErr == nil {
			if err := w.p.ctx.Err(); err != nil {
				return err
			}
			m, err := it.f.Read(w.buf[:min(int64(len(w.buf)), h.Size-n)])
			if m > 0 {
				if _, err := w.tw.Write(w.buf[:m]); err != nil {
					return err
				}
				w.p.opts.Progress(m)
				n += int64(m)
			}
			if err != nil {
				readErr = err
			}
		}
	}
	changed := false
	if n < h.Size {
		// tar needs as many bytes as the header said: pad with zeros.
		if err := w.pad(h.Size - n); err != nil {
			return err
		}
		if readErr != io.EOF {
			w.warnf("%s: read error, stored padded with zeros: %v", it.path, readErr)
			w.stats.Skipped++
		} else {
			changed = true
		}
	} else {
		var one [1]byte
		if m, _ := it.f.Read(one[:]); m > 0 {
			changed = true // grew: the rest is not stored
		}
	}
	if st, err := it.f.Stat(); err == nil && (st.Size() != h.Size || !st.ModTime().Equal(it.st.ModTime())) {
		changed = true
	}
	if changed {
		w.warnf("%s: file changed as we read it", it.path)
	}
	w.stats.Files++
	w.stats.Bytes += h.Size
	if it.key != (devIno{}) {
		w.links[it.key] = it.name
	}
	return nil
}

func (w *writer) pad(n int64) error {
	var zero [32 << 10]byte
	for n > 0 {
		k := min(n, int64(len(zero)))
		if _, err := w.tw.Write(zero[:k]); err != nil {
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
