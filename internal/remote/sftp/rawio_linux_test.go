package sftp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// rawPair is a rawSocket on one end of a socket pair, and the other end.
func rawPair(t *testing.T) (*rawSocket, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(fds[0]), "ours")
	peer := os.NewFile(uintptr(fds[1]), "peer")
	conn, err := net.FileConn(ours)
	_ = ours.Close()
	if err != nil {
		t.Fatal(err)
	}
	uc := conn.(*net.UnixConn)
	_ = uc.SetWriteBuffer(64 << 10) // full early: partial writes
	_, w, err := sessionIO(uc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uc.Close(); _ = peer.Close() })
	return w.(*rawSocket), peer
}

// TestRawSocketWrites: buffers many times the socket's room, written while
// the other end reads in small pieces, arrive whole and in order; Close
// ends them, and the answers still come.
func TestRawSocketWrites(t *testing.T) {
	t.Parallel()
	s, peer := rawPair(t)
	var bufs net.Buffers
	var want []byte
	for i, n := range []int{9, 0, 255 << 10, 1, 100 << 10, 3 << 20, 7} {
		b := bytes.Repeat([]byte{byte(i + 1)}, n)
		for j := range b {
			b[j] += byte(j / 251)
		}
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	got := make(chan []byte)
	go func() {
		var all []byte
		p := make([]byte, 1000)
		for {
			n, err := peer.Read(p)
			all = append(all, p[:n]...)
			if err != nil {
				got <- all
				return
			}
		}
	}()
	if err := s.WriteBuffers(bufs); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Write([]byte("end")); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	want = append(want, "end"...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("the other end read %d bytes, not the %d written", len(all), len(want))
	}
	if _, err := peer.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if n, err := s.Read(p); string(p[:n]) != "answer" || err != nil {
		t.Fatalf("Read after Close = %q, %v", p[:n], err)
	}
}

// TestRawSocketSpans: spans of a file, sent with sendfile, between bytes
// in memory, many times the socket's room, arrive whole and in order; a
// span the file does not hold fails as the file's (a *sourceError), the
// request sent whole with zeros for the rest, and a closed other end
// fails as a write's (EPIPE).
func TestRawSocketSpans(t *testing.T) {
	t.Parallel()
	s, peer := rawPair(t)
	src := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 100_000)
	f := sourceFile(t, src)
	parts := spans{{b: []byte("head")}, {f: f, off: 5, n: 1 << 20}, {f: f, off: 7, n: 3}, {b: []byte("mid")}, {b: []byte("dle")},
		{f: f, off: int64(len(src)) - 2<<20, n: 2 << 20}, {b: []byte("tail")}}
	var want []byte
	for _, p := range parts {
		b, err := p.read()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(peer)
		got <- all
	}()
	if err := s.WriteSpans(parts); err != nil {
		t.Fatal(err)
	}
	err := s.WriteSpans(spans{{b: []byte("h")}, {f: f, off: int64(len(src)) - 10, n: 11}, {b: []byte("m")}, {f: f, off: 0, n: 100 << 10}})
	var short *sourceError
	if !errors.As(err, &short) || !short.sent || !errors.Is(err, errSourceShort) {
		t.Fatalf("WriteSpans past the file's end = %v, want the file named, the request sent", err)
	}
	// The request goes whole all the same: what the file lacked, and all
	// after it, as zeros.
	want = append(append(append(want, "h"...), src[len(src)-10:]...), make([]byte, 1+1+100<<10)...)
	// A file whose file system cannot splice is read instead: here a
	// folder, which sendfile refuses (EINVAL) and read too (EISDIR).
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	err = s.WriteSpans(spans{{b: []byte("d")}, {f: dir, off: 0, n: 10}})
	if !errors.As(err, &short) || !short.sent || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("WriteSpans of a folder = %v, want it read, and EISDIR", err)
	}
	want = append(append(want, "d"...), make([]byte, 10)...)
	_ = s.Close()
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("the other end read %d bytes, not the %d written", len(all), len(want))
	}
	_ = peer.Close()
	err = s.WriteSpans(spans{{f: f, off: 0, n: 1 << 20}})
	if !errors.Is(err, syscall.EPIPE) || errors.As(err, new(*sourceError)) {
		t.Fatalf("WriteSpans to a closed end = %v, want EPIPE", err)
	}
}

// TestRawSocketEnd: reads see what came, then io.EOF once the other end
// closes; writes then fail with EPIPE, where the session hears the
// connection is lost, and never hang.
func TestRawSocketEnd(t *testing.T) {
	t.Parallel()
	s, peer := rawPair(t)
	if _, err := peer.Write([]byte("status")); err != nil {
		t.Fatal(err)
	}
	_ = peer.Close()
	p := make([]byte, 100)
	if n, err := s.Read(p); string(p[:n]) != "status" || err != nil {
		t.Fatalf("Read = %q, %v", p[:n], err)
	}
	if n, err := s.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v, want io.EOF", n, err)
	}
	err := s.WriteBuffers(net.Buffers{make([]byte, 1<<20)})
	if !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("WriteBuffers to a closed end = %v, want EPIPE", err)
	}
}

// TestAdvance: a partial writev leaves the bytes not written, across
// buffers and within one.
func TestAdvance(t *testing.T) {
	t.Parallel()
	bufs := [][]byte{[]byte("abc"), []byte("de"), []byte("fghi")}
	for n, want := range []string{"abcdefghi", "bcdefghi", "cdefghi", "defghi", "efghi", "fghi", "ghi", "hi", "i", ""} {
		var iov []syscall.Iovec
		for _, b := range bufs {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
		var got []byte
		for _, v := range advance(iov, n) {
			got = append(got, unsafe.Slice(v.Base, v.Len)...)
		}
		if string(got) != want {
			t.Errorf("advance by %d leaves %q, want %q", n, got, want)
		}
	}
}
