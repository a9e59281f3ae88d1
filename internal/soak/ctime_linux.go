package soak

import (
	"io/fs"
	"syscall"
)

// fileKey is the statKey of a file, and whether there is one.
func fileKey(fi fs.FileInfo, st *syscall.Stat_t) (statKey, bool) {
	if st == nil {
		return statKey{}, false
	}
	return statKey{ino: st.Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano(), ctime: st.Ctim.Nano()}, true
}
