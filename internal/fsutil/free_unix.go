//go:build linux || darwin || freebsd

package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// FreeSpace is the space left to unprivileged users on the file system
// holding path, in bytes.
func FreeSpace(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	// The field types differ per system, and FreeBSD's Bavail goes below
	// zero once the root reserve is in use.
	return max(int64(st.Bavail), 0) * int64(st.Bsize), nil
}
