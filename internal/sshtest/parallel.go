package sshtest

import (
	"flag"
	"runtime"
	"strconv"
)

// MoreParallel lets n tests marked t.Parallel run at once, or GOMAXPROCS
// if more, unless -test.parallel says otherwise. Call it from TestMain
// before m.Run. Tests that wait on ssh logins, servers, timeouts and child
// processes more than they compute leave two cores idle at the default of
// GOMAXPROCS: a test sleeping out a 5 s timeout holds one of two places.
func MoreParallel(n int) {
	// Before m.Run parses the command line, so an explicit -test.parallel
	// still wins.
	if f := flag.Lookup("test.parallel"); f != nil {
		_ = f.Value.Set(strconv.Itoa(max(n, runtime.GOMAXPROCS(0))))
	}
}
