// Package sftp is the remote backend for a folder on an SSH host. It runs
// the system ssh client ("ssh [-p port] [-l user] host -s sftp"), so the
// user's ~/.ssh/config, agent, known_hosts, ProxyJump and hardware keys all
// work, and speaks SFTP over its pipes. A dropped connection is re-dialled
// with backoff, and uploads and reads resume where they were.
package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	psftp "github.com/pkg/sftp"

	"github.com/bk-backup/bk/internal/remote"
)

// An upload sends data in chunks of ChunkSize, each written with
// concurrent requests and kept until the server has acknowledged all of
// it, so that it can be sent again after a reconnect. Up to Window chunks
// of together at most Window × ChunkSize bytes are held, the one being
// filled among them: the chunks on their way keep the requests flowing
// while the next one fills, where one chunk at a time left the link idle
// at each chunk's end. Those it is lent (WriteKept) are chunks of their
// own: at large N bk-push lends batches of one frame, and an upload then
// holds Window of them, not 8 MiB of them.
//
// Four chunks (4 MiB) were fewer than ssh, the sshd and the server hold
// on their way: an upload waited for acknowledgements for half of a
// push's time (bk-push of 256 MiB to one loopback host: 160–209 waits of
// 4.7–6.9 s in 9 s, against 5 waits of 0.1–0.3 s with 8), while OpenSSH's
// sftp keeps up to 64 requests of 255 KiB on their way.
const (
	ChunkSize = 1 << 20
	Window    = 8
)

// firstChunk is the first read-ahead of a reader, readAhead its largest.
const (
	firstChunk = 32 << 10
	readAhead  = 4 << 20
)

// chunkAfter is the size of the read-ahead after one of size, on a
// connection whose read requests carry packet bytes: it grows from
// firstChunk to readAhead, so that reading a share's header does not fetch
// megabytes of it, in whole requests once past one: a chunk of 256 KiB
// was a request of 255 KiB and one of 1 KiB.
func chunkAfter(size, packet int) int {
	size = max(min(2*size, readAhead), firstChunk)
	if size > packet {
		size -= size % packet
	}
	return size
}

// SFTP stores files in a folder on an SSH host.
type SFTP struct {
	host   Location
	root   string
	opts   remote.DialOptions
	pauses []time.Duration

	mu     sync.Mutex
	conn   *conn // nil when broken, until the next operation re-dials
	closed bool
	hung   error // set once the host has left a request unanswered: it has failed

	// listed are the sizes of the files the listings showed, by path:
	// a reader reads ahead no further than a byte past the listed end,
	// where its requests beyond it were answered with the end, one each.
	// Only how much is asked at once follows them: a reader reads on to
	// the end the host answers, whatever the listing said.
	listedMu sync.Mutex
	listed   map[string]int64
}

// Dial connects to h, once: a host that can't be reached now is reported
// at once. The folder must exist.
func Dial(ctx context.Context, h Location, opts remote.DialOptions) (*SFTP, error) {
	r := &SFTP{host: h, root: h.Path, opts: opts, pauses: opts.Retry.Pauses()}
	if r.root == "" {
		r.root = "."
	}
	c, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	r.conn = c
	var st os.FileInfo
	err = c.run(func() (err error) {
		st, err = c.c.Stat(r.root)
		return err
	})
	if err == nil && !st.IsDir() {
		err = fmt.Errorf("%s is not a folder", r.root)
	}
	if err != nil {
		c.close()
		c.report(r)
		return nil, fmt.Errorf("host %s: folder %s: %w", r, r.root, err)
	}
	return r, nil
}

func (r *SFTP) String() string { return r.host.String() }

func (r *SFTP) path(name string) string { return path.Join(r.root, name) }

func (r *SFTP) err(err error) error { return remote.HostError(r.String(), err) }

// warn tells the user about something that went wrong on the host but did
// not fail the operation.
func (r *SFTP) warn(format string, args ...any) {
	if r.opts.Warn != nil {
		r.opts.Warn(r.err(fmt.Errorf(format, args...)).Error())
	}
}

// client returns the live connection, dialling a new one if it broke.
func (r *SFTP) client(ctx context.Context) (*conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, os.ErrClosed
	}
	if r.hung != nil {
		return nil, r.hung
	}
	if r.conn == nil {
		c, err := r.dial(ctx)
		if err != nil {
			return nil, err
		}
		r.conn = c
	}
	return r.conn, nil
}

// broken drops c, unless another caller has replaced it already, and
// returns why it broke.
func (r *SFTP) broken(c *conn, err error) string {
	r.mu.Lock()
	if r.conn == c {
		r.conn = nil
	}
	r.mu.Unlock()
	c.close()
	return c.reason(err)
}

