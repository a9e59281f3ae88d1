//go:build !linux

package push

import (
	"io"
	"math"
	"os"
)

// input is how bk-push reads a share stream from in. A stream in a
// regular file can also be read at any offset from where it starts, so
// that each upload reads its own share (push.Push).
func input(in io.Reader) io.Reader {
	f, ok := in.(*os.File)
	if !ok {
		return in
	}
	if base, ok := streamBase(f); ok {
		return io.NewSectionReader(f, base, math.MaxInt64-base)
	}
	return in
}
