package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/internal/blake3"
	"github.com/bk-backup/bk/internal/rsdelta"
	"github.com/bk-backup/bk/internal/xattr"
)

// deltaInfo is what the PAX records of a delta entry say.
type deltaInfo struct {
	target         string // the member name of the file it changes
	baseSize, size int64
	baseHash, hash [32]byte
}

// parseDelta reads the delta records of an entry, if any.
func parseDelta(h *tar.Header, name string) (*deltaInfo, error) {
	v, ok := h.PAXRecords[deltaRecord]
	if !ok {
		return nil, nil
	}
	if v != "1" {
		return nil, refuse(h, "a delta of version %q, not known to this bk", v)
	}
	if h.Typeflag != tar.TypeReg {
		return nil, refuse(h, "a delta that is not a regular file entry")
	}
	d := &deltaInfo{}
	d.target, ok = strings.CutSuffix(name, DeltaSuffix)
	if !ok || d.target == "" || strings.HasSuffix(d.target, "/") || path.Base(d.target) == "." {
		return nil, refuse(h, "a delta whose name does not end in %s after a file name", DeltaSuffix)
	}
	var err error
	for _, f := range []struct {
		key string
		n   *int64
		sum *[32]byte
	}{{deltaBaseSize, &d.baseSize, nil}, {deltaSize, &d.size, nil}, {deltaBaseHash, nil, &d.baseHash}, {deltaHash, nil, &d.hash}} {
		v := h.PAXRecords[f.key]
		if f.n != nil {
			*f.n, err = strconv.ParseInt(v, 10, 64)
			if err != nil || *f.n < 0 || *f.n > maxEntrySize {
				return nil, refuse(h, "delta record %s=%q is not a size", f.key, v)
			}
			continue
		}
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			return nil, refuse(h, "delta record %s=%q is not a BLAKE3-256 in hex", f.key, v)
		} else {
			copy(f.sum[:], b)
		}
	}
	return d, nil
}

// unverified is a delta's result that did not match its hash: an error
// unless the entry's damage marker follows.
type unverified struct {
	target string
	err    error
}

// settleUnverified fails on the last delta's mismatch unless the archive
// marked that file damaged (bk-pack saw it change as it read it).
func (x *extractor) settleUnverified() error {
	u := x.unverified
	x.unverified = nil
	if u == nil || x.ahead.marked == u.target {
		return nil
	}
	return u.err
}

// patch applies a delta entry to the file the chain restored so far: it
// checks that file is the version the delta applies to, and makes the new
// version in its place. The delta is spooled first, beside the file, as it
// must be read twice: a delta that keeps every byte it keeps where it was
// (a file edited in parts) is applied in place, writing only what changed;
// any other is applied into a new file, streaming (copies read from the
// old file, literals from the spool), which is moved into the old one's
// place. Either way the result is checked against the delta's BLAKE3.
func (x *extractor) patch(e *entry) error {
	h, d := e.h, e.delta
	if x.chain == 0 {
		return refuse(h, "a delta against the backup before it: restore this backup with its chain (bk-join HOSTS, or -f FULL -f ... in order)")
	}
	pr, base, err := x.parentOf(x.staged(d.target))
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	fi, err := pr.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return refuse(h, "a delta of %s, which the backups before it did not leave as a file", quoteName(d.target))
	}
	if err != nil {
		return err
	}
	if fi.Size() != d.baseSize {
		return refuse(h, "a delta of a %d-byte version of %s; the backups before it left one of %d bytes", d.baseSize, quoteName(d.target), fi.Size())
	}
	old, writable, err := openPatched(pr, base)
	if err != nil {
		return err
	}
	defer old.Close()
	sum, ok := x.hashes[d.target]
	if !ok {
		if sum, err = hashFile(old, x.ahead.buffer()); err != nil {
			return fmt.Errorf("%s: %w", d.target, err)
		}
	}
	if sum != d.baseHash {
		return refuse(h, "a delta of another version of %s than the backups before it left (BLAKE3 %x, not %x)", quoteName(d.target), d.baseHash[:8], sum[:8])
	}
	spool, size, err := x.spool(e)
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	defer spool.Close()
	delete(x.hashes, d.target)
	f := old
	if writable && statOf(fi).Nlink == 1 && !hasXattrsFd(old) && x.inPlace(spool, size, d) {
		err = x.applyInPlace(e, old, spool, size)
	} else {
		var tmp string
		if f, tmp, err = createTemp(x.parentDir); err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
		defer f.Close()
		err = x.applyDelta(e, f, old, spool, size)
		if err == nil {
			err = pr.Rename(tmp, base)
		}
		if err != nil {
			pr.Remove(tmp)
		}
	}
	if err != nil {
		return err
	}
	x.setXattrs(d.target, h, func(name, value string) error { return xattr.FSet(f, name, value) })
	if err := x.finishFile(e, f, x.parentDir, base, x.opts.Warn); err != nil {
		return err
	}
	x.stats.Files++
	x.stats.Bytes += d.size
	return nil
}

// openPatched opens the file a delta applies to, for writing too when
// its mode lets us.
func openPatched(pr *os.Root, base string) (f *os.File, writable bool, err error) {
	f, err = pr.OpenFile(base, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrPermission) {
		f, err = pr.Open(base)
		return f, false, err
	}
	return f, err == nil, err
}

// spool copies the content of the delta entry e into a file of no name in
// the directory the restore writes into, and returns it with its size.
func (x *extractor) spool(e *entry) (*os.File, int64, error) {
	f, name, err := createTemp(x.parentDir)
	if err != nil {
		return nil, 0, err
	}
	if err := x.parent.Remove(name); err != nil {
		f.Close()
		return nil, 0, err
	}
	n, err := x.ahead.copyContent(f, e)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("delta of %s: %w", quoteName(e.delta.target), err)
	}
	return f, n, nil
}

