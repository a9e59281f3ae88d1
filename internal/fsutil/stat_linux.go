package fsutil

import (
	"syscall"
	"time"
)

// StatTimes returns the modification and status change times of a stat
// result, whose field names differ per system.
func StatTimes(st *syscall.Stat_t) (mtime, ctime time.Time) {
	return time.Unix(st.Mtim.Unix()), time.Unix(st.Ctim.Unix())
}
