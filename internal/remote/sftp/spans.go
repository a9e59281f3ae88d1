package sftp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/bk-backup/bk/internal/remote"
)

// span is bytes a write request carries: b, or, when f is set, the n
// bytes of f from off, which go to ssh's socket from the file itself
// (sendfile on Linux): never copied into the process, and read from the
// file again when they must be sent again.
type span struct {
	b   []byte
	f   *os.File
	off int64
	n   int
}

func (s span) size() int {
	if s.f != nil {
		return s.n
	}
	return len(s.b)
}

// spans are the bytes of a chunk, or of a request, in order.
type spans []span

func (d spans) size() int {
	n := 0
	for _, s := range d {
		n += s.size()
	}
	return n
}

// slice is bytes from to to of d.
func (d spans) slice(from, to int) spans {
	var out spans
	for _, s := range d {
		if to <= 0 {
			break
		}
		n := s.size()
		if from < n {
			end := min(to, n)
			if s.f != nil {
				out = append(out, span{f: s.f, off: s.off + int64(from), n: end - from})
			} else {
				out = append(out, span{b: s.b[from:end]})
			}
		}
		from, to = max(0, from-n), to-n
	}
	return out
}

// sourceError is a failure to read the bytes of a span from its file:
// sending them again would fail the same way. sent says the request went
// all the same, the rest of it zeros, and its answer is to come; else
// nothing of it was sent.
type sourceError struct {
	err  error
	sent bool
}

func (e *sourceError) Error() string { return "reading the bytes to send: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func (e *sourceError) Is(target error) bool { return target == remote.ErrSource }

// errSourceShort is a file that ended before a span of it.
var errSourceShort = errors.New("the file ended before the bytes to send")

// read returns the bytes of s, reading them from its file if they are there.
func (s span) read() ([]byte, error) {
	if s.f == nil {
		return s.b, nil
	}
	b := make([]byte, s.n)
	if _, err := s.f.ReadAt(b, s.off); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s: %w", s.f.Name(), errSourceShort)
		}
		return nil, &sourceError{err: err}
	}
	return b, nil
}

// spansWriter writes spans, those of files from the files.
type spansWriter interface {
	WriteSpans(parts spans) error
}

// writeSpans writes parts to w, by WriteSpans where w has it; else with
// the bytes of files read first.
func writeSpans(w io.Writer, parts spans) error {
	if sw, ok := w.(spansWriter); ok {
		return sw.WriteSpans(parts)
	}
	bufs := make(net.Buffers, 0, len(parts))
	for _, p := range parts {
		b, err := p.read()
		if err != nil {
			return err
		}
		bufs = append(bufs, b)
	}
	return writeBuffers(w, bufs)
}
