//go:build linux || darwin || freebsd

package fsutil

import (
	"os"
	"strconv"

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

// FileSystemID names the file system holding path: equal IDs are one file
// system (its device number).
func FileSystemID(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return "dev:" + strconv.FormatUint(uint64(st.Dev), 10), nil
}
