package sftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	psftp "github.com/pkg/sftp"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
)

// forgeFlag makes the test binary a forging SFTP server on its stdin and
// stdout, in place of ssh: pkg/sftp's server on the local file system,
// with the answer to the third write request changed as its mode says.
const forgeFlag = "-bk-forge-sftp"

// forgeMain serves as forgeFlag says, if the command line asks for it.
func forgeMain() {
	if len(os.Args) < 3 || os.Args[1] != forgeFlag {
		return
	}
	f := &forger{mode: os.Args[2], w: os.Stdout, writes: map[uint32]bool{}}
	srv, err := psftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{&requestWatch{r: os.Stdin, f: f}, f})
	if err == nil {
		err = srv.Serve()
	}
	if err != nil && err != io.EOF {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// forger passes the server's answers on, but for the answer to the third
// write request, which it changes.
type forger struct {
	mode string
	w    io.Writer
	buf  []byte

	mu     sync.Mutex
	writes map[uint32]bool // the numbers of the write requests not answered
	seen   int             // write answers so far
	held   []byte          // an answer held back ("reorder")
}

// requestWatch notes the numbers of the write requests as they go to the
// server.
type requestWatch struct {
	r    io.Reader
	f    *forger
	buf  []byte
	skip int
}

func (rw *requestWatch) Read(p []byte) (int, error) {
	n, err := rw.r.Read(p)
	rw.buf = append(rw.buf, p[:n]...)
	for {
		if rw.skip > 0 {
			k := min(rw.skip, len(rw.buf))
			rw.buf, rw.skip = rw.buf[k:], rw.skip-k
			if rw.skip > 0 {
				break
			}
		}
		if len(rw.buf) < 9 {
			break
		}
		size := 4 + int(binary.BigEndian.Uint32(rw.buf))
		if rw.buf[4] == fxpWrite {
			if len(rw.buf) < 13 {
				break // the handle's length is still to come
			}
			rw.f.mu.Lock()
			rw.f.writes[binary.BigEndian.Uint32(rw.buf[5:])] = true
			rw.f.mu.Unlock()
			// After the number: the handle, the offset and the data's length.
			rw.f.noteWrite(size - 13 - int(binary.BigEndian.Uint32(rw.buf[9:])) - 12)
		}
		rw.skip = size
	}
	return n, err
}

func (f *forger) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for len(f.buf) >= 4 {
		size := 4 + int(binary.BigEndian.Uint32(f.buf))
		if len(f.buf) < size {
			break
		}
		pkt := bytes.Clone(f.buf[:size])
		f.buf = f.buf[size:]
		if _, err := f.w.Write(f.forge(pkt)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *forger) Close() error { return nil }

// noteWrite adds the data size of a write request to the file that mode
// "sizes=FILE" names, a line each.
func (f *forger) noteWrite(size int) {
	if name, ok := strings.CutPrefix(f.mode, "sizes="); ok {
		out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err == nil {
			_, err = fmt.Fprintln(out, size)
			err = errors.Join(err, out.Close())
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
	}
}

// forge returns what goes to the client in place of pkt.
func (f *forger) forge(pkt []byte) []byte {
	if len(pkt) < 9 {
		return pkt
	}
	id := binary.BigEndian.Uint32(pkt[5:])
	f.mu.Lock()
	isWrite := f.writes[id]
	delete(f.writes, id)
	if isWrite {
		f.seen++
	}
	seen, held := f.seen, f.held
	if isWrite && seen == 4 {
		f.held = nil
	}
	f.mu.Unlock()
	if isWrite && seen == 4 && held != nil {
		return append(pkt, held...) // the third's answer after the fourth's
	}
	if !isWrite || seen != 3 {
		return pkt
	}
	switch f.mode {
	case "fail":
		body := binary.BigEndian.AppendUint32(nil, id)
		body = binary.BigEndian.AppendUint32(body, 4)
		body = appendString(body, []byte("forged failure"))
		body = appendString(body, nil)
		return sftpPacket(fxpStatus, body)
	case "wrongid":
		binary.BigEndian.PutUint32(pkt[5:], id^0x100)
	case "dup":
		return append(pkt, pkt...)
	case "short":
		return sftpPacket(fxpStatus, pkt[5:9])
	case "type":
		pkt[4] = fxpHandle
	case "reorder":
		f.mu.Lock()
		f.held = pkt
		f.mu.Unlock()
		return nil
	}
	return pkt
}

// TestForgedWriteAnswers: an answer to a write that fails the write, or
// that breaks the protocol (a number not on its way, twice the same, a
// status too short, a packet of another type) fails the upload with one
// line naming the host and nothing under the final name; answers out of
// order, which the protocol allows, store the file.
func TestForgedWriteAnswers(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"fail":    ": forged failure (SSH_FX_FAILURE)",
		"wrongid": "the host broke the SFTP protocol: it answered request ",
		"dup":     "the host broke the SFTP protocol: it answered request ",
		"short":   "the host broke the SFTP protocol: it answered a write with a status of 0 bytes",
		"type":    "the host broke the SFTP protocol: it answered a write with a packet of type 102",
		"reorder": "",
	}
	for mode, msg := range want {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r, up := forgedUpload(t, mode)
			data := remotetest.Data(2<<20, 7)
			_, err := up.Write(data)
			if err == nil {
				err = up.Commit(ctx)
			}
			if msg == "" {
				checkStored(t, r, err, data)
				return
			}
			t.Logf("%v", err)
			prefix := "host forger-" + mode + ": upload "
			if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line %q…%q", err, prefix, msg)
			}
			if err := up.Abort(); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if _, err := r.Stat(ctx, "f"); err == nil {
				t.Fatal("the final name exists")
			}
		})
	}
}

