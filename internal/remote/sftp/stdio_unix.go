//go:build unix

package sftp

import (
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
)

// sshStdio connects ssh's stdin and stdout to one end of a socket pair,
// as OpenSSH's sftp does, and returns the other end: answers and
// requests, and the end to close once ssh has exited. A full pipe wakes
// its writer each time ssh reads 32 KiB of it (with 255 KiB write
// requests, most writes then wait); a socket wakes it only once ssh has
// read three quarters of what it holds.
//
// Our end's send buffer is sendBuffer, not the default 208 KiB: ssh
// drains it 32 KiB a read, and with the default a 224 KiB write request
// filled it, so that the upload slept and was woken for nearly every
// request (bk-push of a 1-of-1 stream to one host: 11,000 context
// switches a 256 MiB push, 5,000 with 1 MiB, as many as OpenSSH's sftp).
func sshStdio(cmd *exec.Cmd) (answers io.Reader, requests io.WriteCloser, closeAfterStart, closeAfterWait func(), err error) {
	// Close-on-exec under ForkLock, as os.Pipe does where the socket
	// call cannot set it: no other child may inherit either end.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, nil, nil, os.NewSyscallError("socketpair", err)
	}
	child := os.NewFile(uintptr(fds[1]), "ssh stdio")
	ours := os.NewFile(uintptr(fds[0]), "sftp session")
	conn, err := net.FileConn(ours) // a duplicate, on the poller
	_ = ours.Close()
	if err != nil {
		_ = child.Close()
		return nil, nil, nil, nil, err
	}
	uc := conn.(*net.UnixConn)
	// The kernel caps it at net.core.wmem_max; a smaller one only
	// wakes us more often.
	_ = uc.SetWriteBuffer(sendBuffer)
	cmd.Stdin, cmd.Stdout = child, child
	answers, requests, err = sessionIO(uc)
	if err != nil {
		_ = child.Close()
		_ = uc.Close()
		return nil, nil, nil, nil, err
	}
	return answers, requests, func() { _ = child.Close() }, func() { _ = uc.Close() }, nil
}

// sendBuffer is what we ask for as our end's send buffer: a larger one
// (4 MiB, all an upload keeps unacknowledged) made more wake-ups, not
// fewer: the upload then waited for acknowledgements, one at a time.
const sendBuffer = 1 << 20
