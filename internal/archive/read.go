package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"strings"

	"github.com/bk-backup/bk/internal/archive/tarread"
)

// maxEntrySize bounds the size a header may claim (64 TiB): larger sizes
// are taken for a corrupt or hostile header.
const maxEntrySize = 1 << 46

// RestoreStats counts the entries a restore, list or check covered. Links
// counts symbolic and hard links; Skipped counts entries left out; Damaged
// counts files marked damaged by bk-pack (a read error part way: the rest
// is zeros).
type RestoreStats struct {
	Files, Dirs, Links, Bytes int64
	Skipped, Damaged          int
}

// bk's damage marker: a PAX global header (typeflag g) right after the
// entry of a file whose read failed part way, naming it and saying why.
// tar ignores it (GNU tar ignores unknown keywords of a global header
// without a word). Documented in docs/FORMAT.md.
const (
	damagedPath   = "BK.damaged.path"
	damagedReason = "BK.damaged.reason"
	// A reason longer than this is cut short in messages.
	maxReasonLen = 200
)

// source is the stream under the tar reader: it stops on cancellation and
// tells an end-of-archive marker from a stream that simply ended.
type source struct {
	r   io.Reader
	ctx context.Context
	// bare is true when the last read returned io.EOF and no data, which is
	// how a stream cut at a header boundary looks to archive/tar.
	bare bool
}

func (s *source) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.r.Read(p)
	s.bare = n == 0 && err == io.EOF
	return n, err
}

// nameSet remembers names in 8 bytes each (a keyed hash, so hostile names
// cannot be made to collide on purpose).
type nameSet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
}

func newNameSet() *nameSet { return &nameSet{seed: maphash.MakeSeed(), m: map[uint64]struct{}{}} }

func (s *nameSet) key(name string) uint64 { return maphash.String(s.seed, name) }
func (s *nameSet) add(name string)        { s.m[s.key(name)] = struct{}{} }
func (s *nameSet) del(name string)        { delete(s.m, s.key(name)) }
func (s *nameSet) has(name string) bool   { _, ok := s.m[s.key(name)]; return ok }

// entry is a header that passed the safety checks.
type entry struct {
	h        *tar.Header
	name     string // cleaned member name ("." for the top directory)
	link     string // cleaned hard link target
	selected bool
	delta    *deltaInfo // a delta of the file delta.target, not a file
	// linkUnselected: a selected hard link whose target was in the archive
	// but not selected.
	linkUnselected bool
}

// fileName is the name of the file the entry makes: its own, or for a
// delta the file it changes.
func (e *entry) fileName() string {
	if e.delta != nil {
		return e.delta.target
	}
	return e.name
}

// scanner reads a tar stream entry by entry, applying the rules every
// reader shares: safe names, known types, no writing through a symlink of
// the archive, hard links to earlier regular files only, a proper end.
type scanner struct {
	src *source
	// archive/tar's reader, with its checks of each header block made
	// faster: they were a fifth of a restore's instructions on small files.
	tr       *tarread.Reader
	sel      *selector
	progress func(int)
	devices  bool
	warn     func(format string, args ...any)
	last     *entry   // the entry before, which a damage marker must name
	damaged  int      // selected files marked damaged
	marked   string   // the file the last damage marker named
	single   bool     // not one archive of a chain: finish checks the patterns
	regular  *nameSet // regular files so far (hard link targets)
	symlinks *nameSet // symlinks so far
	dirs     *nameSet // directories so far
	buf      []byte
}

func newScanner(ctx context.Context, r io.Reader, patterns []string, progress func(int), warn func(string, ...any), devices bool) (*scanner, error) {
	sel, err := newSelector(patterns)
	if err != nil {
		return nil, err
	}
	sc := newMemberScanner(ctx, r, sel, progress, warn, devices)
	sc.single = true
	return sc, nil
}

