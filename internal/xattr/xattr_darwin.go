package xattr

import (
	"os"

	"golang.org/x/sys/unix"
)

var namespaces = darwinNamespaces

const errNoAttr = unix.ENOATTR

// stored reports whether List returns the attribute: all of them, macOS
// keeps ACLs apart from extended attributes.
func stored(string) bool { return true }

// SetAt sets an extended attribute on the entry base in the open directory
// dir without following it if it is a symlink: O_SYMLINK opens the link
// itself, relative to dir, so nothing on the way can redirect it.
func SetAt(dir *os.File, base, name, value string) error {
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_RDONLY|unix.O_SYMLINK|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: base, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
		return &os.PathError{Op: "setxattr " + name, Path: base, Err: err}
	}
	return nil
}
