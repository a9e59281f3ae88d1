//go:build linux || darwin || freebsd

package fsutil

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// LutimesAt sets the mtime of the entry base in the open directory dir
// without following a symlink; the access time is left alone.
func LutimesAt(dir *os.File, base string, mtime time.Time) error {
	ts := []unix.Timespec{{Nsec: utimeOmit}, unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(int(dir.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: base, Err: err}
	}
	return nil
}