// do runs op on a live connection; when the connection is lost it
// re-dials after each pause and runs op again. op gets the connection so
// it can tell whether its file handles belong to it. When op succeeds after
// a reconnect, the user is told once, with done saying what went on
// ("upload of x resumed at byte 4194304"). A host that stops answering
// for the timeout has failed: it is not dialled again, and what is left
// there CleanTemp removes later.
func (r *SFTP) do(ctx context.Context, pauses []time.Duration, done string, op func(c *conn) error) error {
	return r.doSaying(ctx, pauses, func() string { return done }, op)
}

// doSaying is do, with what went on known only once op has succeeded.
func (r *SFTP) doSaying(ctx context.Context, pauses []time.Duration, done func() string, op func(c *conn) error) error {
	var lost []string // why each connection was lost
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := r.client(ctx)
		if err == nil {
			err = c.run(func() error { return op(c) })
			if !c.lost(err) {
				if err == nil && len(lost) > 0 {
					r.warn("connection lost (%s); reconnected, %s", strings.Join(lost, "; "), done())
				}
				return err
			}
			why := r.broken(c, err)
			if c.timedOut.Load() {
				r.mu.Lock()
				r.hung = c.timeoutError()
				r.mu.Unlock()
				return r.hung
			}
			lost = append(lost, why)
			err = fmt.Errorf("connection lost: %s", why)
		}
		if errors.Is(err, os.ErrClosed) || errors.Is(err, errTimeout) || attempt >= len(pauses) {
			if attempt > 0 {
				return fmt.Errorf("%w (gave up after %d reconnects)", err, attempt)
			}
			return err
		}
		select {
		case <-time.After(pauses[attempt]):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ready checks a name with check.
func (r *SFTP) ready(check func(string) error, name string) error {
	return r.err(check(name))
}

// Create implements remote.Remote.
func (r *SFTP) Create(ctx context.Context, name string) (remote.Upload, error) {
	if err := r.ready(remote.CheckNewName, name); err != nil {
		return nil, err
	}
	u := &upload{r: r, final: r.path(name), sum: remote.VerifyHash(r.opts)}
	err := r.do(ctx, r.pauses, "upload of "+u.final+" started", func(c *conn) error {
		// A fresh name each try: an earlier try may have made its file.
		u.tmp = r.path(remote.TempName(name))
		h, err := r.createTemp(c, u.tmp)
		if errors.Is(err, os.ErrNotExist) { // its folder, made only now: a round trip less for every file in place
			if err := c.c.MkdirAll(path.Dir(u.final)); err != nil {
				return err
			}
			h, err = r.createTemp(c, u.tmp)
		}
		if err != nil {
			return err
		}
		u.handle, u.fc = h, c
		return nil
	})
	if err != nil {
		return nil, r.err(fmt.Errorf("create %s: %w", name, err))
	}
	return u, nil
}

// createTemp creates the temp file tmp, open for writing. On an
// append-only host it is read-only from its creation: the account may
// not chmod it later. Elsewhere it is private like the local backend's
// also where the server takes no permissions with an open, by a chmod
// sent with the open, in its round trip; one that can't chmod still
// stores the file.
func (r *SFTP) createTemp(c *conn, tmp string) ([]byte, error) {
	if r.opts.AppendOnly {
		return c.s.open(tmp, fxfWrite|fxfCreat|fxfExcl, 0o444)
	}
	opened := c.s.startOpen(tmp, fxfWrite|fxfCreat|fxfExcl, 0o600)
	chmodErr := c.c.Chmod(tmp, 0o600)
	h, err := opened()
	if err == nil && c.lost(chmodErr) {
		return nil, chmodErr
	}
	return h, err
}

// upload sends data in chunks, several on their way at once, and keeps
// each until it is acknowledged.
type upload struct {
	r     *SFTP
	tmp   string
	final string

	handle  []byte   // of the temp file, open for writing on fc
	fc      *conn    // the connection handle belongs to
	sent    []*chunk // on their way, in order from acked
	unacked int64    // the bytes of sent
	buf     []byte   // being filled: the bytes after those sent
	ranges  spans    // or the ranges of files after those sent, with WriteRange
	spare   [][]byte // buffers of acknowledged chunks, for the next ones
	acked   int64
	// tail is the last chunk sent while its last bytes, fewer than a
	// request holds, wait to go with the next chunk's first ones: the
	// requests are then whole packets whatever the chunks' sizes, as
	// OpenSSH's sftp sends them (a chunk of seven frames of 128 KiB went
	// as four requests, not three and a half). tailAt is where they start.
	tail    *chunk
	tailAt  int
	resumed int64     // where the resend after a reconnect started, or -1
	sum     hash.Hash // of all that was written, with Verify; else nil
	err     error     // sticky: after a failure the upload is given up
	linked  bool      // the final name exists
	done    bool      // committed or aborted
}

// chunk is a write on its way: a request of at most the connection's
// packet size each.
type chunk struct {
	data spans
	size int // of data
	off  int64
	// buf holds data, unless data is of files; release takes it back once
	// it is acknowledged: the caller's, lent with WriteKept; nil for the
	// upload's own buffers.
	buf     []byte
	release func([]byte)
	c       *conn          // the connection it was sent on
	pending sync.WaitGroup // of its requests until answered, or c failed
	mu      sync.Mutex
	err     error // of the first request that failed
}

// fail records err, unless a request failed before.
func (ch *chunk) fail(err error) {
	ch.mu.Lock()
	if ch.err == nil {
		ch.err = err
	}
	ch.mu.Unlock()
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, u.r.err(os.ErrClosed)
	}
	if u.err != nil {
		return 0, u.err
	}
	if len(u.ranges) > 0 {
		if err := u.flush(context.Background()); err != nil {
			return 0, err
		}
	}
	n := 0
	for len(p) > 0 {
		if u.buf == nil {
			u.buf = u.newBuffer(len(p))
		}
		take := min(len(p), ChunkSize-len(u.buf))
		u.buf = append(u.buf, p[:take]...)
		if u.sum != nil {
			u.sum.Write(p[:take])
		}
		p, n = p[take:], n+take
		if len(u.buf) == ChunkSize {
			if err := u.flush(context.Background()); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// WriteKept implements remote.Keeper: p is sent as a chunk of its own,
// after the bytes Write has gathered.
func (u *upload) WriteKept(p []byte, release func([]byte)) error {
	if u.done {
		return u.r.err(os.ErrClosed)
	}
	if u.err != nil {
		return u.err
	}
	if err := u.flush(context.Background()); err != nil {
		return err
	}
	if u.sum != nil {
		u.sum.Write(p)
	}
	return u.send(context.Background(), memChunk(p, release))
}

// WriteRange implements remote.RangeWriter: the n bytes of f from off
// go after the bytes written before, gathered with the ranges next to
// them into chunks of ChunkSize. With Verify, which hashes what is sent,
// they are read and written.
func (u *upload) WriteRange(f *os.File, off int64, n int) error {
	if u.done {
		return u.r.err(os.ErrClosed)
	}
	if u.err != nil {
		return u.err
	}
	if u.sum != nil {
		b, err := span{f: f, off: off, n: n}.read()
		if err != nil {
			u.err = u.r.err(err)
			return u.err
		}
		_, err = u.Write(b)
		return err
	}
	if len(u.buf) > 0 {
		if err := u.flush(context.Background()); err != nil {
			return err
		}
	}
	u.ranges = append(u.ranges, span{f: f, off: off, n: n})
	if u.ranges.size() >= ChunkSize {
		return u.flush(context.Background())
	}
	return nil
}

// newBuffer returns a buffer for a chunk, to hold size bytes first: a
// spare one, or a new one of that size, which append grows up to a
// chunk's (a small file costs no MiB of memory to clear).
func (u *upload) newBuffer(size int) []byte {
	if k := len(u.spare); k > 0 {
		b := u.spare[k-1]
		u.spare = u.spare[:k-1]
		return b
	}
	return make([]byte, 0, min(size, ChunkSize))
}

// file returns a handle to the temp file on connection c, reopening it
// after a reconnect (without creating it: if it vanished, the upload
// fails). On an append-only host the temp file is read-only and cannot be
// reopened: the upload goes on in a new one.
func (u *upload) file(c *conn) ([]byte, error) {
	if u.fc == c {
		return u.handle, nil
	}
	if u.r.opts.AppendOnly {
		return u.restart(c)
	}
	h, err := c.s.open(u.tmp, fxfWrite, 0)
	if err != nil {
		return nil, err
	}
	u.handle, u.fc = h, c
	return h, nil
}

// restart moves the upload to a new temp file on c, holding the
// acknowledged bytes of the old one, read back from the host. The old one
// stays behind, a leftover for bk-prune with the admin hosts file.
func (u *upload) restart(c *conn) ([]byte, error) {
	tmp := remote.TempName(u.final)
	h, err := c.s.open(tmp, fxfWrite|fxfCreat|fxfExcl, 0o444)
	if err != nil {
		return nil, err
	}
	src, err := c.c.Open(u.tmp)
	if err == nil {
		err = copyAcked(c, h, src, u.acked)
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s: %w: it holds fewer bytes than the host acknowledged (%d)", u.tmp, errSize, u.acked)
		}
		_ = src.Close()
	}
	if err != nil {
		_ = c.s.close(h)
		return nil, err
	}
	u.tmp, u.handle, u.fc = tmp, h, c
	return h, nil
}

// copyAcked writes the first n bytes of src to the file of handle h on c,
// a chunk at a time.
func copyAcked(c *conn, h []byte, src io.Reader, n int64) error {
	buf := make([]byte, ChunkSize)
	for off := int64(0); off < n; {
		got, err := io.ReadFull(src, buf[:min(int64(len(buf)), n-off)])
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		if err != nil {
			return err
		}
		ch := memChunk(buf[:got], nil)
		ch.off = off
		startChunk(ch, h, c)
		ch.pending.Wait()
		if ch.err != nil {
			return ch.err
		}
		off += int64(got)
	}
	return nil
}

// memChunk is a chunk of the bytes of buf.
func memChunk(buf []byte, release func([]byte)) *chunk {
	return &chunk{data: spans{{b: buf}}, size: len(buf), buf: buf, release: release}
}

// flush sends the bytes Write has gathered, or the ranges WriteRange has.
func (u *upload) flush(ctx context.Context) error {
	switch {
	case len(u.buf) > 0:
		data := u.buf
		u.buf = nil
		return u.send(ctx, memChunk(data, nil))
	case len(u.ranges) > 0:
		ch := &chunk{data: u.ranges, size: u.ranges.size()}
		u.ranges = nil
		return u.send(ctx, ch)
	}
	return nil
}

// send puts ch on its way, then waits until there is room to fill
// another chunk: at most Window-1 chunks on their way.
func (u *upload) send(ctx context.Context, ch *chunk) error {
	if ch.size > 0 {
		ch.off = u.acked + u.unacked
		u.sent = append(u.sent, ch)
		u.unacked += int64(ch.size)
		u.start(ch)
	}
	return u.settle(ctx, Window-1)
}

// start sends ch in requests of the connection's packet size, the first
// of them carrying the tail's bytes before ch's; what is left of ch, less
// than a packet, becomes the tail. A request that fails has failed its
// chunks (session.write).
func (u *upload) start(ch *chunk) {
	c, h := u.fc, u.handle
	ch.c, ch.err = c, nil
	at := 0
	err := c.run(func() error {
		if t := u.tail; t != nil {
			u.tail = nil
			rest := t.data.slice(u.tailAt, t.size)
			at = min(ch.size, c.packet-(t.size-u.tailAt))
			if err := c.s.write(h, t.off+int64(u.tailAt), rest, t, ch.data.slice(0, at), ch); err != nil {
				return err
			}
		}
		for ; ch.size-at >= c.packet; at += c.packet {
			if err := c.s.write(h, ch.off+int64(at), ch.data.slice(at, at+c.packet), ch, nil, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && at < ch.size {
		u.tail, u.tailAt = ch, at
	}
}

// sendTail sends the tail's bytes on their own: its chunk is waited for.
func (u *upload) sendTail() {
	t := u.tail
	u.tail = nil
	c := u.fc
	_ = c.run(func() error {
		return c.s.write(u.handle, t.off+int64(u.tailAt), t.data.slice(u.tailAt, t.size), t, nil, nil)
	})
}

// startChunk sends ch whole to the file of handle h on connection c, as a
// resend after a reconnect or a copy does, in requests of equal size (a
// chunk of 4 packets and a few bytes is not sent as 4 and a small one);
// their answers come on the connection's reader, and a request that fails
// has failed ch (session.write).
func startChunk(ch *chunk, h []byte, c *conn) {
	ch.c, ch.err = c, nil
	requests := (ch.size + c.packet - 1) / c.packet
	size := (ch.size + requests - 1) / requests
	_ = c.run(func() error {
		for at := 0; at < ch.size; at += size {
			if err := c.s.write(h, ch.off+int64(at), ch.data.slice(at, min(at+size, ch.size)), ch, nil, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// settle waits until at most keep chunks, of at most keep × ChunkSize
// bytes, are on their way. After a reconnect it sends again every chunk
// not acknowledged, since the server may have stored any part of them.
func (u *upload) settle(ctx context.Context, keep int) error {
	over := func() bool { return len(u.sent) > keep || u.unacked > int64(keep)*ChunkSize }
	if !over() {
		return nil
	}
	resumed := func() string {
		at := u.resumed
		if at < 0 { // nothing was lost with the connection
			at = u.acked
		}
		return fmt.Sprintf("upload of %s resumed at byte %d", u.final, at)
	}
	err := u.r.doSaying(ctx, u.r.pauses, resumed, func(c *conn) error {
		u.resumed = -1
		for over() {
			ch := u.sent[0]
			if ch == u.tail {
				u.sendTail()
			}
			ch.pending.Wait()
			if ch.err == nil {
				u.sent = u.sent[1:]
				u.acked += int64(ch.size)
				u.unacked -= int64(ch.size)
				switch {
				case ch.release != nil:
					ch.release(ch.buf)
				case ch.buf != nil:
					u.spare = append(u.spare, ch.buf[:0])
				}
				continue
			}
			u.drain()
			if ch.c == c || !ch.c.lost(ch.err) {
				return ch.err // a refusal fails the upload, a loss re-dials
			}
			// Lost with an earlier connection: all again on this one.
			h, err := u.file(c)
			if err != nil {
				return err
			}
			u.resumed = u.acked
			u.tail = nil
			for _, ch := range u.sent {
				startChunk(ch, h, c)
			}
		}
		return nil
	})
	if err != nil {
		u.err = u.r.err(fmt.Errorf("upload %s: %w", u.tmp, err))
		return u.err
	}
	return nil
}

// drain waits for every chunk on its way to be answered or lost.
func (u *upload) drain() {
	for _, ch := range u.sent {
		ch.pending.Wait()
	}
}

var errSize = errors.New("stored size differs")

func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return u.r.err(os.ErrClosed)
	}
	if u.err != nil {
		return u.err
	}
	if err := u.flush(ctx); err != nil {
		return err
	}
	if err := u.settle(ctx, 0); err != nil {
		return err
	}
	u.spare = nil
	err := u.r.do(ctx, u.r.pauses, "upload of "+u.final+" checked", u.checkSize)
	if err != nil {
		u.err = u.r.err(err)
		return u.err
	}
	if u.r.opts.Verify {
		if err := u.verify(ctx); err != nil {
			u.err = err
			return err
		}
	}
	tried := false
	err = u.r.do(ctx, u.r.pauses, "upload of "+u.final+" committed", func(c *conn) error {
		err := u.moveIntoPlace(c, tried)
		tried = true
		return err
	})
	if err != nil {
		u.err = u.r.err(err)
		return u.err
	}
	u.done = true
	return nil
}

// minFsyncRate is the slowest a host's disk is taken to write out a file
// it is asked to fsync, in bytes a second: the wait for the fsync may
// exceed the timeout by the time a disk this slow takes for the whole
// file, or for maxFsyncCached of it: a host caches no more than a share
// of its memory, and a host that never answers is given up within 35
// minutes past the timeout, however large the file.
const (
	minFsyncRate   = 16 << 20
	maxFsyncCached = 32 << 30
)

// fsyncSlack is how much longer than the timeout the fsync of a file of
// size bytes may take.
func fsyncSlack(size int64) time.Duration {
	return time.Duration(min(size, maxFsyncCached)/minFsyncRate+1) * time.Second
}

// checkSize makes the temp file durable (fsync@openssh.com, unless the
// host is fsync=no, its server does not offer it or it is a test file),
// closes it and checks that it holds all that was written.
//
// The fsync, the close and the stat go at once, in one round trip: the
// server answers them in order.
func (u *upload) checkSize(c *conn) error {
	_, canSync := c.c.HasExtension(fsyncExtension)
	sync := canSync && !u.r.opts.NoFsync && !remote.IsProbe(path.Base(u.final))
	open, handle := u.fc == c, u.handle
	if sync && !open {
		// Closed with a lost connection: a handle to read the file by
		// serves the fsync (on an append-only host no file opens for
		// writing again).
		h, err := c.s.open(u.tmp, fxfRead, 0)
		if err != nil {
			return err
		}
		open, handle = true, h
	}
	synced, closed := func() error { return nil }, func() error { return nil }
	if open {
		if sync {
			// The host first writes out what it holds of the file, which
			// may take longer than the timeout.
			extra := int64(fsyncSlack(u.acked))
			c.slack.Add(extra)
			defer c.slack.Add(-extra)
			synced = c.s.startFsync(handle)
		}
		closed = c.s.startClose(handle)
	}
	st, err := c.c.Stat(u.tmp)
	syncErr, closeErr := synced(), closed()
	if syncErr != nil {
		return syncErr
	}
	if closeErr != nil {
		return closeErr
	}
	if open {
		u.fc = nil
	}
	if err != nil {
		return err
	}
	if st.Size() != u.acked {
		return fmt.Errorf("%s: %w: stored %d bytes, wrote %d", u.tmp, errSize, st.Size(), u.acked)
	}
	return nil
}

// verify reads the temp file back, resuming after a reconnect as reads
// do, and compares it with what was written; one that differs is removed
// at once. Its errors name the host already, as the reader's do.
func (u *upload) verify(ctx context.Context) error {
	rd := &reader{r: u.r, name: u.tmp, ctx: ctx}
	defer rd.Close()
	h := remote.NewHash()
	if _, err := io.Copy(h, rd); err != nil {
		return err
	}
	if remote.SumOf(h) == remote.SumOf(u.sum) {
		return nil
	}
	if u.r.opts.AppendOnly {
		return u.r.err(fmt.Errorf("%s: %w (left as %s)", u.final, remote.ErrChanged, u.tmp))
	}
	err := u.r.do(ctx, u.r.pauses, "removed "+u.tmp, func(c *conn) error { return c.c.Remove(u.tmp) })
	if err != nil {
		return u.r.err(fmt.Errorf("%s: %w, and removing it failed: %v", u.final, remote.ErrChanged, err))
	}
	return u.r.err(fmt.Errorf("%s: %w", u.final, remote.ErrChanged))
}

// moveIntoPlace gives the temp file its name without ever replacing a file,
// then removes the temp name. retry says an earlier try was cut off.
func (u *upload) moveIntoPlace(c *conn, retry bool) error {
	if !u.linked {
		err := u.link(c)
		if err != nil {
			if c.lost(err) || !exists(c, u.final) {
				return err
			}
			// The name is taken: by another file, or by ours if an
			// earlier try was cut off after linking.
			if !retry || !sizeIs(c, u.final, u.acked) {
				return fmt.Errorf("%s: %w", u.final, remote.ErrExist)
			}
		}
		u.linked = true
	}
	if u.r.opts.AppendOnly {
		return nil // the temp name stays: a second name of the file, costing no space
	}
	// The temp name's removal is sent, not waited for: a commit to a
	// distant host takes a round trip fewer. A temp name left (its removal
	// refused, the connection lost first) is hidden and harmless, a second
	// name of the file, and removed once stale; after a rename it is gone
	// already.
	c.s.start(fxpRemove, appendString(nil, []byte(u.tmp)))
	return nil
}

// link makes the final name: hardlink@openssh.com fails if the name is
// taken, on any server. Where the file system has no hard links, plain SFTP
// rename does the same on OpenSSH and as the protocol demands; never
// posix-rename, which replaces.
//
// A server may answer the hard link and make nothing (rclone serve sftp
// does), and the temp name's removal would then lose the file: the final
// name is looked at first, a round trip, and a rename tried where it is
// not there.
func (u *upload) link(c *conn) error {
	_, ok := c.c.HasExtension("hardlink@openssh.com")
	if u.r.opts.AppendOnly {
		// A rename would need a host that allows moving files away.
		if !ok {
			return errors.New("the host does not offer hard links (hardlink@openssh.com), which an append-only host needs")
		}
		err := c.c.Link(u.tmp, u.final)
		if err != nil && !c.lost(err) && !exists(c, u.final) {
			return fmt.Errorf("hard link %s to %s: %w", u.tmp, u.final, err)
		}
		if err == nil && !sizeIs(c, u.final, u.acked) {
			return fmt.Errorf("the host answered the hard link of %s to %s but made no such file", u.tmp, u.final)
		}
		return err
	}
	if ok {
		err := c.c.Link(u.tmp, u.final)
		switch {
		case err == nil && sizeIs(c, u.final, u.acked):
			return nil
		case err != nil && (c.lost(err) || exists(c, u.final)):
			return err
		}
	}
	return c.c.Rename(u.tmp, u.final)
}

func sizeIs(c *conn, name string, size int64) bool {
	st, err := c.c.Stat(name)
	return err == nil && st.Size() == size
}

func exists(c *conn, name string) bool {
	_, err := c.c.Lstat(name)
	return err == nil
}

func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	u.buf, u.spare = nil, nil
	// One quick try: a dead host should not hold up the clean-up of the
	// others. What is left, CleanTemp removes later; on an append-only
	// host the temp file stays, for bk-prune with the admin hosts file.
	err := u.r.do(context.Background(), []time.Duration{0}, "removed "+u.tmp, func(c *conn) error {
		if u.fc == c {
			_ = c.s.close(u.handle)
			u.fc = nil
		}
		if u.r.opts.AppendOnly {
			return nil
		}
		return c.c.Remove(u.tmp)
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return u.r.err(err)
	}
	return nil
}

// Open implements remote.Remote.
func (r *SFTP) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	if err := r.ready(remote.CheckName, name); err != nil {
		return nil, err
	}
	rd := &reader{r: r, name: r.path(name), off: offset, listed: r.listedSize(r.path(name))}
	err := r.do(ctx, r.pauses, "opened "+rd.name, func(c *conn) error {
		_, err := rd.file(c)
		return err
	})
	if err != nil {
		return nil, r.err(err)
	}
	return rd, nil
}

// reader reads ahead in chunks with concurrent requests, and resumes at
// its offset after a reconnect. Its ReadAt lets bk-join fetch the few
// bytes it needs of a share without downloading the rest.
type reader struct {
	r    *SFTP
	ctx  context.Context // nil: reads outlive the Open call
	name string
	off  int64 // of the end of buf
	mu   sync.Mutex
	f    *psftp.File // of connection fc, or nil after Close
	fc   *conn
	buf  []byte
	pos  int // read so far from buf
	eof  bool
	// chunk is the size of the last read-ahead; listed the file's size
	// as listed, or -1 (SFTP.listed).
	chunk  int
	listed int64
}

// packet is what a read request carries on the reader's connection.
func (rd *reader) packet() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.fc == nil {
		return defaultPacket
	}
	return rd.fc.packet
}

func (rd *reader) file(c *conn) (*psftp.File, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.fc == c {
		if rd.f == nil {
			return nil, os.ErrClosed
		}
		return rd.f, nil
	}
	f, err := c.c.Open(rd.name)
	if err != nil {
		return nil, err
	}
	rd.f, rd.fc = f, c
	return f, nil
}

// readAt reads len(p) bytes at off, or up to the end of the file, from
// the connection that is live, again after a reconnect.
func (rd *reader) readAt(p []byte, off int64) (int, error) {
	ctx := rd.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var n int
	err := rd.r.do(ctx, rd.r.pauses, fmt.Sprintf("read of %s resumed at byte %d", rd.name, off), func(c *conn) error {
		f, err := rd.file(c)
		if err != nil {
			return err
		}
		n, err = f.ReadAt(p, off)
		return err
	})
	if errors.Is(err, io.EOF) {
		return n, io.EOF
	}
	if err != nil {
		return n, rd.r.err(fmt.Errorf("read %s: %w", rd.name, err))
	}
	return n, nil
}

// ReadAt implements io.ReaderAt; it is safe for concurrent use, and
// apart from Read.
func (rd *reader) ReadAt(p []byte, off int64) (int, error) {
	return rd.readAt(p, off)
}

func (rd *reader) Read(p []byte) (int, error) {
	if rd.pos == len(rd.buf) {
		if rd.eof {
			return 0, io.EOF
		}
		rd.chunk = chunkAfter(rd.chunk, rd.packet())
		if rd.listed >= rd.off {
			rd.chunk = int(min(int64(rd.chunk), rd.listed-rd.off+1))
		}
		if cap(rd.buf) < rd.chunk {
			rd.buf = make([]byte, rd.chunk)
		}
		n, err := rd.readAt(rd.buf[:rd.chunk], rd.off)
		if errors.Is(err, io.EOF) {
			rd.eof, err = true, nil
		}
		if err != nil {
			return 0, err
		}
		rd.buf, rd.pos, rd.off = rd.buf[:n], 0, rd.off+int64(n)
		if n == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, rd.buf[rd.pos:])
	rd.pos += n
	return n, nil
}

func (rd *reader) Close() error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.f != nil {
		_ = rd.f.Close()
		rd.f = nil
	}
	return nil
}

// Stat implements remote.Remote.
func (r *SFTP) Stat(ctx context.Context, name string) (remote.Info, error) {
	if err := r.ready(remote.CheckName, name); err != nil {
		return remote.Info{}, err
	}
	var st os.FileInfo
	err := r.do(ctx, r.pauses, "checked "+r.path(name), func(c *conn) (err error) {
		st, err = c.c.Stat(r.path(name))
		return err
	})
	if err != nil {
		return remote.Info{}, r.err(fmt.Errorf("stat %s: %w", name, err))
	}
	return remote.Info{Name: name, Size: st.Size(), ModTime: st.ModTime(), Dir: st.IsDir()}, nil
}

// List implements remote.Remote.
func (r *SFTP) List(ctx context.Context, dir string) ([]remote.Info, error) {
	return r.list(ctx, dir, false)
}

// ListTemp implements remote.Remote.
func (r *SFTP) ListTemp(ctx context.Context, dir string) ([]remote.Info, error) {
	return r.list(ctx, dir, true)
}

// ListBoth implements remote.BothLister: one listing serves both, where
// List and ListTemp each cost an opendir, the readdirs and a close, every
// run of a tool that reads the catalog.
func (r *SFTP) ListBoth(ctx context.Context, dir string) (files, leftovers []remote.Info, err error) {
	infos, err := r.listAll(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	return remote.Filter(infos, false), remote.Filter(infos, true), nil
}

func (r *SFTP) list(ctx context.Context, dir string, temp bool) ([]remote.Info, error) {
	infos, err := r.listAll(ctx, dir)
	if err != nil {
		return nil, err
	}
	return remote.Filter(infos, temp), nil
}

// listAll lists the files and folders of dir, temp files among them.
func (r *SFTP) listAll(ctx context.Context, dir string) ([]remote.Info, error) {
	if err := r.ready(remote.CheckDir, dir); err != nil {
		return nil, err
	}
	var entries []os.FileInfo
	err := r.do(ctx, r.pauses, "listed "+r.path(dir), func(c *conn) (err error) {
		entries, err = c.c.ReadDirContext(ctx, r.path(dir))
		return err
	})
	if err != nil {
		return nil, r.err(fmt.Errorf("list %s: %w", r.path(dir), err))
	}
	infos := make([]remote.Info, 0, len(entries))
	r.listedMu.Lock()
	if r.listed == nil {
		r.listed = map[string]int64{}
	}
	for _, st := range entries {
		if st.Mode().IsRegular() || st.IsDir() {
			infos = append(infos, remote.Info{Name: st.Name(), Size: st.Size(), ModTime: st.ModTime(), Dir: st.IsDir()})
		}
		if st.Mode().IsRegular() {
			r.listed[path.Join(r.path(dir), st.Name())] = st.Size()
		}
	}
	r.listedMu.Unlock()
	return infos, nil
}

// listedSize is the size the last listing showed of the file at p, or -1.
func (r *SFTP) listedSize(p string) int64 {
	r.listedMu.Lock()
	defer r.listedMu.Unlock()
	if size, ok := r.listed[p]; ok {
		return size
	}
	return -1
}

// Remove implements remote.Remote.
func (r *SFTP) Remove(ctx context.Context, name string) error {
	if err := r.ready(remote.CheckName, name); err != nil {
		return err
	}
	err := r.do(ctx, r.pauses, "removed "+r.path(name), func(c *conn) error { return c.c.Remove(r.path(name)) })
	if err != nil {
		return r.err(fmt.Errorf("remove %s: %w", name, err))
	}
	return nil
}

// Free implements remote.Remote with statvfs@openssh.com: the space left
// to unprivileged users of the folder's file system.
func (r *SFTP) Free(ctx context.Context) (int64, error) {
	var free int64
	err := r.do(ctx, r.pauses, "read the free space", func(c *conn) error {
		st, err := statVFS(c, r.root)
		if err != nil {
			return err
		}
		free = int64(st.Bavail * st.Frsize)
		return nil
	})
	return free, r.err(err)
}

// statVFS asks for statvfs@openssh.com of p: remote.ErrUnknownSpace where
// the server does not offer it, or offers it and then refuses it as
// unsupported (rclone serve sftp does).
func statVFS(c *conn, p string) (*psftp.StatVFS, error) {
	if _, ok := c.c.HasExtension("statvfs@openssh.com"); !ok {
		return nil, remote.ErrUnknownSpace
	}
	st, err := c.c.StatVFS(p)
	var status *psftp.StatusError
	if errors.As(err, &status) && status.FxCode() == psftp.ErrSSHFxOpUnsupported {
		return nil, remote.ErrUnknownSpace
	}
	return st, err
}

// CanFsync implements remote.Syncer: whether the server offers
// fsync@openssh.com, as its version answer says (no round trip).
func (r *SFTP) CanFsync(ctx context.Context) (bool, error) {
	var can bool
	err := r.do(ctx, r.pauses, "asked about fsync", func(c *conn) error {
		_, can = c.c.HasExtension(fsyncExtension)
		return nil
	})
	return can, r.err(err)
}

// FileSystem implements remote.FileSystemer with the file system ID that
// statvfs@openssh.com reports, which only means something on one machine:
// the name holds the host's too. A host by two names is two file systems
// here (the preflight's test file finds one folder by two names).
func (r *SFTP) FileSystem(ctx context.Context) (string, error) {
	var id uint64
	err := r.do(ctx, r.pauses, "read the file system", func(c *conn) error {
		st, err := statVFS(c, r.root)
		if errors.Is(err, remote.ErrUnknownSpace) {
			return nil
		}
		if err != nil {
			return err
		}
		id = st.Fsid
		return nil
	})
	if err != nil || id == 0 {
		return "", r.err(err)
	}
	return fmt.Sprintf("sftp:%s@%s:%x", r.host.User, r.host, id), nil
}

// Close ends the connection.
func (r *SFTP) Close() error {
	r.mu.Lock()
	c := r.conn
	r.conn, r.closed = nil, true
	r.mu.Unlock()
	if c != nil {
		c.close()
		c.report(r)
	}
	return nil
}

// ProbeAppendOnly implements remote.AppendOnlyProber. It creates a test
// file of its own (read-only, on an append-only host) and tries on it
// what an intruder would try on a backup: open it for writing, truncate
// it, chmod it, rename it, remove it. A host that refuses all of them and
// offers hard links is append-only. The test file stays behind on such a
// host, a leftover among the temp files.
func (r *SFTP) ProbeAppendOnly(ctx context.Context) ([]string, error) {
	var allowed []string
	err := r.do(ctx, r.pauses, "probed the host", func(c *conn) error {
		allowed = nil
		if _, ok := c.c.HasExtension("hardlink@openssh.com"); !ok {
			return errors.New("the host does not offer hard links (hardlink@openssh.com), which an append-only host needs")
		}
		name := r.path(remote.ProbePrefix + hexRandom())
		f, err := c.c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create a test file: %w", err)
		}
		_, err = f.Write([]byte("bk append-only test file\n"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		try := func(what string, op func() error) error {
			err := op()
			if c.lost(err) {
				return err
			}
			if err == nil {
				allowed = append(allowed, what)
			}
			return nil
		}
		steps := []struct {
			what string
			op   func() error
		}{
			{"overwrite", func() error {
				f, err := c.c.OpenFile(name, os.O_WRONLY)
				if err == nil {
					_ = f.Close()
				}
				return err
			}},
			{"truncate", func() error { return c.c.Truncate(name, 1) }},
			{"chmod", func() error { return c.c.Chmod(name, 0o644) }},
			{"rename", func() error {
				moved := r.path(remote.ProbePrefix + hexRandom())
				err := c.c.Rename(name, moved)
				if err == nil {
					name = moved
				}
				return err
			}},
			{"remove", func() error { return c.c.Remove(name) }},
		}
		for _, s := range steps {
			if err := try(s.what, s.op); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, r.err(fmt.Errorf("append-only probe: %w", err))
	}
	return allowed, nil
}

func hexRandom() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
