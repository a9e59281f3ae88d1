package cli

// The pseudo-terminal is opened with Linux's ioctls.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal and returns its terminal end.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

// One progress display per pipeline: on a terminal, only the stage whose
// stdout is not a pipe shows one, unless --progress asks; never under -q;
// and only tools with progress take --progress.
func TestShowProgressOnlyInLastStage(t *testing.T) {
	tty := openPTY(t)
	r, pipe, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer pipe.Close()
	file, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, c := range []struct {
		stdout io.Writer
		args   []string
		want   bool
	}{
		{pipe, nil, false},
		{pipe, []string{"--progress"}, true},
		{file, nil, true},
		{tty, nil, true},
		{file, []string{"-q"}, false},
		{pipe, []string{"-q", "--progress"}, false},
	} {
		var got bool
		tool := Tool{Name: "bk-x", Progress: true, Action: func(_ context.Context, env *Env, _ *ucli.Context) error {
			got = env.ShowProgress
			return nil
		}}
		if code := Main(tool, append([]string{"bk-x"}, c.args...), Stdio{Stdin: strings.NewReader(""), Stdout: c.stdout, Stderr: tty}); code != 0 || got != c.want {
			t.Errorf("stdout %T %v: exit %d, progress %v, want %v", c.stdout, c.args, code, got, c.want)
		}
	}
	var stderr bytes.Buffer
	noProgress := Tool{Name: "bk-y", Action: func(context.Context, *Env, *ucli.Context) error { return nil }}
	if code := Main(noProgress, []string{"bk-y", "--progress"}, Stdio{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr}); code != ExitUsage {
		t.Errorf("bk-y --progress: exit %d, %s", code, stderr.String())
	}
}
