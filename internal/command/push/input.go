package push

import (
	"io"
	"os"
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
