package sftp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	psftp "github.com/pkg/sftp"
)

// An upload speaks the few SFTP requests it needs itself (open, write,
// close), from its own goroutine, and takes their answers on the goroutine
// that reads the session for pkg/sftp: pkg/sftp's WriteAt costs a
// goroutine, a channel and a wait for each request of 255 KiB. Everything
// else stays with pkg/sftp. Our requests are numbered from ownIDs up,
// pkg/sftp's from 1 up, so an answer's number says whose it is.
const (
	fxpClose  = 4
	fxpWrite  = 6
	fxpRemove = 13
	fxpHandle = 102
	fxfRead   = 0x01
	fxfWrite  = 0x02
	ownIDs    = 1 << 31
	// maxHandle bounds a handle, as the protocol does.
	maxHandle = 256
)

// errProtocol marks an answer to one of our requests that breaks the
// protocol: the session is given up, and the operation fails, since
// asking the same host again would get the same.
var errProtocol = errors.New("broke the SFTP protocol")

// statusError is a status answer other than OK to one of our requests.
type statusError struct {
	code uint32
	msg  string
}

var statusNames = []string{"SSH_FX_OK", "SSH_FX_EOF", "SSH_FX_NO_SUCH_FILE", "SSH_FX_PERMISSION_DENIED",
	"SSH_FX_FAILURE", "SSH_FX_BAD_MESSAGE", "SSH_FX_NO_CONNECTION", "SSH_FX_CONNECTION_LOST", "SSH_FX_OP_UNSUPPORTED"}

func (e *statusError) Error() string {
	if e.code == 2 || e.code == 3 { // as pkg/sftp says them
		return e.Unwrap().Error()
	}
	name := fmt.Sprintf("status %d", e.code)
	if int(e.code) < len(statusNames) {
		name = statusNames[e.code]
	}
	if e.msg == "" {
		return name
	}
	return fmt.Sprintf("%s (%s)", e.msg, name)
}

func (e *statusError) Unwrap() error {
	switch e.code {
	case 2:
		return os.ErrNotExist
	case 3:
		return os.ErrPermission
	case 6, 7:
		return psftp.ErrSSHFxConnectionLost
	}
	return nil
}

// waiter is a request of ours on its way: a write of a chunk's bytes, or
// a request whose answer someone waits for.
type waiter struct {
	// A write's chunk, and next, the chunk after it when the write runs
	// on into its first bytes (else nil).
	ch, next *chunk
	off      int64 // where the write starts
	answer   chan answer
}

type answer struct {
	typ  byte
	body []byte // after the request number
	err  error
}

// session is the SFTP stream of a connection as our requests see it: the
// requests, shared with pkg/sftp, and the answers to ours, picked out of
// those pkg/sftp reads.
type session struct {
	requests *wholeRequests
	alive    func() // the host answered

	mu      sync.Mutex
	next    uint32
	waiting map[uint32]waiter
	failed  error // once set, the session is over for our requests
}

func newSession(requests *wholeRequests, alive func()) *session {
	return &session{requests: requests, alive: alive, next: ownIDs, waiting: map[uint32]waiter{}}
}

// register numbers a request and files w under the number.
func (s *session) register(w waiter) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return 0, s.failed
	}
	s.next++
	if s.next < ownIDs { // wrapped, after two thousand million requests
		s.next = ownIDs
	}
	s.waiting[s.next] = w
	return s.next, nil
}

// take removes the request id from those on their way, if it is one.
func (s *session) take(id uint32) (waiter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.waiting[id]
	delete(s.waiting, id)
	return w, ok
}

// fail ends the session for our requests: each on its way gets err.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
	}
	waiting := s.waiting
	s.waiting = map[uint32]waiter{}
	s.mu.Unlock()
	for _, w := range waiting {
		w.done(0, nil, err)
	}
}

// done hands w its answer.
func (w waiter) done(typ byte, body []byte, err error) {
	if w.answer != nil {
		w.answer <- answer{typ, body, err}
		return
	}
	if err == nil {
		err = writeStatus(typ, body, w.off)
	}
	for _, ch := range []*chunk{w.ch, w.next} {
		if ch != nil {
			if err != nil {
				ch.fail(err)
			}
			ch.pending.Done()
		}
	}
}

// status is nil for an OK status answer to a request of ours (what, in
// messages: "a write"), else why it failed: a *statusError, or an error
// of errProtocol.
func status(typ byte, body []byte, what string) error {
	if typ != fxpStatus {
		return fmt.Errorf("the host %w: it answered %s with a packet of type %d", errProtocol, what, typ)
	}
	if len(body) < 4 {
		return fmt.Errorf("the host %w: it answered %s with a status of %d bytes", errProtocol, what, len(body))
	}
	st := &statusError{code: binary.BigEndian.Uint32(body)}
	if st.code == 0 {
		return nil
	}
	if rest := body[4:]; len(rest) >= 4 {
		if n := binary.BigEndian.Uint32(rest); uint64(n) <= uint64(len(rest)-4) {
			st.msg = string(rest[4 : 4+n])
		}
	}
	return st
}