// forgedUpload dials a host through the forger in mode, named after the
// mode, and starts an upload of "f" there; both end with the test.
func forgedUpload(t *testing.T, mode string) (*SFTP, remote.Upload) {
	t.Helper()
	ctx := context.Background()
	name, _, _ := strings.Cut(mode, "=")
	h := Location{Host: "forger-" + name, Path: t.TempDir()}
	r, err := Dial(ctx, h, remote.DialOptions{SSHCommand: []string{os.Args[0], forgeFlag, mode}, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	up, err := r.Create(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Abort() })
	return r, up
}

// checkStored fails the test unless the upload ended without err and r
// holds data as "f".
func checkStored(t *testing.T, r *SFTP, err error, data []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if got := remotetest.Get(t, r, "f", 0); !bytes.Equal(got, data) {
		t.Fatal("stored file differs from what was written")
	}
}

// TestWritesAreWholePackets: an upload lent chunks of whole frames, which
// are no multiple of the packet size, sends every write request but the
// last one full, as OpenSSH's sftp does, and not a short request at each
// chunk's end: each request costs the host a write and an answer.
func TestWritesAreWholePackets(t *testing.T) {
	t.Parallel()
	sizes := filepath.Join(t.TempDir(), "sizes")
	r, up := forgedUpload(t, "sizes="+sizes)
	const chunk, chunks = 7 * (128<<10 + 3*32), 12 // as bk-push lends them for a 2-of-3 stream
	data := remotetest.Data(chunk*chunks, 3)
	for at := 0; at < len(data); at += chunk {
		if err := up.(remote.Keeper).WriteKept(data[at:at+chunk], func([]byte) {}); err != nil {
			t.Fatal(err)
		}
	}
	checkStored(t, r, up.Commit(context.Background()), data)
	text, err := os.ReadFile(sizes)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(text))
	packet := r.conn.packet
	for i, line := range lines {
		n, err := strconv.Atoi(line)
		if err != nil || n > packet || n < packet && i < len(lines)-1 {
			t.Fatalf("write request %d of %d carries %s bytes; want %d but for the last", i+1, len(lines), line, packet)
		}
	}
	if want := (len(data) + packet - 1) / packet; len(lines) != want {
		t.Fatalf("%d write requests for %d bytes, want %d", len(lines), len(data), want)
	}
}

// TestForgedAnswerToSpanningWrite: the third write request is made to run
// from one lent chunk's last bytes into the next one's first; a forged
// failure of it fails the upload, naming the host, with nothing under the
// final name, and an answer held back behind the next still stores the
// file whole: the answer counts for both chunks.
func TestForgedAnswerToSpanningWrite(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"fail", "reorder"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r, up := forgedUpload(t, mode)
			var err error
			// Two whole requests and 100 bytes a chunk: the third request
			// is the first chunk's last 100 bytes and the second's first.
			chunk := 2*r.conn.packet + 100
			data := remotetest.Data(4*chunk, 9)
			for at := 0; at < len(data) && err == nil; at += chunk {
				err = up.(remote.Keeper).WriteKept(data[at:at+chunk], func([]byte) {})
			}
			if err == nil {
				err = up.Commit(ctx)
			}
			if mode == "reorder" {
				checkStored(t, r, err, data)
				return
			}
			prefix := "host forger-fail: upload "
			if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), ": forged failure (SSH_FX_FAILURE)") {
				t.Fatalf("got %v, want %q…forged failure", err, prefix)
			}
			if _, err := r.Stat(ctx, "f"); err == nil {
				t.Fatal("the final name exists")
			}
		})
	}
}
