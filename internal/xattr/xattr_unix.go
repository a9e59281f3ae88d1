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
		serr = FSetFd(int(fd), f.Name(), name, value)
	}); err != nil {
		return err
	}
	return serr
}

// FSetFd sets one extended attribute on the file open as fd; path names it
// in the error.
func FSetFd(fd int, path, name, value string) error {
	if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
		return &os.PathError{Op: "setxattr " + name, Path: path, Err: err}
	}
	return nil
}
