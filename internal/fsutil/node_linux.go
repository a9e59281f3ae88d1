package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

const utimeOmit = unix.UTIME_OMIT

// MknodAt creates a device node or FIFO named base in the open directory
// dir; mode holds its type (S_IFCHR, S_IFBLK, S_IFIFO) and permissions.
func MknodAt(dir *os.File, base string, mode uint32, major, minor int64) error {
	if err := unix.Mknodat(int(dir.Fd()), base, mode, int(unix.Mkdev(uint32(major), uint32(minor)))); err != nil {
		return &os.PathError{Op: "mknodat", Path: base, Err: err}
	}
	return nil
}
