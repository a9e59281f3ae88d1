package archive

import (
	"archive/tar"
	"bufio"
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
// checks that file is the version the delta applies to, writes the result
// beside it, streaming (copies read from the old file, literals from the
// archive), and moves it into the old one's place.
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
	old, err := pr.Open(base)
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
	f, tmp, err := createTemp(x.parentDir)
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	delete(x.hashes, d.target)
	err = x.applyDelta(e, f, old)
	if err == nil {
		err = pr.Rename(tmp, base)
	}
	if err != nil {
		f.Close()
		pr.Remove(tmp)
		return err
	}
	x.setXattrs(d.target, h, func(name, value string) error { return xattr.FSet(f, name, value) })
	err = x.finishFile(e, f, x.parentDir, base, x.opts.Warn)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	x.stats.Files++
	x.stats.Bytes += d.size
	return nil
}

// applyDelta writes the delta's result into f and checks it.
func (x *extractor) applyDelta(e *entry, f *os.File, old *os.File) error {
	d := e.delta
	hw := &holeWriter{f: f, pend: x.pend[:0]}
	sum := blake3.New()
	br := bufio.NewReaderSize(x.ahead.content(), 64<<10)
	n, err := rsdelta.Apply(io.MultiWriter(hw, sum), old, d.baseSize, br, d.size, make([]byte, 256<<10))
	x.pend = hw.pend
	if err == nil {
		if err = hw.Close(); err == nil && n != d.size {
			err = fmt.Errorf("makes %d bytes, not %d", n, d.size)
		}
	}
	if err == nil && br.Buffered() > 0 {
		err = errors.New("data after the delta's end")
	}
	if err == nil {
		var rest int64
		if rest, err = x.ahead.copyContent(io.Discard, e); err == nil && rest > 0 {
			err = errors.New("data after the delta's end")
		}
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: delta of %s: %w", e.h.Name, quoteName(d.target), err)
	}
	var got [32]byte
	sum.Sum(got[:0])
	if got != d.hash {
		x.unverified = &unverified{target: d.target, err: fmt.Errorf("%s: the file the delta made does not match its BLAKE3 (%x, not %x): refused", quoteName(d.target), got[:8], d.hash[:8])}
	} else {
		x.hashes[d.target] = got
	}
	return nil
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
