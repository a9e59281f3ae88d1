package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/fsutil"
	"github.com/bk-backup/bk/internal/xattr"
)

// RestoreOptions tune Extract.
type RestoreOptions struct {
	// Patterns restrict the restore to a subset: a glob (path.Match) or a
	// path; a match on a directory includes its content. A pattern that
	// matches nothing is an error, as in tar.
	Patterns []string
	// Overwrite allows a non-empty target directory: existing files and
	// symlinks are replaced, directories merged. A symlink already in the
	// target is never followed: it is replaced, or the restore refused.
	Overwrite bool
	// SamePermissions keeps the setuid, setgid and sticky bits, which are
	// stripped otherwise (callers set it by default when running as root,
	// as GNU tar does).
	SamePermissions bool
	// Owners sets the archived uid/gid (the caller sets it when root).
	Owners bool
	// Devices allows device nodes and FIFOs; without it, an archive holding
	// one is refused (bk-pack never stores them).
	Devices bool
	// Warn receives warnings: attributes the file system refused, hard links
	// left out because their target was not selected, files marked damaged.
	Warn func(format string, args ...any)
	// Progress receives the number of bytes of file content read, on the
	// goroutine that reads the archive ahead of the extraction.
	Progress func(n int)
}

// stagingPrefix starts the name of the directory Extract writes into before
// moving entries into place.
const stagingPrefix = ".bk-restore-"

// dirMeta is what is set on a directory once everything is in place.
type dirMeta struct {
	name     string // relative to the target directory; "." for itself
	mode     fs.FileMode
	mtime    time.Time
	uid, gid int
	top      *tar.Header // for "." only: its extended attributes
}

type extractor struct {
	opts  RestoreOptions
	ctx   context.Context
	next  Members
	sel   *selector
	chain int // archives of the chain read so far
	// warnedAlone: the first archive was found incremental, and said so.
	warnedAlone bool
	root        *os.Root
	stage       string // staging directory, relative to root
	sc          *scanner
	ahead       *ahead // sc, read on a goroutine of its own
	writers     *writers
	// failed is a file writer's error met when a warning of the scanner
	// was to be given: the restore stops there.
	failed error
	stats  RestoreStats
	dirs   []dirMeta
	pend   []byte // a holeWriter's buffer, reused from file to file
	// deltaIn and deltaBuf read and apply deltas, reused from one to the
	// next.
	deltaIn  *bufio.Reader
	deltaBuf []byte
	// The parent directory of the last entry, open: entries come directory
	// by directory, and each name resolved from the root costs a system call
	// per path element.
	parentName string
	parent     *os.Root
	parentDir  *os.File
	// made holds what is known of the files deltas made, which the delta
	// of a later backup may apply to (others are read to check them);
	// unverified is a delta's result that did not match its hash;
	// lastInPlace is the file the entry before patched in place, whose
	// check waits unless a damage marker follows it.
	made        map[string]*madeFile
	unchecked   int // of made, the files whose check waits
	unverified  *unverified
	lastInPlace string
	member      string // the name of the archive being read
	// realDirs are staged paths noSymlinkIn found to be directories,
	// symlinks nowhere on the way, since purge last removed anything.
	realDirs map[string]struct{}
	// What this system could not restore, for one warning each at the end.
	unsettable       xattr.Unsettable
	nodesUnsupported int
}

// Extract restores the tar stream r into dir. It reads r to io.EOF (after
// the end-of-archive marker only zero padding is allowed) before anything
// appears in dir under its final name: entries are written into a staging
// directory inside dir and moved into place only after the whole stream was
// read without error, because r is an authenticating reader and reading it to
// its end is what verifies it. On any error the staging directory is removed
// and dir is left as it was (up to the moves themselves failing, which the
// error then says).
//
// dir is created if it does not exist; it must be empty unless Overwrite
// (staging directories left by a killed restore do not count, and are left
// alone). Directory modes and mtimes are set last, after the moves.
func Extract(ctx context.Context, r io.Reader, dir string, opts RestoreOptions) (RestoreStats, error) {
	return ExtractChain(ctx, Single(r), dir, opts)
}