// writeStatus is status of the answer to a write at off.
func writeStatus(typ byte, body []byte, off int64) error {
	err := status(typ, body, "a write")
	var st *statusError
	if errors.As(err, &st) {
		return fmt.Errorf("write at byte %d: %w", off, st)
	}
	return err
}

// send numbers a request of type typ, whose body after the number is
// head then data, files w under the number and sends it in one write.
// Bytes of data that cannot be read from their file fail the request, a
// *sourceError: the session goes on.
func (s *session) send(typ byte, w waiter, head []byte, data spans) error {
	id, err := s.register(w)
	if err != nil {
		return err
	}
	var start [9]byte
	binary.BigEndian.PutUint32(start[:], uint32(5+len(head)+data.size()))
	start[4] = typ
	binary.BigEndian.PutUint32(start[5:], id)
	if err := s.requests.sendWhole(append(spans{{b: start[:]}, {b: head}}, data...)); err != nil {
		var src *sourceError
		switch {
		case errors.As(err, &src) && src.sent:
			// Its answer comes, and finds its chunks failed.
			for _, ch := range []*chunk{w.ch, w.next} {
				if ch != nil {
					ch.fail(err)
				}
			}
			return nil
		case src == nil:
			err = fmt.Errorf("%w (%v)", psftp.ErrSSHFxConnectionLost, err)
		}
		if _, ok := s.take(id); ok {
			return err
		}
		// Answered or failed already: the caller hears of it from w.
	}
	return nil
}

// ask sends a request and waits for its answer.
func (s *session) ask(typ byte, head []byte) (answer, error) {
	return s.start(typ, head)()
}

// start sends a request and returns the wait for its answer: the caller
// may send others before it waits, one round trip for all.
func (s *session) start(typ byte, head []byte) func() (answer, error) {
	w := waiter{answer: make(chan answer, 1)}
	if err := s.send(typ, w, head, nil); err != nil {
		return func() (answer, error) { return answer{}, err }
	}
	return func() (answer, error) {
		a := <-w.answer
		return a, a.err
	}
}

// write sends a write of data, then more, at off to the file of handle:
// data is of chunk ch, more of next (nil when more is empty). Both hear
// of its answer; one that cannot be sent fails both at once.
func (s *session) write(handle []byte, off int64, data spans, ch *chunk, more spans, next *chunk) error {
	head := make([]byte, 0, 4+len(handle)+12)
	head = appendString(head, handle)
	head = binary.BigEndian.AppendUint64(head, uint64(off))
	head = binary.BigEndian.AppendUint32(head, uint32(data.size()+more.size()))
	w := waiter{ch: ch, off: off}
	if more.size() > 0 {
		w.next = next
	}
	for _, c := range []*chunk{w.ch, w.next} {
		if c != nil {
			c.pending.Add(1)
		}
	}
	err := s.send(fxpWrite, w, head, slices.Concat(data, more))
	if err != nil {
		for _, c := range []*chunk{w.ch, w.next} {
			if c != nil {
				c.fail(err)
				c.pending.Done()
			}
		}
	}
	return err
}

// open opens name with the SFTP flags pflags, creating it with
// permissions perm (when not 0), and returns its handle.
func (s *session) open(name string, pflags, perm uint32) ([]byte, error) {
	return s.startOpen(name, pflags, perm)()
}

// startOpen is open, sent now, waited for when its result is called.
func (s *session) startOpen(name string, pflags, perm uint32) func() ([]byte, error) {
	head := appendString(nil, []byte(name))
	head = binary.BigEndian.AppendUint32(head, pflags)
	if perm != 0 {
		head = binary.BigEndian.AppendUint32(head, attrPermission)
		head = binary.BigEndian.AppendUint32(head, perm)
	} else {
		head = binary.BigEndian.AppendUint32(head, 0)
	}
	wait := s.start(fxpOpen, head)
	return func() ([]byte, error) { return openAnswer(name, wait) }
}

// openAnswer waits for the answer to an open of name: its handle.
func openAnswer(name string, wait func() (answer, error)) ([]byte, error) {
	a, err := wait()
	if err != nil {
		return nil, err
	}
	if a.typ == fxpStatus {
		err := status(a.typ, a.body, "an open")
		var st *statusError
		if errors.As(err, &st) {
			return nil, fmt.Errorf("open %s: %w", name, st)
		}
		if err != nil {
			return nil, err
		}
	}
	if a.typ != fxpHandle || len(a.body) < 4 {
		return nil, fmt.Errorf("the host %w: it answered an open with a packet of type %d and %d bytes", errProtocol, a.typ, len(a.body))
	}
	n := binary.BigEndian.Uint32(a.body)
	if n == 0 || n > maxHandle || int(n) != len(a.body)-4 {
		return nil, fmt.Errorf("the host %w: it answered an open with a handle of %d bytes in %d", errProtocol, n, len(a.body)-4)
	}
	return a.body[4:], nil
}

