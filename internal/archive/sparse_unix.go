//go:build linux || darwin || freebsd

package archive

import (
	"errors"

	"golang.org/x/sys/unix"
)

// dataRegions finds the data regions of an open file of the given size
// with SEEK_DATA and SEEK_HOLE, and leaves the offset at 0. It returns nil
// when the file has no hole, has more than maxSparseRegions regions, or its
// file system cannot tell: the file is then read whole.
func dataRegions(fd int, size int64) []region {
	defer unix.Seek(fd, 0, unix.SEEK_SET)
	var regions []region
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || err == nil && start >= size {
			break // a hole up to the end
		}
		if err != nil {
			return nil
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil
		}
		end = min(end, size)
		if len(regions) == maxSparseRegions {
			return nil
		}
		regions = append(regions, region{start, end - start})
		off = end
	}
	if len(regions) == 1 && regions[0] == (region{0, size}) {
		return nil
	}
	if regions == nil {
		regions = []region{} // all hole
	}
	return regions
}

// seekFd moves an open file's offset to off.
func seekFd(fd int, off int64) error {
	_, err := unix.Seek(fd, off, unix.SEEK_SET)
	return err
}