// ExtractChain restores a chain of archives (a full one, then incremental
// ones in order, each read to its end) into dir, as Extract restores one:
// nothing appears in dir until the last archive was read without error.
// next yields each archive's tar stream and its name for messages, then
// io.EOF.
func ExtractChain(ctx context.Context, next Members, dir string, opts RestoreOptions) (RestoreStats, error) {
	if opts.Warn == nil {
		opts.Warn = func(string, ...any) {}
	}
	sel, err := newSelector(opts.Patterns)
	if err != nil {
		return RestoreStats{}, err
	}
	created := false
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return RestoreStats{}, err
		}
		created = true
	}
	x := &extractor{opts: opts, ctx: ctx, next: next, sel: sel, made: map[string]*madeFile{}}
	err = x.run(dir)
	if err != nil && created {
		os.Remove(dir)
	}
	return x.stats, err
}

func (x *extractor) run(dir string) error {
	if !x.opts.Overwrite {
		if err := checkEmpty(dir); err != nil {
			return err
		}
	}
	stage, err := os.MkdirTemp(dir, stagingPrefix)
	if err != nil {
		return err
	}
	x.stage = path.Base(stage)
	root, err := os.OpenRoot(dir)
	if err != nil {
		os.RemoveAll(stage)
		return err
	}
	defer root.Close()
	x.root = root
	x.writers = startWriters(x)
	err = x.read()
	x.writers.stop()
	x.closeMade()
	x.closeParent()
	if err == nil {
		err = x.place()
	}
	if rmErr := root.RemoveAll(x.stage); err == nil && rmErr != nil {
		err = rmErr
	}
	if err == nil {
		err = x.setDirs()
	}
	if err == nil {
		x.warnUnsupported()
	}
	return err
}

// warnUnsupported says once for the whole restore what this system could
// not restore.
func (x *extractor) warnUnsupported() {
	if w := x.unsettable.Warning(); w != "" {
		x.opts.Warn("%s", w)
	}
	if n := x.nodesUnsupported; n > 0 {
		x.opts.Warn("%d device nodes or FIFOs not restored: this system cannot create them", n)
	}
}

// ErrNotEmpty is returned by Extract for a target that holds something,
// unless Overwrite.
var ErrNotEmpty = errors.New("is not empty")

// checkEmpty refuses a directory with content other than staging
// directories of earlier, killed restores.
func checkEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		return fmt.Errorf("%s %w (it holds %q)", dir, ErrNotEmpty, e.Name())
	}
	return nil
}

// staged is an entry's path inside the staging directory.
func (x *extractor) staged(name string) string {
	if name == "." {
		return x.stage
	}
	return x.stage + "/" + name
}

// read extracts every archive of the chain into the staging directory.
func (x *extractor) read() error {
	for {
		name, r, err := x.next()
		if err == io.EOF {
			if err := x.checkMade(); err != nil {
				return err
			}
			return x.sel.unused()
		}
		if err != nil {
			return err
		}
		x.member = name
		var buf []byte
		if x.sc != nil {
			// The scanner's 1 MiB buffer (it reads the end of each
			// archive), allocated once for the chain, not once a backup.
			buf = x.sc.buf
		}
		x.sc = newMemberScanner(x.ctx, r, x.sel, x.opts.Progress, x.opts.Warn, x.opts.Devices)
		x.sc.buf = buf
		x.ahead = newAhead(x.sc, x.scannerWarn, x.ahead)
		err = x.readMember()
		// A writer's error comes first: its file is earlier in the
		// archive than anything that failed in line.
		if werr := x.writers.drain(); werr != nil {
			err = werr
		}
		x.ahead.close()
		x.stats.Damaged += x.sc.damaged
		if err != nil {
			if _, named := errors.AsType[*madeError](err); named {
				return err // it names the backups whose deltas made the file
			}
			return memberError(name, err)
		}
		x.chain++
	}
}

