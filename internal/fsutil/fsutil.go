// Package fsutil holds the file system calls whose form differs between the
// systems bk runs on, each behind one portable function, so that no other
// package asks which system it is on.
package fsutil

import "os"

// renameByLink moves tmp to final with link(2) then unlink(2): link fails
// rather than replace, on every system and file system with hard links.
func renameByLink(tmp, final string) error {
	if err := os.Link(tmp, final); err != nil {
		return err
	}
	return os.Remove(tmp)
}

// errTaken is the error of a rename refused because final exists.
func errTaken(tmp, final string) error {
	return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: os.ErrExist}
}
