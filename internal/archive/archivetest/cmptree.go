// Package archivetest compares file trees exactly, for tests of backups
// and restores.
package archivetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options relax Compare.
type Options struct {
	NoXattrs bool // do not compare extended attributes
	NoRoot   bool // do not compare the mode and mtime of the two top directories
}

// maxDiffs caps the differences reported.
const maxDiffs = 20

type node struct {
	fi     fs.FileInfo
	st     *syscall.Stat_t
	target string
	xattrs map[string]string
	link   string // first name (sorted) of the same inode, for regular files
}

// Compare reports every difference between the trees a and b, up to a limit:
// names, types, mode bits (setuid/setgid/sticky included; not for symlinks),
// mtimes (nanoseconds where both sides have some, else seconds; directories
// and symlinks too), file contents, symlink targets, hard-link groups (which
// names share an inode) and extended attributes (the "system." namespace
// aside). It returns nil when the trees are the same.
func Compare(a, b string, opt Options) []string {
	ta, err := load(a, opt)
	if err != nil {
		return []string{err.Error()}
	}
	tb, err := load(b, opt)
	if err != nil {
		return []string{err.Error()}
	}
	var diffs []string
	add := func(format string, args ...any) bool {
		diffs = append(diffs, fmt.Sprintf(format, args...))
		return len(diffs) < maxDiffs
	}
	names := map[string]bool{}
	for n := range ta {
		names[n] = true
	}
	for n := range tb {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		x, y := ta[n], tb[n]
		var ok = true
		switch {
		case x == nil:
			ok = add("%s: only in %s", n, b)
		case y == nil:
			ok = add("%s: only in %s", n, a)
		default:
			for _, d := range compareNode(n, x, y, a, b, opt) {
				if ok = add("%s", d); !ok {
					break
				}
			}
		}
		if !ok {
			diffs = append(diffs, "(more differences not shown)")
			break
		}
	}
	return diffs
}

func compareNode(n string, x, y *node, a, b string, opt Options) []string {
	var d []string
	if x.fi.Mode().Type() != y.fi.Mode().Type() {
		return []string{fmt.Sprintf("%s: type %v vs %v", n, x.fi.Mode().Type(), y.fi.Mode().Type())}
	}
	isRoot := n == "."
	if x.fi.Mode()&fs.ModeSymlink == 0 && !(isRoot && opt.NoRoot) && x.st.Mode&0o7777 != y.st.Mode&0o7777 {
		d = append(d, fmt.Sprintf("%s: mode %04o vs %04o", n, x.st.Mode&0o7777, y.st.Mode&0o7777))
	}
	mx, my := x.fi.ModTime(), y.fi.ModTime()
	if mx.Nanosecond() == 0 || my.Nanosecond() == 0 {
		mx, my = mx.Truncate(1e9), my.Truncate(1e9)
	}
	if !(isRoot && opt.NoRoot) && !mx.Equal(my) {
		d = append(d, fmt.Sprintf("%s: mtime %v vs %v", n, x.fi.ModTime(), y.fi.ModTime()))
	}
	if x.target != y.target {
		d = append(d, fmt.Sprintf("%s: symlink target %q vs %q", n, x.target, y.target))
	}
	if x.link != y.link {
		d = append(d, fmt.Sprintf("%s: same inode as %q vs %q", n, x.link, y.link))
	}
	if !opt.NoXattrs && fmt.Sprint(x.xattrs) != fmt.Sprint(y.xattrs) {
		d = append(d, fmt.Sprintf("%s: xattrs %q vs %q", n, x.xattrs, y.xattrs))
	}
	if x.fi.Mode().IsRegular() {
		if x.fi.Size() != y.fi.Size() {
			d = append(d, fmt.Sprintf("%s: size %d vs %d", n, x.fi.Size(), y.fi.Size()))
		} else if same, err := sameContent(filepath.Join(a, n), filepath.Join(b, n)); err != nil {
			d = append(d, err.Error())
		} else if !same {
			d = append(d, fmt.Sprintf("%s: content differs", n))
		}
	}
	return d
}

func load(root string, opt Options) (map[string]*node, error) {
	tree := map[string]*node{}
	first := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := &node{fi: fi, st: fi.Sys().(*syscall.Stat_t)}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if n.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if fi.Mode().IsRegular() {
			// WalkDir visits in lexical order: the first name of an inode
			// met is its smallest.
			key := [2]uint64{uint64(n.st.Dev), n.st.Ino}
			if f, ok := first[key]; ok {
				n.link = f
			} else {
				first[key] = rel
				n.link = rel
			}
		}
		if !opt.NoXattrs {
			if n.xattrs, err = xattrs(p); err != nil {
				return err
			}
		}
		tree[filepath.ToSlash(rel)] = n
		return nil
	})
	return tree, err
}

func xattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || sz == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	m := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "system.") {
			continue
		}
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		val := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, name, val); err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		m[name] = string(val[:vsz])
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func sameContent(p, q string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	g, err := os.Open(q)
	if err != nil {
		return false, err
	}
	defer g.Close()
	bf, bg := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errF := io.ReadFull(f, bf)
		m, errG := io.ReadFull(g, bg)
		if n != m || !bytes.Equal(bf[:n], bg[:m]) {
			return false, nil
		}
		if errF == io.EOF || errF == io.ErrUnexpectedEOF {
			return errG == io.EOF || errG == io.ErrUnexpectedEOF, nil
		}
		if errF != nil {
			return false, errF
		}
		if errG != nil {
			return false, errG
		}
	}
}