// readMember extracts one archive into the staging directory.
func (x *extractor) readMember() error {
	for {
		e, err := x.ahead.next()
		if x.failed != nil {
			return x.failed
		}
		if err != nil && err != io.EOF {
			return err
		}
		if err := x.settleUnverified(); err != nil {
			return err
		}
		if err == io.EOF {
			return nil
		}
		if !e.selected {
			if e.h.Typeflag == tar.TypeDir {
				// Deletions apply whatever is selected: a selected entry
				// may sit under a directory that is not.
				if err := x.writers.drain(); err != nil {
					return err
				}
				if err := x.purge(e); err != nil {
					return err
				}
			}
			continue
		}
		if err := x.entry(e); err != nil {
			return err
		}
	}
}

// perm turns a header mode into the permission bits to set.
func (x *extractor) perm(h *tar.Header) fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if x.opts.SamePermissions {
		if h.Mode&0o4000 != 0 {
			m |= fs.ModeSetuid
		}
		if h.Mode&0o2000 != 0 {
			m |= fs.ModeSetgid
		}
		if h.Mode&0o1000 != 0 {
			m |= fs.ModeSticky
		}
	}
	return m
}

// scannerWarn gives a warning of the scanner in its place: after those of
// the files before it.
func (x *extractor) scannerWarn(format string, args ...any) {
	if x.failed != nil {
		return
	}
	if err := x.writers.drain(); err != nil {
		x.failed = err
		return
	}
	x.opts.Warn(format, args...)
}

func (x *extractor) entry(e *entry) error {
	if e.delta != nil {
		if err := x.writers.drain(); err != nil {
			return err
		}
		return x.patch(e)
	}
	h := e.h
	if m := x.made[e.name]; m != nil {
		// Replaced: what the deltas made is checked as it would have been
		// had it stayed.
		if err := x.check(e.name, m); err != nil {
			return err
		}
		delete(x.made, e.name)
	}
	s := x.staged(e.name)
	if e.name == "." {
		if err := x.writers.drain(); err != nil {
			return err
		}
		return x.entry1(e, s, nil, "")
	}
	pr, base, err := x.parentOf(s)
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	if h.Typeflag == tar.TypeReg && !hasXattrs(h.PAXRecords) {
		if data, ok := x.ahead.whole(); ok {
			x.writers.hand(e, pr, x.parentDir, base, data, x.ahead, x.ahead.keep())
			return nil
		}
	}
	if err := x.writers.drain(); err != nil {
		return err
	}
	return x.entry1(e, s, pr, base)
}

// create runs mk, which creates the entry e at base in pr. If something
// is there already (an entry met twice: tar appends), the later one
// replaces it, except a directory, which only a directory may replace, and
// which it then merges into. Asking only when creating fails saves a stat
// of every entry.
func (x *extractor) create(e *entry, pr *os.Root, base string, mk func() error) error {
	err := mk()
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := pr.Lstat(base)
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir() && e.h.Typeflag == tar.TypeDir:
		return nil
	case fi.IsDir():
		return refuse(e.h, "replaces a directory of the archive")
	}
	if err := pr.Remove(base); err != nil {
		return err
	}
	return mk()
}