// deltaReader reads the spooled delta from its start.
func (x *extractor) deltaReader(spool *os.File, size int64) *bufio.Reader {
	r := io.NewSectionReader(spool, 0, size)
	if x.deltaIn == nil {
		x.deltaIn = bufio.NewReaderSize(r, 64<<10)
	} else {
		x.deltaIn.Reset(r)
	}
	return x.deltaIn
}

// errNotInPlace stops the reading of a delta that cannot be applied in
// place.
var errNotInPlace = errors.New("not in place")

// inPlace says whether the spooled delta can be applied to the old file
// where it lies: it is well formed and makes the size it says, every copy
// leaves its bytes where they were, and no literal holds a whole block of
// zeros, which a new file would leave as a hole. A delta that fails the
// checks is then applied the other way, which says what is wrong.
func (x *extractor) inPlace(spool *os.File, size int64, d *deltaInfo) bool {
	br := x.deltaReader(spool, size)
	n, err := rsdelta.Walk(br, d.baseSize, d.size, func(pos int64, c rsdelta.Command) error {
		if c.Off >= 0 {
			if c.Off != pos {
				return errNotInPlace
			}
			return nil
		}
		// The bytes before the first whole block, then the whole blocks.
		head := min(c.Len, -pos&(holeBlock-1))
		if m, _ := br.Discard(int(head)); int64(m) < head {
			return errNotInPlace
		}
		left := c.Len - head
		for ; left >= holeBlock; left -= holeBlock {
			b, err := br.Peek(holeBlock)
			if err != nil || bytes.Equal(b, zeroBlock[:]) {
				return errNotInPlace
			}
			br.Discard(holeBlock)
		}
		if m, _ := br.Discard(int(left)); int64(m) < left {
			return errNotInPlace
		}
		return nil
	})
	if err != nil || n != d.size {
		return false
	}
	_, err = br.ReadByte()
	return err == io.EOF
}

// applyInPlace applies the spooled delta, which inPlace accepted, to old
// where it lies: its literals are written over the old bytes, its copies
// cost nothing, then it is cut to its new size and checked.
func (x *extractor) applyInPlace(e *entry, old *os.File, spool *os.File, size int64) error {
	d := e.delta
	br := x.deltaReader(spool, size)
	_, err := rsdelta.Walk(br, d.baseSize, d.size, func(pos int64, c rsdelta.Command) error {
		if c.Off >= 0 {
			return nil
		}
		for left := c.Len; left > 0; {
			b, err := br.Peek(int(min(left, int64(br.Size()))))
			if err != nil {
				return err
			}
			if _, err := old.WriteAt(b, pos); err != nil {
				return err
			}
			br.Discard(len(b))
			pos += int64(len(b))
			left -= int64(len(b))
		}
		return nil
	})
	if err == nil && d.size < d.baseSize {
		err = old.Truncate(d.size)
	}
	var got [32]byte
	if err == nil {
		got, err = hashFile(old, x.ahead.buffer())
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: delta of %s: %w", e.h.Name, quoteName(d.target), err)
	}
	x.verified(d, got)
	return nil
}

// applyDelta writes the result of the spooled delta into f and checks it.
func (x *extractor) applyDelta(e *entry, f *os.File, old *os.File, spool *os.File, size int64) error {
	d := e.delta
	hw := &holeWriter{f: f, pend: x.pend[:0]}
	sum := blake3.New()
	br := x.deltaReader(spool, size)
	if x.deltaBuf == nil {
		x.deltaBuf = make([]byte, 256<<10)
	}
	n, err := rsdelta.Apply(io.MultiWriter(hw, sum), old, d.baseSize, br, d.size, x.deltaBuf)
	x.pend = hw.pend
	if err == nil {
		if err = hw.Close(); err == nil && n != d.size {
			err = fmt.Errorf("makes %d bytes, not %d", n, d.size)
		}
	}
	if err == nil {
		if _, rerr := br.ReadByte(); rerr != io.EOF {
			err = errors.New("data after the delta's end")
		}
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: delta of %s: %w", e.h.Name, quoteName(d.target), err)
	}
	var got [32]byte
	sum.Sum(got[:0])
	x.verified(d, got)
	return nil
}

// verified records the BLAKE3 of the file a delta made: for the delta of
// a later backup, or, when it is not the one the delta gives, as an error
// unless the entry's damage marker follows.
func (x *extractor) verified(d *deltaInfo, got [32]byte) {
	if got != d.hash {
		x.unverified = &unverified{target: d.target, err: fmt.Errorf("%s: the file the delta made does not match its BLAKE3 (%x, not %x): refused", quoteName(d.target), got[:8], d.hash[:8])}
	} else {
		x.hashes[d.target] = got
	}
}

// hashFile is the BLAKE3-256 of a file's content.
func hashFile(f *os.File, buf []byte) ([32]byte, error) {
	var sum [32]byte
	h := blake3.New()
	_, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, 1<<62), buf)
	h.Sum(sum[:0])
	return sum, err
}

// createTemp creates a file of a name no entry has, in dir.
func createTemp(dir *os.File) (*os.File, string, error) {
	for {
		var b [8]byte
		rand.Read(b[:])
		name := ".bk-patch-" + hex.EncodeToString(b[:])
		f, err := createAt(dir, name)
		if !errors.Is(err, fs.ErrExist) {
			return f, name, err
		}
	}
}
