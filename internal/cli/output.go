package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Output is where a tool writes its data: stdout, or a file that appears
// under its name only when the whole output was written. The file is created
// under a hidden temp name on the first write, so a run that fails before any
// data flows leaves nothing, and one that fails later leaves no file that
// looks complete.
type Output struct {
	path   string // "" for stdout
	stdout io.Writer
	tmp    *os.File
	err    error
}

// OpenOutput returns an Output for path ("-" or "" meaning stdout). It
// refuses an existing file rather than overwrite a backup, and refuses a
// terminal as stdout.
func OpenOutput(path string, stdout io.Writer, what string) (*Output, error) {
	if path == "" || path == "-" {
		if err := RefuseTerminal(stdout, what, "-o FILE"); err != nil {
			return nil, err
		}
		return &Output{stdout: stdout}, nil
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, WithHint(fmt.Errorf("output file %s already exists", path),
			"remove it first, or choose another name")
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("output folder %s does not exist", dir)
	}
	return &Output{path: path}, nil
}

func (o *Output) Write(p []byte) (int, error) {
	if o.path == "" {
		return o.stdout.Write(p)
	}
	if o.err != nil {
		return 0, o.err
	}
	if o.tmp == nil {
		o.tmp, o.err = os.CreateTemp(filepath.Dir(o.path), "."+filepath.Base(o.path)+".tmp-*")
		if o.err != nil {
			return 0, o.err
		}
	}
	n, err := o.tmp.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

// Commit makes the file appear under its name. It never replaces a file
// that appeared there meanwhile.
func (o *Output) Commit() error {
	if o.path == "" {
		return nil
	}
	if o.err != nil {
		o.Abort()
		return o.err
	}
	if o.tmp == nil {
		if _, err := o.Write(nil); err != nil {
			return err
		}
	}
	tmp := o.tmp.Name()
	err := o.tmp.Sync()
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameNoReplace(tmp, o.path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	o.tmp = nil
	return nil
}

// Abort removes whatever was written. It is safe to call after Commit.
func (o *Output) Abort() {
	if o.tmp != nil {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
		o.tmp = nil
	}
}

// renameNoReplace moves tmp to path, failing if path exists. A hard link is
// atomic and refuses to clobber; file systems without links (FAT on a USB
// disk) fall back to a check and a rename.
func renameNoReplace(tmp, path string) error {
	err := os.Link(tmp, path)
	if err == nil {
		return os.Remove(tmp)
	}
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("output file %s appeared while writing; left untouched", path)
	}
	if _, serr := os.Lstat(path); serr == nil {
		return fmt.Errorf("output file %s appeared while writing; left untouched", path)
	}
	return os.Rename(tmp, path)
}
