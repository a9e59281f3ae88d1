//go:build unix && !linux

package sftp

import (
	"io"
	"net"
)

// sessionIO is how the session reads and writes our end of the socket.
func sessionIO(uc *net.UnixConn) (io.Reader, io.WriteCloser, error) {
	return uc, halfClose{uc}, nil
}

// halfClose ends the requests but not the answers: ssh reads the end of
// its input, and the session ends as when its stdin pipe is closed.
type halfClose struct{ *net.UnixConn }

func (h halfClose) Close() error { return h.CloseWrite() }

// WriteBuffers writes bufs in one writev.
func (h halfClose) WriteBuffers(bufs net.Buffers) error {
	_, err := bufs.WriteTo(h.UnixConn)
	return err
}
