//go:build !unix

package local

import (
	"os"
	"path/filepath"
)

// lstatIn is Lstat of the entry name of the open folder dir.
func lstatIn(dir *os.File, name string) (stat, error) {
	fi, err := os.Lstat(filepath.Join(dir.Name(), name))
	if err != nil {
		return stat{}, err
	}
	return stat{size: fi.Size(), modTime: fi.ModTime(), regular: fi.Mode().IsRegular(), dir: fi.IsDir()}, nil
}
