package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bk-backup/bk/internal/fsutil"
)

// growPipes enlarges the pipes a tool reads from and writes to
// (fsutil.GrowPipe), so that a stage writes a whole unit, or several,
// without waiting for the next one to read.
func growPipes(files ...any) {
	for _, f := range files {
		if p, ok := f.(syscall.Conn); ok && isPipe(f) {
			fsutil.GrowPipe(p)
		}
	}
}

// errDownstreamGone replaces a broken-pipe error on stdout: the message
// says what happened in the pipeline's terms.
var errDownstreamGone = errors.New("standard output closed before the end: the next stage of the pipeline stopped reading")

// catchSIGPIPE keeps a write to a closed stdout from killing the tool with
// SIGPIPE (exit 141, and no message), which Go does unless the program asks
// for SIGPIPE itself: asked, the write fails with EPIPE and Main decides
// what it means. The signal itself is dropped.
func catchSIGPIPE() (stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGPIPE)
	return func() { signal.Stop(c) }
}

// interruptGrace is how long a tool whose next stage has gone waits for
// its own SIGINT: Ctrl-C reaches every stage of a pipeline at once, but a
// stage may see the next one's exit before Go hands it its own signal.
const interruptGrace = time.Second

// downstream explains a failure of a tool whose stdout is a pipe that the
// next stage closed: if that stage stopped because Ctrl-C stopped the whole
// pipeline, this tool was interrupted too (exit 130); else the next stage
// quit, and a broken pipe is reported as such (exit 1).
func downstream(ctx context.Context, err error, stdout io.Writer) error {
	if err == nil || ctx.Err() != nil || !readerGone(stdout) {
		return err
	}
	select {
	case <-ctx.Done():
		return errInterrupted
	case <-time.After(interruptGrace):
	}
	if errors.Is(err, syscall.EPIPE) {
		return errDownstreamGone
	}
	return err
}