// newMemberScanner reads one archive of a chain: the selector is the
// chain's, and whether each pattern matched is the caller's to check at the
// end of the chain.
func newMemberScanner(ctx context.Context, r io.Reader, sel *selector, progress func(int), warn func(string, ...any), devices bool) *scanner {
	if progress == nil {
		progress = func(int) {}
	}
	if warn == nil {
		warn = func(string, ...any) {}
	}
	src := &source{r: r, ctx: ctx}
	return &scanner{src: src, tr: tarread.NewReader(src), sel: sel, progress: progress, warn: warn, devices: devices,
		regular: newNameSet(), symlinks: newNameSet(), dirs: newNameSet()}
}

func refuse(h *tar.Header, format string, args ...any) error {
	return fmt.Errorf("archive entry %q: %s: refused", h.Name, fmt.Sprintf(format, args...))
}

// next returns the next entry, or io.EOF after a correct end of archive.
func (s *scanner) next() (*entry, error) {
	for {
		h, err := s.tr.Next()
		if err == io.EOF {
			if s.src.bare {
				return nil, errors.New("archive is truncated: it ends without an end-of-archive marker")
			}
			if err := s.finish(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return nil, s.readError(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// Other global headers would not apply to us anyway.
			if err := s.damageMarker(h); err != nil {
				return nil, err
			}
			continue
		}
		e, err := s.check(h, err)
		if err != nil {
			return nil, err
		}
		s.last = e
		return e, nil
	}
}

// check applies the rules to one header, then records the entry for the
// rules of the entries after it.
func (s *scanner) check(h *tar.Header, readErr error) (*entry, error) {
	name, err := memberName(h.Name)
	if err != nil {
		return nil, refuse(h, "%v", err)
	}
	if readErr != nil {
		return nil, refuse(h, "unsafe path")
	}
	if err := s.checkType(h, name); err != nil {
		return nil, err
	}
	if err := s.checkPlace(h, name); err != nil {
		return nil, err
	}
	e := &entry{h: h, name: name}
	if err := s.checkLink(e); err != nil {
		return nil, err
	}
	if e.delta, err = parseDelta(h, name); err != nil {
		return nil, err
	}
	if e.delta != nil {
		// It changes the file it names: a file, under its own name.
		name = e.delta.target
	}
	s.record(h, name)
	e.selected = s.sel.match(name)
	if e.selected && e.link != "" && !s.sel.wouldMatch(e.link) {
		e.linkUnselected = true
	}
	return e, nil
}

// checkType refuses the entry types and sizes bk does not restore.
func (s *scanner) checkType(h *tar.Header, name string) error {
	if h.Typeflag == tar.TypeGNUSparse {
		return refuse(h, "old GNU sparse file (not supported)")
	}
	for k := range h.PAXRecords {
		// archive/tar has read the map and expands the holes; only the
		// format bk writes is accepted.
		if strings.HasPrefix(k, "GNU.sparse.") && (h.PAXRecords["GNU.sparse.major"] != "1" || h.PAXRecords["GNU.sparse.minor"] != "0") {
			return refuse(h, "GNU sparse file of a format before 1.0 (not supported)")
		}
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !s.devices {
			return refuse(h, "device or FIFO (not restored unless devices are allowed)")
		}
	default:
		return refuse(h, "unsupported entry type %q", string(h.Typeflag))
	}
	if h.Size < 0 || h.Size > maxEntrySize {
		return refuse(h, "absurd size %d", h.Size)
	}
	if name == "." && h.Typeflag != tar.TypeDir {
		return refuse(h, "only a directory may be named \".\"")
	}
	return nil
}

// checkPlace refuses an entry below a symlink of the archive, or one that
// would replace a directory of the archive by something else.
func (s *scanner) checkPlace(h *tar.Header, name string) error {
	for p := name; ; {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
		if s.symlinks.has(p) {
			return refuse(h, "would write through the symlink %q of the archive", p)
		}
	}
	if h.Typeflag != tar.TypeDir && s.dirs.has(name) {
		return refuse(h, "replaces a directory of the archive")
	}
	return nil
}

// checkLink checks a symlink's target, and that a hard link points to an
// earlier regular file of the archive, whose name it sets in e.link.
func (s *scanner) checkLink(e *entry) error {
	h := e.h
	switch h.Typeflag {
	case tar.TypeSymlink:
		if h.Linkname == "" || strings.IndexByte(h.Linkname, 0) >= 0 {
			return refuse(h, "bad symlink target")
		}
	case tar.TypeLink:
		link, err := memberName(h.Linkname)
		if err != nil {
			return refuse(h, "hard link target %q: %v", h.Linkname, err)
		}
		if !s.regular.has(link) {
			return refuse(h, "hard link to %q, which is not an earlier file of the archive", h.Linkname)
		}
		e.link = link
	}
	return nil
}

// record notes what the entry makes of its name. The sets are kept for all
// entries, selected or not: the rules are about the archive.
func (s *scanner) record(h *tar.Header, name string) {
	if h.Typeflag == tar.TypeDir {
		s.dirs.add(name)
	}
	if h.Typeflag == tar.TypeSymlink {
		s.symlinks.add(name)
	} else {
		s.symlinks.del(name)
	}
	if h.Typeflag == tar.TypeReg {
		s.regular.add(name)
	} else if h.Typeflag != tar.TypeLink {
		s.regular.del(name)
	}
}

// damageMarker reads bk's damage marker, if h is one: it must name the
// regular file just before it. A selected file so marked is warned about
// and counted.
func (s *scanner) damageMarker(h *tar.Header) error {
	marked, ok := h.PAXRecords[damagedPath]
	if !ok {
		return nil
	}
	name, err := memberName(marked)
	if err != nil || s.last == nil || s.last.fileName() != name || s.last.h.Typeflag != tar.TypeReg {
		return fmt.Errorf("damage marker for %q does not follow that file's entry: refused", marked)
	}
	s.marked = name
	if s.last.selected {
		reason := h.PAXRecords[damagedReason]
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen] + "..."
		}
		s.warn("%s: damaged when packed (%s): the part that could not be read is zeros", quoteName(name), quoteName(reason))
		s.damaged++
	}
	return nil
}

