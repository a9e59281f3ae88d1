package sftp

import (
	"encoding/binary"
	"io"
	"net"
)

// heldMax bounds the start of a request wholeRequests holds back: the
// header of a write request is about 30 bytes.
const heldMax = 4 << 10

// wholeRequests passes each request on to ssh in one write (a writev on a
// socket): pkg/sftp writes a write request's header and its data apart,
// and ssh would wake for the header alone, and we with it when the socket
// is full. The start of a request, up to heldMax bytes, is held back
// until the rest comes.
type wholeRequests struct {
	w     io.WriteCloser
	held  []byte // the start of the current request, not passed on yet
	sized bool   // the current request's length is known
	left  int    // bytes of the current request not seen yet, once sized
}

func (w *wholeRequests) Write(p []byte) (int, error) {
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
	bufs := net.Buffers{w.held, part}
	var err error
	if bw, ok := w.w.(buffersWriter); ok {
		err = bw.WriteBuffers(bufs)
	} else {
		_, err = bufs.WriteTo(w.w)
	}
	w.held = w.held[:0]
	return err
}

func (w *wholeRequests) Close() error { return w.w.Close() }
