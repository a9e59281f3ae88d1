package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is what growPipes asks for: the most an unprivileged process
// may have (/proc/sys/fs/pipe-max-size). Stages pass 128 KiB units, which
// the default 64 KiB pipe takes in two halves, with the reader woken for
// each.
const pipeSize = 1 << 20

// growPipes enlarges the pipes bk reads from and writes to, so a stage
// writes a whole unit, or several, without waiting for the next one to
// read: fewer wake-ups and switches between the stages. A pipe that cannot
// grow (the limit is lower, or it is no pipe) stays as it is.
func growPipes(files ...any) {
	for _, f := range files {
		f, ok := f.(*os.File)
		if !ok || !isPipe(f) {
			continue
		}
		if raw, err := f.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
		}
	}
}
