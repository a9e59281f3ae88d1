//go:build !linux && !darwin

package fsutil

// RenameNoReplace moves tmp to final unless final exists, in which case
// the error wraps os.ErrExist and both files stay as they were. This system
// has no no-clobber rename that bk uses, so it is link and unlink.
func RenameNoReplace(tmp, final string) error {
	return renameByLink(tmp, final)
}
