//go:build linux || darwin

package xattr

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// List returns the extended attributes of path, not following a symlink,
// by name. A file system without extended attributes has none.
func List(path string) ([]Attr, error) {
	list, err := fill(1024, func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	var attrs []Attr
	for _, name := range splitNUL(list) {
		if !stored(name) {
			continue
		}
		val, err := fill(256, func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
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

// fill calls read with a buffer of size bytes, and larger ones while the
// result does not fit (ERANGE), and returns what it read.
func fill(size int, read func([]byte) (int, error)) ([]byte, error) {
	for {
		buf := make([]byte, size)
		n, err := read(buf)
		if errors.Is(err, unix.ERANGE) {
			size *= 4
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