// parentOf opens (or reuses) the staged parent directory of s, creating it
// if needed, and returns it with the last element of s.
func (x *extractor) parentOf(s string) (*os.Root, string, error) {
	// s is the staging directory, a slash and a clean member name: split
	// at the last slash, sparing path.Dir's cleaning on every entry.
	i := strings.LastIndexByte(s, '/')
	dir, base := s[:i], s[i+1:]
	if x.parent == nil || x.parentName != dir {
		// The writers use the directory open now.
		if err := x.writers.drain(); err != nil {
			return nil, "", err
		}
		if err := x.noSymlinkIn(dir); err != nil {
			x.closeParent()
			return nil, "", err
		}
		// The directory is usually there: its entry comes before its
		// content, most often just before, in the directory open now, from
		// which it is one step rather than one per path element.
		var r *os.Root
		var err error
		if x.parent != nil && path.Dir(dir) == x.parentName {
			r, err = x.parent.OpenRoot(path.Base(dir))
		} else {
			r, err = x.root.OpenRoot(dir)
		}
		x.closeParent()
		if errors.Is(err, fs.ErrNotExist) {
			if err := x.root.MkdirAll(dir, 0o755); err != nil {
				return nil, "", err
			}
			r, err = x.root.OpenRoot(dir)
		}
		if err != nil {
			return nil, "", err
		}
		d, err := r.Open(".")
		if err != nil {
			r.Close()
			return nil, "", err
		}
		x.parent, x.parentDir, x.parentName = r, d, dir
	}
	return x.parent, base, nil
}

func (x *extractor) closeParent() {
	if x.parent != nil {
		x.parentDir.Close()
		x.parent.Close()
		x.parent, x.parentDir, x.parentName = nil, nil, ""
	}
}

