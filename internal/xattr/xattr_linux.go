package xattr

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var namespaces = linuxNamespaces

const errNoAttr = unix.ENODATA

// stored reports whether List returns the attribute: not the ACLs.
func stored(name string) bool { return !strings.HasPrefix(name, "system.") }

// SetAt sets an extended attribute on the entry base in the open directory
// dir without following it if it is a symlink. There is no fd-relative
// lsetxattr, so it goes through /proc/self/fd, which resolves to the
// directory itself and so cannot be redirected by a symlink on the way.
func SetAt(dir *os.File, base, name, value string) error {
	p := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + base
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		return &os.PathError{Op: "setxattr " + name, Path: base, Err: err}
	}
	return nil
}
