package cli

import (
	"os"
	"sync"
	"time"
)

// NowEnv names the test-only variable that sets the tools' clock: an RFC
// 3339 time that Now returns at the process's start, advancing with the
// system clock from there. `make soak` runs a year of nights in minutes
// with it. Go binaries read the time without libc, so faketime-style
// preloads cannot do this.
const NowEnv = "BK_NOW"

var clock = sync.OnceValues(func() (time.Time, time.Time) {
	start := time.Now()
	if v := os.Getenv(NowEnv); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, start
		}
	}
	return start, start
})

// Now is the tools' calendar: the time a backup's ID carries, and the now
// that retention, --max-age and --full-if-older measure from. It is the
// system clock unless $BK_NOW sets it (for tests). What is compared with
// file times on disk (the walk's start, temp files' ages) stays on the
// system clock, since the file systems keep theirs.
func Now() time.Time {
	base, start := clock()
	return base.Add(time.Since(start))
}
