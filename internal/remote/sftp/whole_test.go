package sftp

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
)

// writes records each write, a writev as one.
type writes struct {
	bufCloser
	calls [][]byte
}

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, slices.Clone(p))
	return w.bufCloser.Write(p)
}

func (w *writes) WriteBuffers(bufs net.Buffers) error {
	b := bytes.Join(bufs, nil)
	w.calls = append(w.calls, b)
	_, err := w.bufCloser.Write(b)
	return err
}

// TestWholeRequests: whatever the writes requests come in, the same bytes
// pass; a request written as pkg/sftp does, header then data, or through
// createMode, in pieces, goes on in one write, and so does a request
// too large to hold in part when its data comes in one write.
func TestWholeRequests(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte{7}, 3*heldMax)
	write := func(id byte, n int) []byte {
		return sftpPacket(6, []byte{0, 0, 0, id}, sftpString("handle"), sftpUints(uint64(id)), sftpString(string(data[:n])))
	}
	small := slices.Concat(write(1, 100), sftpPacket(fxpOpen, []byte{0, 0, 0, 2}, sftpString("x")), write(3, 300))
	inSteps(t, small, small, func(out io.WriteCloser) io.Writer { return newWholeRequests(out) })

	packets := [][]byte{write(1, 100), sftpPacket(fxpOpen, []byte{0, 0, 0, 2}, sftpString("x")), write(3, len(data))}
	in := slices.Concat(packets...)
	for _, wrap := range []func(io.WriteCloser) io.Writer{
		func(w io.WriteCloser) io.Writer { return newWholeRequests(w) },
		func(w io.WriteCloser) io.Writer { return &createMode{w: newWholeRequests(w), perm: 0o444} },
	} {
		var out writes
		w := wrap(&out)
		for _, p := range packets {
			head := len(p)
			if p[4] == 6 { // a write request: its header, then its data
				head = 4 + 1 + 4 + 4 + len("handle") + 8 + 4
			}
			for _, part := range [][]byte{p[:head], p[head:]} {
				if n, err := w.Write(part); n != len(part) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("passed on %x, want %x", out.Bytes(), in)
		}
		var want [][]byte
		if len(out.calls) != len(packets) {
			for _, c := range out.calls {
				want = append(want, c[:min(len(c), 16)])
			}
			t.Fatalf("%d writes, want one a request: %x", len(out.calls), want)
		}
	}
}
