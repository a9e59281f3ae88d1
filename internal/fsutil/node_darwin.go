package fsutil

import (
	"errors"
	"os"
)

// utimeOmit is UTIME_OMIT of macOS's <sys/stat.h>, which x/sys lacks.
const utimeOmit = -2

// MknodAt would create a device node or FIFO named base in the open
// directory dir. x/sys has no mknodat for macOS, and a path could be
// redirected by a symlink on the way, so it declines: the error wraps
// errors.ErrUnsupported.
func MknodAt(dir *os.File, base string, mode uint32, major, minor int64) error {
	return &os.PathError{Op: "mknodat", Path: base, Err: errors.ErrUnsupported}
}
