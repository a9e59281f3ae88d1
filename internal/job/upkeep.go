package job

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/hostsfile"
)

// upkeep runs, after a stored backup, the keyless tools the config asks
// for: bk-prune with the retention, bk-check (--quick, or full every
// FullCheckEvery), and bk-repair when the check finds a backup degraded
// (--quick after a quick check, when a full one is due some night).
// A tool that is not installed is reported, not skipped in silence.
func (s *Summary) upkeep(ctx context.Context, c *Config, opt Options, fail func(int, string, ...any)) {
	run := func(kind string, args ...string) (Step, bool) {
		if _, err := exec.LookPath(args[0]); err != nil {
			fail(1, "the config asks for %s, but %s is not installed", kind, args[0])
			return Step{}, false
		}
		if opt.Quiet {
			args = append(args[:1:1], append([]string{"-q"}, args[1:]...)...)
		}
		args = append(args, c.connectFlags()...)
		args = append(c.prefixed(args), c.Hosts)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		// Their reports are the job's log: stderr, as stdout is the summary's.
		// Under -q a report is shown only when its tool did not exit 0, so a
		// nightly job that went well mails nothing.
		var report bytes.Buffer
		cmd.Stdout = opt.Stderr
		if opt.Quiet {
			cmd.Stdout = &report
		}
		cmd.Stderr = opt.Stderr
		st := s.step(kind, strings.Join(args, " "), cmd)
		if st.Exit != 0 {
			_, _ = opt.Stderr.Write(report.Bytes())
		}
		return st, true
	}
	if h := appendOnlyHost(c.Hosts); len(c.Keep) > 0 && h != "" {
		opt.Notef("prune skipped: host %s is append-only, so this account may remove nothing there; run bk-prune with the admin hosts file", h)
	} else if len(c.Keep) > 0 {
		if st, ok := run("prune", append([]string{"bk-prune", "--name", c.Name}, c.Keep...)...); ok && st.Exit != 0 {
			fail(upkeepExit(st.Exit), "bk-prune: %s", st.Status)
		}
	}
	if !c.Check && c.FullCheckEvery == 0 {
		return
	}
	stamp := filepath.Join(c.StateDir, "full-check")
	full := false
	if c.FullCheckEvery > 0 {
		last, err := readStamp(stamp)
		full = err != nil || opt.now().Sub(last) >= c.FullCheckEvery
	}
	args := []string{"bk-check", "--name", c.Name}
	if !full {
		if !c.Check {
			return
		}
		args = append(args, "--quick")
	}
	st, ok := run("check", args...)
	if !ok {
		return
	}
	if full && st.Exit != 1 && st.Exit != 2 && st.Exit != 130 {
		_ = WriteAtomic(stamp, []byte(opt.now().UTC().Format(time.RFC3339)+"\n"))
	}
	switch {
	case st.Exit == 3 && c.Repair:
		repair := []string{"bk-repair", "--name", c.Name}
		if !full && c.FullCheckEvery > 0 {
			// As deep as the check that found the damage: a quick one
			// finds shares (and copies of them) missing, cut or not the
			// backup's, and so does a quick repair, where a full one read
			// every byte of every copy of every share, which the next
			// full check does (and a repair after it, of what it finds).
			repair = append(repair, "--quick")
		}
		if st, ok := run("repair", repair...); ok && st.Exit != 0 {
			fail(upkeepExit(st.Exit), "bk-repair: %s", st.Status)
		}
	case st.Exit == 3:
		fail(3, "bk-check: backups of %s are degraded (repair = no)", c.Name)
	case st.Exit != 0:
		fail(1, "bk-check: %s", st.Status)
	}
}

// readStamp reads the time a full check last finished, as WriteAtomic left
// it in the stamp file.
func readStamp(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
}

// upkeepExit is what an upkeep tool's exit makes of the job: its 3 (a
// host unreachable, its files left for the next run) leaves the job
// degraded, not failed, as a host down does to bk-push.
func upkeepExit(code int) int {
	if code == 3 {
		return 3
	}
	return 1
}

// appendOnlyHost names a host of the hosts file at path that is marked
// append-only=yes, "" when there is none (or the file cannot be read:
// bk-prune then says why).
func appendOnlyHost(path string) string {
	hosts, err := hostsfile.ParseFile(path)
	if err != nil {
		return ""
	}
	for _, h := range hosts {
		if h.AppendOnly == hostsfile.AppendOnlyClient {
			return h.String()
		}
	}
	return ""
}
