//go:build bkprofile

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
)

// ProfileEnv names the folder where tools built with -tags bkprofile leave
// a CPU profile a run (TOOL-PID.prof) and a line of CPU time a run in
// cpu.log ("TOOL user-seconds system-seconds args"). It is how the soak's
// and the benches' CPU is traced to one tool; release builds lack it.
const ProfileEnv = "BK_PROFILE_DIR"

func profile(tool string) (stop func()) {
	dir := os.Getenv(ProfileEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.prof", tool, os.Getpid())))
	if err == nil && pprof.StartCPUProfile(f) != nil {
		f.Close()
		f = nil
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return
		}
		line := fmt.Sprintf("%s %.3f %.3f %s\n", tool, float64(ru.Utime.Nano())/1e9, float64(ru.Stime.Nano())/1e9, strings.Join(os.Args[1:], " "))
		if log, err := os.OpenFile(filepath.Join(dir, "cpu.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			_, _ = log.WriteString(line)
			log.Close()
		}
	}
}
