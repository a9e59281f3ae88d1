// Package connect holds what bk-push and bk-join share to reach hosts: the
// ssh, retry and timeout flags, and the catalog of hosts built from them,
// which passes on what ssh says as warnings naming the host.
package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/metacache"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/sftp"
)

// GCPercent is the GOGC of the tools that read every backup on the hosts
// (bk-check, bk-ls, bk-prune, bk-repair; cli.Tool.GCPercent): on the
// soak's hosts late in its year (some 2,000 manifests and tombstones on
// six hosts) Go's 100 had them collect a heap of 10-20 MiB over and over,
// a tenth of their CPU; at 200 a quick check's peak RSS went from 27 to
// 32 MiB, a full one's from 55 to 75 MiB.
const GCPercent = 200

// Environment variables that replace the ssh and rclone commands.
const (
	EnvSSH    = "BK_SSH"
	EnvRclone = "BK_RCLONE"
)

// Flags are the command-line options of Options.
func Flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "ssh", Usage: "the ssh `COMMAND` to reach SFTP hosts, with its options (default $BK_SSH, else ssh)"},
		&ucli.StringFlag{Name: "rclone", Usage: "the rclone `COMMAND` to reach rclone: hosts, with its options (default $BK_RCLONE, else rclone)"},
		&ucli.IntFlag{Name: "retries", Value: 5, Usage: "make `N` attempts to reconnect to a host that dropped before giving its share up"},
		cli.DurationFlag("retry-pause", 500*time.Millisecond, "wait `PAUSE` (e.g. 500ms) before the first reconnect, doubled each time up to 8s"),
		cli.DurationFlag("timeout", remote.DefaultTimeout, "count an SFTP or S3 host as failed when it leaves a connection attempt or a request unanswered for `TIME` (e.g. 30s)"),
		&ucli.BoolFlag{Name: "no-cache", Usage: "read every manifest and tombstone from the SFTP, S3 and rclone hosts, not from the cache of earlier runs' reads in $BK_CACHE_DIR (default ~/.cache/bk; BK_CACHE_DIR=off is --no-cache)"},
	}
}

// Options are the catalog options that the flags of c ask for. What ssh
// says reaches the user once, even with -q: in the error of a host that
// failed, else as a warning naming the host. A host whose key or login ssh
// refused gets a hint saying how to fix it by hand. With verify, every
// upload is read back before it takes its name (remote.DialOptions.Verify).
func Options(env *cli.Env, c *ucli.Context, verify bool) (catalog.Options, error) {
	if c.Int("retries") < 1 {
		return catalog.Options{}, cli.Usagef("--retries must be at least 1")
	}
	timeout := cli.Duration(c, "timeout")
	if timeout < time.Second {
		return catalog.Options{}, cli.Usagef("--timeout %v: give at least 1s", timeout)
	}
	dial := remote.DialOptions{
		SSHCommand:    Command(c.String("ssh"), EnvSSH),
		RcloneCommand: Command(c.String("rclone"), EnvRclone),
		Warn:          func(msg string) { env.Msg.Warnf("%s", msg) },
		Timeout:       timeout,
		Retry:         remote.Retry{Attempts: c.Int("retries"), First: cli.Duration(c, "retry-pause")},
		Verify:        verify,
	}
	return catalog.Options{
		Dial: dial,
		Connect: func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
			r, err := h.Dial(ctx, h.DialOptions(dial))
			if err != nil {
				return nil, hint(err, h, dial)
			}
			return r, nil
		},
		Warn:  env.Msg.Warnf,
		Now:   cli.Now,
		Cache: cache(env, c),
	}, nil
}

// cache is the metadata cache the flags and environment ask for, nil for
// none. A folder that cannot be made leaves the tool without a cache: said
// once (not with -q, so that cron stays quiet) when $BK_CACHE_DIR named
// it, silently for the default, which a user without a home lacks.
func cache(env *cli.Env, c *ucli.Context) *metacache.Dir {
	if c.Bool("no-cache") {
		return nil
	}
	dir, explicit, err := metacache.Location()
	if err != nil || dir == "" {
		return nil
	}
	d, err := metacache.Open(dir)
	if err != nil {
		if explicit {
			env.Msg.Notef("running without a cache: %v", err)
		}
		return nil
	}
	d.Fresh = readsFresh(c)
	return d
}

// readsFresh is whether the tool reads every block (bk-check and bk-repair
// without --quick): it then reads every manifest and tombstone from the
// hosts too, and what they serve replaces the cache. Rot of a cached file
// that keeps its size and time is found there, not by the other tools.
func readsFresh(c *ucli.Context) bool {
	for _, f := range c.App.Flags {
		if slices.Contains(f.Names(), "quick") {
			return !c.Bool("quick")
		}
	}
	return false
}

// hint says how to fix by hand what bk, never prompting, can't: a host key
// to check and accept once, a login that needs a key.
func hint(err error, h hostsfile.Host, opts remote.DialOptions) error {
	loc, ok := h.Location.(sftp.Location)
	if !ok {
		return err
	}
	login := sftp.LoginCommand(loc, opts)
	switch {
	case errors.Is(err, sftp.ErrHostKey):
		return cli.WithHint(err, fmt.Sprintf("bk never accepts a host key unseen: check %s's key and accept it once with: %s", loc.Host, login))
	case errors.Is(err, sftp.ErrAuth):
		return cli.WithHint(err, fmt.Sprintf("bk never asks for a password: log in with a key (ssh-copy-id, and ssh-add for its passphrase); test with: %s", login))
	}
	return err
}

// Open makes the catalog of the hosts in the hosts files.
func Open(files []string, opts catalog.Options) (*catalog.Catalog, error) {
	var hosts []hostsfile.Host
	for _, f := range files {
		hs, err := hostsfile.ParseFile(f)
		if err != nil {
			return nil, cli.AsUsage(err)
		}
		hosts = append(hosts, hs...)
	}
	return catalog.New(hosts, opts), nil
}

// Command is a command line from a flag's value (--ssh, --rclone), else
// from the environment variable env, split on spaces; empty means the
// plain command.
func Command(flag, env string) []string {
	if flag == "" {
		flag = os.Getenv(env)
	}
	return strings.Fields(flag)
}