// finish checks what follows the end-of-archive marker: only zeros (the
// padding tar writes to fill its last record) up to the end of the stream,
// which is read to the end, as an authenticating reader needs. Then it
// checks that each pattern matched something.
func (s *scanner) finish() error {
	buf := s.buffer()
	for {
		n, err := s.src.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return errors.New("unexpected data after the end of the archive")
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
	}
	if !s.single {
		return nil
	}
	return s.sel.unused()
}

func (s *scanner) buffer() []byte {
	if s.buf == nil {
		s.buf = make([]byte, copyChunk)
	}
	return s.buf
}

// copyContent copies the current entry's content to w (io.Discard to skip
// it), reporting progress.
func (s *scanner) copyContent(w io.Writer, e *entry) (int64, error) {
	// Not io.CopyBuffer: io.Discard would read in its own small buffer.
	r, buf := &entryReader{s: s, e: e}, s.buffer()
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// entryReader reads the current entry's content, reporting progress, its
// errors naming the entry.
type entryReader struct {
	s *scanner
	e *entry
}

func (r *entryReader) Read(b []byte) (int, error) {
	n, err := r.s.readContent(b)
	if err != nil && err != io.EOF {
		err = r.s.contentError(r.e, err)
	}
	return n, err
}

// readContent reads the current entry's content, reporting progress; its
// errors are the tar reader's.
func (s *scanner) readContent(b []byte) (int, error) {
	n, err := s.tr.Read(b)
	s.progress(n)
	return n, err
}

// readError says what the tar reader's error err, met reading a header or
// skipping content, means.
func (s *scanner) readError(err error) error {
	if ctxErr := s.src.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if err == io.ErrUnexpectedEOF {
		return errors.New("archive is truncated")
	}
	return fmt.Errorf("reading archive: %w", err)
}

// contentError says what the tar reader's error err, met reading the
// content of e, means.
func (s *scanner) contentError(e *entry, err error) error {
	if ctxErr := s.src.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("archive is truncated (in %q)", e.h.Name)
	}
	return fmt.Errorf("reading archive (in %q): %w", e.h.Name, err)
}

func (st *RestoreStats) count(e *entry) {
	switch e.h.Typeflag {
	case tar.TypeReg:
		st.Files++
		st.Bytes += e.h.Size
	case tar.TypeDir:
		st.Dirs++
	case tar.TypeSymlink, tar.TypeLink:
		st.Links++
	}
}
