//go:build linux || darwin

package xattr

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// List returns the extended attributes of path, not following a symlink,
// by name. A file system without extended attributes has none.
func List(path string) ([]Attr, error) {
	return list(path,
		func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// ListFd is List for the open file fd, named path in errors: no lookup of
// the path, which costs as much as the rest of the listing.
func ListFd(fd int, path string) ([]Attr, error) {
	return list(path,
		func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

func list(path string, names func([]byte) (int, error), get func(string, []byte) (int, error)) ([]Attr, error) {
	// Most files have none: the list is read into a buffer used again, so
	// that asking costs a system call and no allocation.
	bp := listBufs.Get().(*[]byte)
	defer listBufs.Put(bp)
	list, err := fillInto(*bp, names)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	if len(list) == 0 {
		return nil, nil
	}
	var attrs []Attr
	for _, name := range splitNUL(list) {
		if !stored(name) {
			continue
		}
		val, err := fill(256, func(b []byte) (int, error) { return get(name, b) })
		if errors.Is(err, errNoAttr) {
			continue // removed since listed
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		attrs = append(attrs, Attr{name, string(val)})
	}
	return attrs, nil
}

// listBufs holds the buffers List reads lists of names into.
var listBufs = sync.Pool{New: func() any { b := make([]byte, 1024); return &b }}

// fill calls read with a buffer of size bytes, and larger ones while the
// result does not fit (ERANGE), and returns what it read.
func fill(size int, read func([]byte) (int, error)) ([]byte, error) {
	return fillInto(make([]byte, size), read)
}

// fillInto is fill starting with buf.
func fillInto(buf []byte, read func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := read(buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 4*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
