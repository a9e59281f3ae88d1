package sftp

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"
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

// failing takes no bytes.
type failing struct{ bufCloser }

func (failing) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

// TestWholeRequestsCutShort: a request of ours waiting for pkg/sftp's to
// end is let go, with an error, when that request can never end: its
// write failed, or the requests ended (the session closed) part way
// through it. It used to wait for ever, and bk-push with it.
func TestWholeRequestsCutShort(t *testing.T) {
	t.Parallel()
	ours := spans{{b: sftpPacket(fxpClose, []byte{0x80, 0, 0, 1}, sftpString("h"))}}
	for _, tc := range []struct {
		name string
		out  io.WriteCloser
		cut  func(w *wholeRequests) error
	}{
		{"write failed", &failing{}, func(w *wholeRequests) error {
			_, err := w.Write(make([]byte, 8)) // the rest: passed on, and the write fails
			return err
		}},
		{"session closed", &bufCloser{}, func(w *wholeRequests) error {
			if _, err := w.Write([]byte{0, 0, 0, 100, 6}); err != nil { // held: 95 bytes to come
				return err
			}
			return w.Close()
		}},
	} {
		w := newWholeRequests(tc.out)
		if _, err := w.Write([]byte{0, 0, 0, 9, 6}); err != nil { // a request part way, held
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.sendWhole(ours) }()
		cutErr := tc.cut(w)
		if tc.name == "write failed" && cutErr == nil {
			t.Fatalf("%s: the cut write succeeded", tc.name)
		}
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: sendWhole = nil, want the session's error", tc.name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: sendWhole still waits for a boundary that cannot come", tc.name)
		}
	}
}
