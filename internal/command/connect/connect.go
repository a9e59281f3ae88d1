// Package connect holds what bk-push and bk-join share to reach hosts: the
// ssh and retry flags, and the catalog of hosts built from them, which
// shows ssh's own messages prefixed with the host.
package connect

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
)

// EnvSSH names the environment variable that replaces the ssh command.
const EnvSSH = "BK_SSH"

// Flags are the command-line options of Options.
func Flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "ssh", Usage: "ssh command to reach SFTP hosts, with its options (default $BK_SSH, else ssh)"},
		&ucli.IntFlag{Name: "retries", Value: 5, Usage: "attempts to reconnect to a host that dropped before giving its share up"},
		cli.DurationFlag("retry-pause", 500*time.Millisecond, "wait `PAUSE` (e.g. 500ms) before the first reconnect, doubled each time up to 8s"),
	}
}

// Options are the catalog options that the flags of c ask for. ssh's
// stderr lines reach the user as "bk-x: HOST: line", even with -q: they
// say why a host failed. With verify, every upload is read back before it
// takes its name (remote.DialOptions.Verify).
func Options(env *cli.Env, c *ucli.Context, verify bool) (catalog.Options, error) {
	if c.Int("retries") < 1 {
		return catalog.Options{}, cli.Usagef("--retries must be at least 1")
	}
	var mu sync.Mutex
	return catalog.Options{
		Dial: remote.DialOptions{
			SSHCommand: SSHCommand(c.String("ssh")),
			Stderr: func(host, line string) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(env.Stderr, "%s: %s: %s\n", env.Msg.Tool, host, line)
			},
			Retry:  remote.Retry{Attempts: c.Int("retries"), First: cli.Duration(c, "retry-pause")},
			Verify: verify,
		},
		Warn: env.Msg.Warnf,
	}, nil
}

// Open makes the catalog of the hosts in the hosts files.
func Open(files []string, opts catalog.Options) (*catalog.Catalog, error) {
	var hosts []hostsfile.Host
	for _, f := range files {
		hs, err := hostsfile.ParseFile(f)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, hs...)
	}
	return catalog.New(hosts, opts), nil
}

// SSHCommand is the ssh command from a --ssh flag value, else from
// $BK_SSH, split on spaces; empty means plain "ssh".
func SSHCommand(flag string) []string {
	if flag == "" {
		flag = os.Getenv(EnvSSH)
	}
	return strings.Fields(flag)
}
