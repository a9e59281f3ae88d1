package fsutil

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// PipeSize is what GrowPipe asks for: the most an unprivileged process
// may have by default (/proc/sys/fs/pipe-max-size). bk's stages pass
// 128 KiB units, and SFTP requests of up to 255 KiB go to ssh: a default
// 64 KiB pipe takes them in pieces, with the reader woken for each.
const PipeSize = 1 << 20

// GrowPipe enlarges the pipe that p is an end of to PipeSize, so that a
// writer hands over a whole unit, or several, without waiting for the
// reader: fewer wake-ups and switches on both sides. A pipe that cannot
// grow (a lower limit, or p is no pipe) stays as it is.
func GrowPipe(p syscall.Conn) {
	raw, err := p.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, PipeSize) })
}
