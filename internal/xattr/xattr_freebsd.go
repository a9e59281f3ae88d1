package xattr

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

var namespaces = freebsdNamespaces

// List returns the extended attributes of path in the user namespace, not
// following a symlink, named "user.<name>" as Linux and bsdtar name them.
// A file system without extended attributes has none.
func List(path string) ([]Attr, error) {
	return list(path, "_link",
		func(b []byte) (int, error) { return unix.LlistxattrNS(path, unix.EXTATTR_NAMESPACE_USER, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// ListFd is List for the open file fd, named path in errors: no lookup of
// the path, which costs as much as the rest of the listing.
func ListFd(fd int, path string) ([]Attr, error) {
	return list(path, "_fd",
		func(b []byte) (int, error) { return unix.FlistxattrNS(fd, unix.EXTATTR_NAMESPACE_USER, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

func list(path, how string, names func([]byte) (int, error), get func(string, []byte) (int, error)) ([]Attr, error) {
	list, err := fillSized(names)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "extattr_list" + how, Path: path, Err: err}
	}
	var attrs []Attr
	for _, name := range splitLengthPrefixed(list) {
		name = "user." + name // what x/sys maps back to the user namespace
		val, err := fillSized(func(b []byte) (int, error) { return get(name, b) })
		if errors.Is(err, unix.ENOATTR) {
			continue // removed since listed
		}
		if err != nil {
			return nil, &os.PathError{Op: "extattr_get" + how + " " + name, Path: path, Err: err}
		}
		attrs = append(attrs, Attr{name, string(val)})
	}
	return attrs, nil
}

// fillSized reads with read into a buffer of the size a call without one
// reports. FreeBSD cuts a result short rather than fail with ERANGE, so a
// result filling the whole buffer is read again, larger.
func fillSized(read func([]byte) (int, error)) ([]byte, error) {
	size, err := read(nil)
	for err == nil {
		buf := make([]byte, size+1)
		var n int
		if n, err = read(buf); err == nil && n < len(buf) {
			return buf[:n], nil
		}
		size = 2 * len(buf)
	}
	return nil, err
}

// SetAt would set an extended attribute on the symlink base in the open
// directory dir. FreeBSD has no call for that relative to a directory, and
// a path could be redirected by a symlink on the way, so it declines.
func SetAt(dir *os.File, base, name, value string) error {
	return &os.PathError{Op: "setxattr " + name, Path: base, Err: errors.ErrUnsupported}
}
