package push

import (
	"errors"
	"io"
	"os"

	"github.com/bk-backup/bk/internal/manifest"
)

// streamBase reports where a stream in f starts when f is a regular file,
// which can be read at any offset: at f's offset now.
func streamBase(f *os.File) (int64, bool) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	base, err := f.Seek(0, io.SeekCurrent)
	return base, err == nil
}

// errStreamChanged: the stream file on stdin was written while bk-push
// read it, so its shares may hold parts of two streams.
var errStreamChanged = errors.New("the stream file on standard input changed while bk-push read it (its size or modification time); nothing was stored")

// unchanged returns a check, before the manifest is written, that in,
// when it is a regular file, is still as it is now: each host's upload
// reads its own share of a stream in a file, at its own time, and a file
// rewritten meanwhile would give shares of two streams. nil for any other
// input.
func unchanged(in io.Reader) func(*manifest.Manifest) error {
	f, ok := in.(*os.File)
	if !ok {
		return nil
	}
	before, err := f.Stat()
	if err != nil || !before.Mode().IsRegular() {
		return nil
	}
	return func(*manifest.Manifest) error {
		now, err := f.Stat()
		if err != nil {
			return err
		}
		if now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime()) {
			return errStreamChanged
		}
		return nil
	}
}
