package fsutil

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowPipe grows both kinds of pipe bk has: its own ends (os.File)
// and the ends exec.Cmd gives for a child's stdin and stdout (ssh's).
func TestGrowPipe(t *testing.T) {
	t.Parallel()
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if max, _ := strconv.Atoi(strings.TrimSpace(string(b))); max < PipeSize {
			t.Skipf("pipes may not grow to %d bytes here (pipe-max-size %d)", PipeSize, max)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cmd := exec.Command("true")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	for name, end := range map[string]any{"os.Pipe": w, "exec.Cmd.StdinPipe": stdin, "exec.Cmd.StdoutPipe": stdout} {
		p, ok := end.(syscall.Conn)
		if !ok {
			t.Fatalf("%s: %T has no file descriptor to grow", name, end)
		}
		GrowPipe(p)
		raw, err := p.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		if err := raw.Control(func(fd uintptr) { size, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if size != PipeSize {
			t.Errorf("%s: pipe of %d bytes after GrowPipe, want %d", name, size, PipeSize)
		}
	}
	stdin.Close()
}
