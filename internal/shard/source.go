package shard

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FileSource is a share in a local file, named by its path.
type FileSource string

// Name is the file's path.
func (f FileSource) Name() string { return string(f) }

// Open opens the file and seeks to offset.
func (f FileSource) Open(_ context.Context, offset int64) (io.ReadCloser, error) {
	file, err := os.Open(string(f))
	if err != nil {
		return nil, err
	}
	if _, err := file.Seek(offset, io.SeekStart); err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

// DirSources returns a source for every regular file in dir, in name
// order. Hidden files are left out: bk-split writes shares under hidden
// temp names until they are complete.
func DirSources(dir string) ([]Source, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var sources []Source
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		sources = append(sources, FileSource(filepath.Join(dir, e.Name())))
	}
	return sources, nil
}
