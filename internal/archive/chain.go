package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Members yields the archives of a chain in order, the full one first: a
// name for messages (empty for a lone archive) and the tar stream, then
// io.EOF. The stream of one archive is read to its end before the next is
// asked for.
type Members func() (name string, r io.Reader, err error)

// Single is the chain of one archive, unnamed.
func Single(r io.Reader) Members {
	done := false
	return func() (string, io.Reader, error) {
		if done {
			return "", nil, io.EOF
		}
		done = true
		return "", r, nil
	}
}

func memberError(name string, err error) error {
	if name == "" {
		return err
	}
	return fmt.Errorf("backup %s: %w", name, err)
}

// parseDumpdir reads a GNU.dumpdir record into name → flag.
func parseDumpdir(v string) (map[string]byte, error) {
	m := map[string]byte{}
	for v != "" && v[0] != 0 {
		i := strings.IndexByte(v, 0)
		if i < 0 {
			return nil, errors.New("GNU.dumpdir record does not end with a NUL")
		}
		item := v[:i]
		v = v[i+1:]
		if len(item) < 2 {
			return nil, errors.New("GNU.dumpdir record holds an empty name")
		}
		name := item[1:]
		if strings.IndexByte(name, '/') >= 0 || name == "." || name == ".." {
			return nil, fmt.Errorf("GNU.dumpdir record holds the name %q", name)
		}
		m[name] = item[0]
	}
	return m, nil
}

// gone says whether an entry the dumpdir of its directory lists as flag
// (0: not listed) was deleted since the earlier archive, as GNU tar -G
// decides: not listed, a directory that is now something else, or the
// reverse.
func gone(flag byte, isDir bool) bool {
	return flag == 0 || (flag == 'D' && !isDir) || (flag == 'Y' && isDir)
}

