//go:build !linux

package archive

import "golang.org/x/sys/unix"

// dataRegions: without SEEK_DATA every file is read whole.
func dataRegions(fd int, size int64) []region { return nil }

// seekFd moves an open file's offset to off.
func seekFd(fd int, off int64) error {
	_, err := unix.Seek(fd, off, 0)
	return err
}
