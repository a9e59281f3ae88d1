package job

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"

	"github.com/bk-backup/bk/internal/state"
)

// parentGone reports whether the backup the series' next incremental one
// would build on is gone from the hosts: a retention that keeps nothing
// recent may have pruned it, and an incremental backup on it would never
// restore. bk-check --quick --backup on it says so by exit 1 (pruned, not
// found, too few shares, or a link of its chain missing); then the job
// makes a full backup tonight, with one warning, rather than fail every
// night until someone runs it by hand. A host down, or a check that could
// not run, leaves the choice to bk-pack, and bk-push checks again.
func (s *Summary) parentGone(ctx context.Context, c *Config, opt Options) bool {
	parent, err := state.LastStored(c.SeriesDir())
	if err != nil || parent == "" {
		return false // no chain to build on: bk-pack makes a full backup
	}
	args := append([]string{"bk-check", "-q", "--quick", "--backup", parent}, c.connectFlags()...)
	args = append(c.prefixed(args), c.Hosts)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		return false
	}
	why := "bk-check --quick --backup " + parent + " failed"
	for _, line := range strings.Split(stderr.String(), "\n") {
		if _, msg, ok := strings.Cut(line, ": error: "); ok {
			why = msg
		}
	}
	opt.Warnf("backup %s, which tonight's incremental backup would build on, is gone from the hosts (%s): making a full backup", parent, why)
	return true
}

// withFull adds --full to bk-pack's arguments, after --state.
func withFull(args []string) []string {
	i := slices.Index(args, "--state")
	if i < 0 {
		return args
	}
	return slices.Insert(slices.Clone(args), i, "--full")
}