// purge applies the dumpdir of a directory entry, if any, to its staged
// copy: what the earlier archives of the chain left there and the
// directory no longer holds is removed.
func (x *extractor) purge(e *entry) error {
	v, ok := e.h.PAXRecords[dumpdirRecord]
	if !ok {
		return nil
	}
	listed, err := parseDumpdir(v)
	if err != nil {
		return refuse(e.h, "%v", err)
	}
	if x.chain == 0 && !x.warnedAlone {
		// The first archive of a chain is a full backup, which has none.
		x.warnedAlone = true
		x.opts.Warn("the archive is an incremental backup: it holds only what changed since the backup before it; restore it with its chain (bk-join HOSTS, or -f FULL -f ... in order)")
	}
	s := x.staged(e.name)
	d, err := x.root.Open(s)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not restored (left out by the patterns)
	}
	if err != nil {
		return err
	}
	ents, err := readDirTypes(d)
	d.Close()
	if err != nil {
		return err
	}
	for _, c := range ents {
		if e.name == "." && c.Name() == x.stage {
			continue
		}
		if gone(listed[c.Name()], c.IsDir()) {
			x.closeParent() // it may be the removed directory, or under it
			clear(x.realDirs)
			if err := x.root.RemoveAll(s + "/" + c.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// noSymlinkIn refuses a staged directory path that goes through a symlink
// an earlier archive of the chain left (within one archive the scanner
// refuses such names already). A path found to be directories alone
// stays so until purge removes something (nothing else of the extraction
// removes a directory, or puts a symlink where one is), so it is not
// looked at again until then: each look resolves every element of the
// path from the root.
func (x *extractor) noSymlinkIn(dir string) error {
	if x.chain == 0 {
		return nil
	}
	var checked []string
	for p := dir; p != x.stage && p != "."; p = path.Dir(p) {
		if _, ok := x.realDirs[p]; ok {
			break
		}
		fi, err := x.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: would write through %s, which an earlier backup of the chain left there: refused", dir, strings.TrimPrefix(p, x.stage+"/"))
		}
		checked = append(checked, p)
	}
	if x.realDirs == nil {
		x.realDirs = map[string]struct{}{}
	}
	for _, p := range checked {
		x.realDirs[p] = struct{}{}
	}
	return nil
}

// lastDirs keeps, for a chain, the last metadata of each directory that is
// still one in the target, in the order given.
func (x *extractor) lastDirs() {
	if x.chain < 2 {
		return
	}
	last := make(map[string]int, len(x.dirs))
	for i, d := range x.dirs {
		last[d.name] = i
	}
	kept := x.dirs[:0]
	for i, d := range x.dirs {
		if last[d.name] != i {
			continue
		}
		if fi, err := x.root.Lstat(d.name); err != nil || !fi.IsDir() {
			continue // deleted by a later archive
		}
		kept = append(kept, d)
	}
	x.dirs = kept
}

// ListChain lists the tree as a chain of archives leaves it, like List for
// one archive, in name order. It holds the tree's headers in memory.
func ListChain(ctx context.Context, next Members, w io.Writer, patterns []string, warn func(string, ...any)) (RestoreStats, error) {
	t, err := NewTree(patterns)
	if err != nil {
		return RestoreStats{}, err
	}
	for {
		name, r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return RestoreStats{}, err
		}
		if err := t.apply(ctx, r, warn); err != nil {
			return RestoreStats{}, memberError(name, err)
		}
	}
	return t.List(w)
}

// Tree is the tree a chain of archives leaves, built from their headers
// (content is not needed): ListChain's, or, from the catalogues of
// archives, bk-restore -t --from's.
type Tree struct {
	root node
	sel  *selector
}

// NewTree is an empty tree, to be listed with the patterns.
func NewTree(patterns []string) (*Tree, error) {
	sel, err := newSelector(patterns)
	if err != nil {
		return nil, err
	}
	return &Tree{sel: sel}, nil
}

// Add applies the header of the next entry of the chain, archive after
// archive, each in stream order: what it makes of its name replaces what
// was there, and a directory's GNU.dumpdir record removes what it does not
// list. A delta's header (with its records) stands for the file it
// changes, at its size after the change.
func (t *Tree) Add(h *tar.Header) error {
	name, err := memberName(h.Name)
	if err != nil {
		return refuse(h, "%v", err)
	}
	e := &entry{h: h, name: name}
	if e.delta, err = parseDelta(h, name); err != nil {
		return err
	}
	t.sel.match(e.fileName())
	return t.root.put(e)
}

// List writes the tree's selected entries as List does, in name order.
func (t *Tree) List(w io.Writer) (RestoreStats, error) {
	var stats RestoreStats
	if err := t.sel.unused(); err != nil {
		return stats, err
	}
	l := newLister(w)
	t.root.walk(func(h *tar.Header) {
		name, _ := memberName(h.Name)
		if t.sel.wouldMatch(name) {
			stats.count(&entry{h: h})
			l.line(h)
		}
	})
	return stats, l.w.Flush()
}

// apply reads one archive of the chain into the tree, with the checks of
// every reader.
func (t *Tree) apply(ctx context.Context, r io.Reader, warn func(string, ...any)) error {
	sc := newMemberScanner(ctx, r, t.sel, nil, warn, true)
	for {
		e, err := sc.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := sc.copyContent(io.Discard, e); err != nil {
			return err
		}
		if err := t.root.put(e); err != nil {
			return err
		}
	}
}

// CheckChain reads and checks every archive of a chain as ExtractChain
// would, and writes nothing.
func CheckChain(ctx context.Context, next Members, patterns []string, warn func(string, ...any)) (RestoreStats, error) {
	var stats RestoreStats
	sel, err := newSelector(patterns)
	if err != nil {
		return stats, err
	}
	for {
		name, r, err := next()
		if err == io.EOF {
			return stats, sel.unused()
		}
		if err != nil {
			return stats, err
		}
		sc := newMemberScanner(ctx, r, sel, nil, warn, false)
		if err := scanEntries(sc, &stats, nil); err != nil {
			return stats, memberError(name, err)
		}
	}
}

// node is an entry of the tree ListChain builds.
type node struct {
	h    *tar.Header
	kids map[string]*node
}

func (n *node) child(name string) *node {
	if n.kids == nil {
		n.kids = map[string]*node{}
	}
	c := n.kids[name]
	if c == nil {
		c = &node{}
		n.kids[name] = c
	}
	return c
}

// put makes the entry's name in the tree what the entry says.
func (n *node) put(e *entry) error {
	at := n
	if name := e.fileName(); name != "." {
		for _, c := range strings.Split(name, "/") {
			at = at.child(c)
		}
	}
	h := *e.h
	h.PAXRecords = nil
	if e.delta != nil {
		h.Name, h.Size = strings.TrimSuffix(h.Name, DeltaSuffix), e.delta.size
	}
	if h.Typeflag != tar.TypeDir {
		at.kids = nil
	}
	at.h = &h
	if v, ok := e.h.PAXRecords[dumpdirRecord]; ok {
		listed, err := parseDumpdir(v)
		if err != nil {
			return refuse(e.h, "%v", err)
		}
		for name, c := range at.kids {
			if c.h != nil && gone(listed[name], c.h.Typeflag == tar.TypeDir) {
				delete(at.kids, name)
			}
		}
	}
	return nil
}

// walk calls fn for each entry in the tree, directories before their
// content, names in byte order.
func (n *node) walk(fn func(*tar.Header)) {
	if n.h != nil {
		fn(n.h)
	}
	names := make([]string, 0, len(n.kids))
	for name := range n.kids {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n.kids[name].walk(fn)
	}
}
