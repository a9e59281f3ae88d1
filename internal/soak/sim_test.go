package soak

import (
	"os"
	"os/exec"
	"testing"
)

// findChild finds a child of this process by its command, whichever of
// the process's threads started it, and no process that is not a child.
func TestFindChild(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if got := findChild(os.Getpid(), "sleep"); got != cmd.Process.Pid {
		t.Errorf("findChild(this process, sleep) = %d, want %d", got, cmd.Process.Pid)
	}
	if got := findChild(os.Getpid(), "no-such-command"); got != 0 {
		t.Errorf("findChild(this process, no-such-command) = %d, want 0", got)
	}
	if got := findChild(cmd.Process.Pid, "sleep"); got != 0 {
		t.Errorf("findChild(sleep, sleep) = %d, want 0 (it has no children)", got)
	}
}