// close closes the file of handle.
func (s *session) close(handle []byte) error {
	return s.startClose(handle)()
}

// startClose is close, sent now, waited for when its result is called.
func (s *session) startClose(handle []byte) func() error {
	wait := s.start(fxpClose, appendString(nil, handle))
	return func() error { return statusAnswer(wait, "close") }
}

// statusAnswer waits for the status that answers a request of ours of
// type what ("close").
func statusAnswer(wait func() (answer, error), what string) error {
	a, err := wait()
	if err != nil {
		return err
	}
	err = status(a.typ, a.body, "the "+what)
	var st *statusError
	if errors.As(err, &st) {
		return fmt.Errorf("%s: %w", what, st)
	}
	return err
}

// fsyncExtension is OpenSSH's request to fsync an open file.
const fsyncExtension = "fsync@openssh.com"

// startFsync asks the server to fsync the file of handle (the server
// must offer fsyncExtension); sent now, waited for when its result is
// called.
func (s *session) startFsync(handle []byte) func() error {
	wait := s.start(fxpExtended, appendString(appendString(nil, []byte(fsyncExtension)), handle))
	return func() error { return statusAnswer(wait, "fsync") }
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// sessionReader is what pkg/sftp reads of the session: every packet but the
// answers to our requests, which it hands to their waiters as it meets
// them. It runs on pkg/sftp's reading goroutine, so no goroutine of ours
// waits for answers.
type sessionReader struct {
	r    *bufio.Reader
	s    *session
	left int // bytes of pkg/sftp's current packet not read by it yet
}

// maxOwnAnswer bounds an answer to one of our requests: a status with its
// message, or a handle. It fits the reader's buffer, so it is read in place.
const maxOwnAnswer = 16 << 10

func (a *sessionReader) Read(p []byte) (int, error) {
	for a.left == 0 {
		if err := a.pick(); err != nil {
			if err == io.EOF { // for pkg/sftp as it is: the session ended
				a.s.fail(fmt.Errorf("%w (%v)", psftp.ErrSSHFxConnectionLost, err))
			} else {
				a.s.fail(err)
			}
			return 0, err
		}
	}
	n, err := a.r.Read(p[:min(len(p), a.left)])
	a.left -= n
	if n > 0 {
		a.s.alive()
	}
	if err != nil {
		a.s.fail(fmt.Errorf("%w (%v)", psftp.ErrSSHFxConnectionLost, err))
	}
	return n, err
}

// pick reads the start of the next packet: one answering our request is
// handed on and read whole; one of pkg/sftp's is left for it to read.
func (a *sessionReader) pick() error {
	head, err := a.r.Peek(4)
	if err != nil {
		if len(head) == 0 && errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("%w (%v)", psftp.ErrSSHFxConnectionLost, err)
	}
	a.s.alive()
	size := 4 + int(binary.BigEndian.Uint32(head))
	if size < 9 {
		return fmt.Errorf("the host %w: it sent a packet of %d bytes", errProtocol, size-4)
	}
	head, err = a.r.Peek(9)
	if err != nil {
		return fmt.Errorf("%w (%v)", psftp.ErrSSHFxConnectionLost, err)
	}
	id := binary.BigEndian.Uint32(head[5:])
	if id < ownIDs {
		a.left = size
		return nil
	}
	if size > maxOwnAnswer {
		return fmt.Errorf("the host %w: it sent an answer of %d bytes to request %d", errProtocol, size-4, id)
	}
	w, ok := a.s.take(id)
	if !ok {
		return fmt.Errorf("the host %w: it answered request %d, which is not on its way", errProtocol, id)
	}
	pkt, err := a.r.Peek(size)
	if err != nil {
		err = fmt.Errorf("%w (%v)", psftp.ErrSSHFxConnectionLost, err)
		w.done(0, nil, err)
		return err
	}
	body := pkt[9:]
	if w.answer != nil {
		body = append([]byte(nil), body...) // the reader's buffer is reused
	}
	typ := pkt[4]
	if w.answer == nil {
		if err := writeStatus(typ, body, w.off); errors.Is(err, errProtocol) {
			w.done(0, nil, err)
			return err
		}
	}
	w.done(typ, body, nil)
	_, err = a.r.Discard(size)
	return err
}

// markAlive notes that the host answered now.
func (c *conn) markAlive() { c.alive.Store(time.Now().UnixNano()) }
