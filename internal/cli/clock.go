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

// Now is the tools' calendar, the client's clock: the time a backup's ID
// carries, and the now that retention, --max-age, --full-if-older and
// the ages of what is on the hosts (their files' times against
// --stale-age, tombstones) measure from, as a client's own clock, not
// the hosts', would. It is the system clock unless $BK_NOW sets it (for
// tests). bk-pack's walk, which compares the times the client's own file
// systems set, stays on the system clock, which sets them.
func Now() time.Time {
	base, start := clock()
	return base.Add(time.Since(start))
}
