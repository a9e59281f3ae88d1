package sftp

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
)

// heldMax bounds the start of a request wholeRequests holds back: the
// header of a write request is about 30 bytes.
const heldMax = 4 << 10

// wholeRequests passes each request on to ssh in one write (a writev on a
// socket): pkg/sftp writes a write request's header and its data apart,
// and ssh would wake for the header alone, and we with it when the socket
// is full. The start of a request, up to heldMax bytes, is held back
// until the rest comes. Our own requests (sendWhole) go in between
// pkg/sftp's.
type wholeRequests struct {
	w       io.WriteCloser
	closing func() // called once the requests end

	mu       sync.Mutex
	boundary sync.Cond // signalled when a request of pkg/sftp's is passed on whole
	held     []byte    // the start of the current request, not passed on yet
	sized    bool      // the current request's length is known
	left     int       // bytes of the current request not seen yet, once sized
	broken   error     // set when a write failed or the requests ended
}

func newWholeRequests(w io.WriteCloser) *wholeRequests {
	wr := &wholeRequests{w: w}
	wr.boundary.L = &wr.mu
	return wr
}

// between reports whether no request of pkg/sftp's is part way through.
func (w *wholeRequests) between() bool { return !w.sized && len(w.held) == 0 }

// sendWhole sends a request of ours in one write, between two of pkg/sftp's.
// A request of pkg/sftp's cut short by a failed write never reaches its
// boundary: the failure, or the end of the requests, ends the wait.
func (w *wholeRequests) sendWhole(parts spans) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.broken == nil && !w.between() {
		w.boundary.Wait()
	}
	if w.broken != nil {
		return w.broken
	}
	if err := writeSpans(w.w, parts); err != nil {
		if !errors.As(err, new(*sourceError)) { // the session stays whole
			w.fail(err)
		}
		return err
	}
	return nil
}

// fail marks the requests broken and wakes whoever waits for a boundary.
func (w *wholeRequests) fail(err error) {
	if w.broken == nil {
		w.broken = err
	}
	w.boundary.Broadcast()
}

func (w *wholeRequests) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() {
		if w.between() {
			w.boundary.Broadcast()
		}
	}()
	if w.broken != nil {
		return 0, w.broken
	}
	n := len(p)
	for len(p) > 0 {
		if !w.sized {
			take := min(4-len(w.held), len(p))
			w.held = append(w.held, p[:take]...)
			p = p[take:]
			if len(w.held) < 4 {
				continue
			}
			w.sized, w.left = true, int(binary.BigEndian.Uint32(w.held))
		}
		take := min(w.left, len(p))
		part := p[:take]
		p = p[take:]
		w.left -= take
		if w.left > 0 && len(w.held)+len(part) <= heldMax {
			w.held = append(w.held, part...)
			continue
		}
		if err := w.send(part); err != nil {
			w.fail(err)
			return 0, err
		}
		w.sized = w.left > 0
	}
	return n, nil
}

// buffersWriter writes several buffers in one call (writev).
type buffersWriter interface {
	WriteBuffers(bufs net.Buffers) error
}

// send passes on what is held and part, in one write where w.w can.
func (w *wholeRequests) send(part []byte) error {
	if len(w.held) == 0 {
		_, err := w.w.Write(part)
		return err
	}
	err := writeBuffers(w.w, net.Buffers{w.held, part})
	w.held = w.held[:0]
	return err
}

// writeBuffers writes bufs to w, in one call where w can.
func writeBuffers(w io.Writer, bufs net.Buffers) error {
	if bw, ok := w.(buffersWriter); ok {
		return bw.WriteBuffers(bufs)
	}
	_, err := bufs.WriteTo(w)
	return err
}

// Close ends the requests: pkg/sftp closes them when its session ends.
func (w *wholeRequests) Close() error {
	err := w.w.Close()
	w.mu.Lock()
	w.fail(io.ErrClosedPipe)
	w.mu.Unlock()
	if w.closing != nil {
		w.closing()
	}
	return err
}
