package fsutil

import (
	"os"

	"golang.org/x/sys/windows"
)

// FreeSpace is the space left to this user on the volume holding path, in
// bytes.
func FreeSpace(path string) (int64, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, &os.PathError{Op: "GetDiskFreeSpaceEx", Path: path, Err: err}
	}
	var avail uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, nil, nil); err != nil {
		return 0, &os.PathError{Op: "GetDiskFreeSpaceEx", Path: path, Err: err}
	}
	return int64(avail), nil
}

// FileSystemID names the volume holding path: equal IDs are one volume.
func FileSystemID(path string) (string, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return "", err
	}
	var root [windows.MAX_PATH + 1]uint16
	if err := windows.GetVolumePathName(p, &root[0], uint32(len(root))); err != nil {
		return "", &os.PathError{Op: "GetVolumePathName", Path: path, Err: err}
	}
	return "volume:" + windows.UTF16ToString(root[:]), nil
}
