//go:build unix

package local

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lstatIn is Lstat of the entry name of the open folder dir: one fstatat,
// where Lstat resolves the folder's path again, an element at a time,
// for each of the folder's entries.
func lstatIn(dir *os.File, name string) (stat, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return stat{}, &os.PathError{Op: "lstat", Path: dir.Name() + "/" + name, Err: err}
		}
		return stat{size: st.Size, modTime: time.Unix(st.Mtim.Unix()),
			regular: st.Mode&unix.S_IFMT == unix.S_IFREG, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
	}
}
