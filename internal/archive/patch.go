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
	"slices"
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

// madeFile is a file deltas made and its BLAKE3: read back, or, while f
// is open, the one the last delta gives, not yet checked. A delta applied
// in place writes only what changed, and reading the whole file back
// after each one was most of the CPU time of restoring a long chain of a
// large file edited in parts (issue 16): the file is checked once, when a
// delta finds another base than the one given, when an entry replaces
// it, or at the end of the chain, before anything is moved into place.
// Whatever the deltas in between did, the bytes left are the ones the
// last delta's BLAKE3 names, or the restore fails.
type madeFile struct {
	sum      [32]byte
	f        *os.File // open while sum is unchecked
	from, to string   // the backups whose deltas made it since it was read
}

// maxUnchecked bounds the files kept open for their checks; the files
// past it are checked as they are patched.
const maxUnchecked = 64

// madeError is a made file that does not match the BLAKE3 its last
// delta gives. It names the backups whose deltas made it.
type madeError struct {
	name     string
	from, to string
	got, sum [32]byte
}

func (e *madeError) Error() string {
	if e.from == e.to {
		return memberError(e.from, fmt.Errorf("%s: the file the delta made does not match its BLAKE3 (%x, not %x): refused", quoteName(e.name), e.got[:8], e.sum[:8])).Error()
	}
	return fmt.Sprintf("backups %s to %s: %s: the file their deltas made does not match the BLAKE3 the last one gives (%x, not %x): refused", e.from, e.to, quoteName(e.name), e.got[:8], e.sum[:8])
}

// check reads back the made file name, if its check waits, and holds it
// to the BLAKE3 its last delta gave.
func (x *extractor) check(name string, m *madeFile) error {
	if m.f == nil {
		return nil
	}
	got, err := hashFile(m.f, x.ahead.buffer())
	x.forget(m)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if got != m.sum {
		return &madeError{name: name, from: m.from, to: m.to, got: got, sum: m.sum}
	}
	return nil
}

// forget closes the made file m, its check done or no longer needed.
func (x *extractor) forget(m *madeFile) {
	if m.f != nil {
		m.f.Close()
		m.f = nil
		x.unchecked--
	}
}

// checkMade checks every made file whose check waits, in name order.
func (x *extractor) checkMade() error {
	names := make([]string, 0, x.unchecked)
	for name, m := range x.made {
		if m.f != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := x.check(name, x.made[name]); err != nil {
			return err
		}
	}
	return nil
}

// checkNow checks the file the entry patched in place at once, as a
// streaming delta's result is checked: a mismatch waits for the damage
// marker that may follow.
func (x *extractor) checkNow(target string) error {
	m := x.made[target]
	if m == nil {
		return nil
	}
	err := x.check(target, m)
	if me, ok := errors.AsType[*madeError](err); ok {
		delete(x.made, target)
		x.unverified = &unverified{target: target, err: me}
		return nil
	}
	return err
}

// closeMade closes the made files left open by a restore that failed.
func (x *extractor) closeMade() {
	for _, m := range x.made {
		x.forget(m)
	}
}

// settleUnverified fails on the last delta's mismatch unless the archive
// marked that file damaged (bk-pack saw it change as it read it). A file
// patched in place and so marked is checked now, a mismatch being the
// damage's.
func (x *extractor) settleUnverified() error {
	if x.lastInPlace != "" && x.ahead.marked == x.lastInPlace {
		if err := x.checkNow(x.lastInPlace); err != nil {
			return err
		}
	}
	u := x.unverified
	x.unverified, x.lastInPlace = nil, ""
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
// place. Either way the result is checked against the delta's BLAKE3:
// streaming as it is written, in place when the file is next read
// (madeFile).
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
	kept := false // old is the made file's, open for its check
	defer func() {
		if !kept {
			old.Close()
		}
	}()
	m := x.made[d.target]
	var sum [32]byte
	switch {
	case m == nil:
		if sum, err = hashFile(old, x.ahead.buffer()); err != nil {
			return fmt.Errorf("%s: %w", d.target, err)
		}
	case m.sum != d.baseHash:
		// Either the deltas before did not make what they said, or this
		// one applies to another version: reading the file tells which.
		if err := x.check(d.target, m); err != nil {
			return err
		}
		sum = m.sum
	default:
		sum = m.sum
	}
	if sum != d.baseHash {
		return refuse(h, "a delta of another version of %s than the backups before it left (BLAKE3 %x, not %x)", quoteName(d.target), d.baseHash[:8], sum[:8])
	}
	spool, size, err := x.spool(e)
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	defer spool.Close()
	delete(x.made, d.target)
	from := x.member
	if m != nil && m.f != nil {
		from = m.from
	}
	f := old
	if writable && statOf(fi).Nlink == 1 && !hasXattrsFd(old) && x.inPlace(spool, size, d) {
		if m != nil {
			x.forget(m) // old serves its check from now on
		}
		err = x.applyInPlace(e, old, spool, size)
		if err == nil {
			x.made[d.target] = &madeFile{sum: d.hash, f: old, from: from, to: x.member}
			x.unchecked++
			x.lastInPlace, kept = d.target, true
		}
	} else {
		// The deltas before are held to their word before this one reads
		// what they made, so that a mismatch names them.
		if m != nil {
			if err := x.check(d.target, m); err != nil {
				return err
			}
		}
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
	if kept && x.unchecked > maxUnchecked {
		return x.checkNow(d.target)
	}
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
// cost nothing, then it is cut to its new size (and checked later, as a
// madeFile).
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
	if err != nil {
		return fmt.Errorf("archive entry %q: delta of %s: %w", e.h.Name, quoteName(d.target), err)
	}
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
		x.made[d.target] = &madeFile{sum: got}
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
