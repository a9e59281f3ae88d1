//go:build linux || darwin || freebsd

package xattr

import (
	"os"

	"golang.org/x/sys/unix"
)

// FSet sets one extended attribute on an open file or directory.
func FSet(f *os.File, name, value string) error {
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.Fsetxattr(int(fd), name, []byte(value), 0)
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "setxattr " + name, Path: f.Name(), Err: serr}
	}
	return nil
}