// entry1 creates the entry e at s, which is base in the directory pr (pr
// is nil for ".", the target directory itself, which only a directory
// entry may name).
func (x *extractor) entry1(e *entry, s string, pr *os.Root, base string) error {
	h := e.h
	switch h.Typeflag {
	case tar.TypeDir:
		d := dirMeta{name: e.name, mode: x.perm(h), mtime: h.ModTime, uid: h.Uid, gid: h.Gid}
		x.stats.Dirs++
		if pr == nil {
			d.top = h // the target directory itself: only once all is verified
			x.dirs = append(x.dirs, d)
			return x.purge(e)
		}
		if err := x.create(e, pr, base, func() error { return pr.Mkdir(base, 0o755) }); err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
		x.dirs = append(x.dirs, d)
		if err := x.purge(e); err != nil {
			return err
		}
		return x.xattrsDir(e.name, h, s)
	case tar.TypeReg:
		return x.file(e, pr, base)
	case tar.TypeSymlink:
		if err := x.create(e, pr, base, func() error { return pr.Symlink(h.Linkname, base) }); err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
		x.stats.Links++
		if x.opts.Owners {
			if err := pr.Lchown(base, h.Uid, h.Gid); err != nil {
				x.opts.Warn("%s: %v", e.name, err)
			}
		}
		x.setXattrs(e.name, h, func(name, value string) error {
			return xattr.SetAt(x.parentDir, base, name, value)
		})
		return fsutil.LutimesAt(x.parentDir, base, h.ModTime)
	case tar.TypeLink:
		if e.linkUnselected {
			x.opts.Warn("%s: not restored: it is a hard link to %s, which was not selected", e.name, e.link)
			x.stats.Skipped++
			return nil
		}
		if fi, err := x.root.Lstat(x.staged(e.link)); err != nil || !fi.Mode().IsRegular() {
			return refuse(h, "hard link to %q, which is not a restored file", h.Linkname)
		}
		link := func() error { return x.root.Link(x.staged(e.link), s) } // two directories: from the root
		if err := x.create(e, pr, base, link); err != nil {
			return fmt.Errorf("archive entry %q: %w", h.Name, err)
		}
		x.stats.Links++
		return nil
	}
	// A device or FIFO (the scanner let it through: Devices is set).
	mode := uint32(x.perm(h).Perm())
	switch h.Typeflag {
	case tar.TypeChar:
		mode |= sIFCHR
	case tar.TypeBlock:
		mode |= sIFBLK
	default:
		mode |= sIFIFO
	}
	err := x.create(e, pr, base, func() error { return fsutil.MknodAt(x.parentDir, base, mode, h.Devmajor, h.Devminor) })
	if errors.Is(err, errors.ErrUnsupported) {
		x.nodesUnsupported++
		x.stats.Skipped++
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	return x.finishNode(e, pr, base)
}

func (x *extractor) file(e *entry, pr *os.Root, base string) error {
	content := func(hw *holeWriter) (int64, error) {
		n, err := x.ahead.copyContent(hw, e)
		if err == nil {
			err = hw.Close()
		}
		return n, err
	}
	n, err := x.makeFile(e, pr, x.parentDir, base, content, &x.pend, x.opts.Warn)
	if err != nil {
		return err
	}
	x.stats.Files++
	x.stats.Bytes += n
	return nil
}

// makeFile creates the file e at base in pr (dir, open), has content
// write all of it and close the holeWriter, and sets its metadata; it
// returns the size of the content. pend is a buffer to reuse. A file
// writer calls it as well: it changes nothing of x.
func (x *extractor) makeFile(e *entry, pr *os.Root, dir *os.File, base string, content func(*holeWriter) (int64, error), pend *[]byte, warn func(string, ...any)) (int64, error) {
	h := e.h
	var f fdFile
	err := x.create(e, pr, base, func() (err error) {
		f, err = createFd(dir, base)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	hw := &holeWriter{f: f, pend: (*pend)[:0]}
	n, err := content(hw)
	*pend = hw.pend
	if err == nil {
		if hasXattrs(h.PAXRecords) {
			x.setXattrs(e.name, h, f.SetXattr)
		}
		err = x.finishFile(e, f, dir, base, warn)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// restoredFile is a file being written by a restore: an os.File, or a
// bare descriptor (fdFile).
type restoredFile interface {
	io.WriterAt
	Truncate(size int64) error
	Chown(uid, gid int) error
	Chmod(mode fs.FileMode) error
}

// finishFile sets owner, mode and mtime of a file still open, through its
// descriptor where it can: a call each, with no path to resolve again.
func (x *extractor) finishFile(e *entry, f restoredFile, dir *os.File, base string, warn func(string, ...any)) error {
	h := e.h
	if x.opts.Owners {
		if err := f.Chown(h.Uid, h.Gid); err != nil {
			warn("%s: %v", e.name, err)
		}
	}
	if err := f.Chmod(x.perm(h)); err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	if err := fsutil.LutimesAt(dir, base, h.ModTime); err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	return nil
}

// finishNode sets owner, mode and mtime of a device node or FIFO, in that
// order (as finishFile does: chown clears the setuid bit).
func (x *extractor) finishNode(e *entry, pr *os.Root, base string) error {
	h := e.h
	if x.opts.Owners {
		if err := pr.Lchown(base, h.Uid, h.Gid); err != nil {
			x.opts.Warn("%s: %v", e.name, err)
		}
	}
	if err := pr.Chmod(base, x.perm(h)); err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	if err := pr.Chtimes(base, time.Time{}, h.ModTime); err != nil {
		return fmt.Errorf("archive entry %q: %w", h.Name, err)
	}
	return nil
}

// setXattrs sets the extended attributes of the entry name with set,
// warning for each that fails; those the system or file system has no
// place for are counted for one warning at the end.
func (x *extractor) setXattrs(name string, h *tar.Header, set func(name, value string) error) {
	for _, a := range xattr.FromRecords(h.PAXRecords) {
		if !xattr.Settable(a.Name) {
			x.unsettable.Add(a.Name)
			continue
		}
		if err := set(a.Name, a.Value); errors.Is(err, errors.ErrUnsupported) {
			x.unsettable.Add(a.Name)
		} else if err != nil {
			x.opts.Warn("%s: extended attribute %s not restored: %v", name, a.Name, err)
		}
	}
}

// xattrsDir sets the extended attributes of the directory s.
func (x *extractor) xattrsDir(name string, h *tar.Header, s string) error {
	if len(h.PAXRecords) == 0 {
		return nil
	}
	d, err := x.root.Open(s)
	if err != nil {
		return err
	}
	defer d.Close()
	x.setXattrs(name, h, func(k, value string) error { return xattr.FSet(d, k, value) })
	return nil
}

// move is one rename from the staging directory into place.
type move struct {
	from, to string
	replace  bool // remove what is at to first (a file or symlink)
}

// place moves the staged entries into the target directory. It plans every
// move first, so that a refusal (a symlink or file where a directory of the
// archive goes, a directory where a file goes) leaves the target unchanged.
func (x *extractor) place() error {
	explicit := make(map[string]bool, len(x.dirs))
	for _, d := range x.dirs {
		explicit[d.name] = true
	}
	var moves []move
	if err := x.plan(".", explicit, &moves); err != nil {
		return err
	}
	for i, m := range moves {
		if m.replace {
			if err := x.root.Remove(m.to); err != nil {
				return fmt.Errorf("replacing %s: %w (restore incomplete: %d of %d moves done)", m.to, err, i, len(moves))
			}
		}
		if err := x.root.Rename(m.from, m.to); err != nil {
			return fmt.Errorf("moving %s into place: %w (restore incomplete: %d of %d moves done)", m.to, err, i, len(moves))
		}
	}
	return nil
}

// plan lists the moves for the staged directory rel ("." for the top).
func (x *extractor) plan(rel string, explicit map[string]bool, moves *[]move) error {
	d, err := x.root.Open(x.staged(rel))
	if err != nil {
		return err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, c := range ents {
		name := path.Join(rel, c.Name())
		if name == x.stage {
			return fmt.Errorf("archive entry %q has the name of the staging directory: refused", name)
		}
		src := x.staged(name)
		fi, err := x.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			*moves = append(*moves, move{from: src, to: name})
			continue
		}
		if err != nil {
			return err
		}
		if !x.opts.Overwrite {
			return fmt.Errorf("%s appeared in the target directory during the restore", name)
		}
		switch {
		case c.IsDir() && fi.IsDir():
			if err := x.plan(name, explicit, moves); err != nil {
				return err
			}
		case c.IsDir() && explicit[name]:
			*moves = append(*moves, move{from: src, to: name, replace: true})
		case c.IsDir() && fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink in the target directory: refusing to write through it", name)
		case c.IsDir():
			return fmt.Errorf("%s exists in the target directory and is not a directory: refused", name)
		case fi.IsDir():
			return fmt.Errorf("archive entry %q would replace a directory in the target directory: refused", name)
		default:
			// rename replaces a file or a symlink itself, never what it points to.
			*moves = append(*moves, move{from: src, to: name})
		}
	}
	return nil
}

// setDirs sets directory owners, modes and mtimes, deepest first, now that
// nothing more is written into them.
func (x *extractor) setDirs() error {
	x.lastDirs()
	sort.SliceStable(x.dirs, func(i, j int) bool { return depth(x.dirs[i].name) > depth(x.dirs[j].name) })
	for _, d := range x.dirs {
		if err := x.setDir(d); err != nil {
			return err
		}
	}
	return nil
}

// setDir sets the metadata of one directory, through one descriptor where
// it can: each name resolved from the root costs a system call per path
// element.
func (x *extractor) setDir(d dirMeta) error {
	f, err := x.root.Open(d.name)
	if err != nil {
		return err
	}
	defer f.Close()
	if d.top != nil {
		x.setXattrs(".", d.top, func(k, value string) error { return xattr.FSet(f, k, value) })
	}
	if x.opts.Owners {
		if err := f.Chown(d.uid, d.gid); err != nil {
			x.opts.Warn("%s: %v", d.name, err)
		}
	}
	if err := f.Chmod(d.mode); err != nil {
		return err
	}
	return x.root.Chtimes(d.name, time.Time{}, d.mtime)
}

func depth(name string) int {
	if name == "." {
		return 0
	}
	return strings.Count(name, "/") + 1
}
