package soak

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/sshtest"
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

// The night's ssh master, left running by the login that started it when
// that tool exited, is this process's child: closeMasters ends it and
// waits for it (so its CPU time counts), and the next login is a real
// one, which starts a master again.
func TestCloseMasters(t *testing.T) {
	t.Parallel()
	srv, err := sshtest.Start(t.TempDir())
	if err != nil {
		t.Skip(err)
	}
	defer srv.Stop()
	becomeSubreaper()
	ssh := sshCommand(srv, filepath.Join(t.TempDir(), "mux"), t.Logf)
	for night := range 2 {
		if out, err := exec.Command(ssh[0], append(ssh[1:], srv.Alias, "true")...).CombinedOutput(); err != nil {
			t.Fatalf("night %d: ssh: %v: %s", night, err, out)
		}
		// The master, and the process between it and ssh's first, which
		// exited (ssh forks twice to leave it in the background).
		masters := findChildren(os.Getpid(), "ssh", 0)
		if len(masters) == 0 {
			t.Fatalf("night %d: no ssh child after a login, want its master", night)
		}
		if err := closeMasters(); err != nil {
			t.Fatal(err)
		}
		if left := findChildren(os.Getpid(), "ssh", 0); len(left) > 0 {
			t.Fatalf("night %d: ssh children %v left after closeMasters", night, left)
		}
		for _, pid := range masters {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Fatalf("night %d: ssh %d still runs or waits to be waited for", night, pid)
			}
		}
	}
}

// A phase started inside another is counted once: the phases' CPU times
// add up to the children's, as the summary's table promises.
func TestNestedPhaseCountedOnce(t *testing.T) {
	burn := func() error {
		return exec.Command("sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done").Run()
	}
	s := &sim{res: &Result{CPU: map[string]time.Duration{}}}
	before := cpuTime(syscall.RUSAGE_CHILDREN)
	err := s.phase(phaseHosts, func() error {
		if err := burn(); err != nil {
			return err
		}
		return s.phase(phaseSSHD, burn)
	})
	if err != nil {
		t.Skip(err)
	}
	total := cpuTime(syscall.RUSAGE_CHILDREN) - before
	outer, inner := s.res.CPU[phaseHosts], s.res.CPU[phaseSSHD]
	if inner <= 0 || outer <= 0 {
		t.Fatalf("phases counted %v outside and %v inside, want both > 0", outer, inner)
	}
	if outer+inner != total {
		t.Errorf("phases counted %v + %v = %v of children's CPU, want the %v spent", outer, inner, outer+inner, total)
	}
}
