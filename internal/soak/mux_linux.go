package soak

import "golang.org/x/sys/unix"

// becomeSubreaper makes the orphaned descendants of this process its
// children (mux.go says why).
func becomeSubreaper() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }
