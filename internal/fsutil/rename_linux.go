package fsutil

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// RenameNoReplace moves tmp to final unless final exists, in which case
// the error wraps os.ErrExist and both files stay as they were. It is
// renameat2 with RENAME_NOREPLACE, or link and unlink on a file system
// without it.
func RenameNoReplace(tmp, final string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return errTaken(tmp, final)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		return renameByLink(tmp, final)
	}
	return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: err}
}
