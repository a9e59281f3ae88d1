package soak

import (
	"os"
	"syscall"
)

// The tools' ssh logins to the SFTP host share one connection a night, as
// a sysadmin sets ssh up for a nightly job of many tool runs: the ssh
// command bk is given ($BK_SSH) says ControlMaster=auto, ControlPersist
// and a ControlPath in a folder of the soak's. The night's first login is
// a real one (key exchange, host key check, authentication), made by the
// first tool that reaches the host; the master connection it starts
// serves the night's other runs and is closed at the end of the night, so
// that each night logs in anew.
//
// A master goes on in the background after the tool that started it has
// exited. The soak is the subreaper of its descendants (Linux), so that an
// orphaned master becomes its child and is waited for when it is closed:
// its CPU time then counts in the sshd phase instead of nowhere.

// closeMasters ends the ssh masters (and any other orphaned ssh, such as
// a killed stage's) and waits for them. It fails only as a phase may.
func closeMasters() error {
	for _, pid := range findChildren(os.Getpid(), "ssh", 0) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
	}
	return nil
}
