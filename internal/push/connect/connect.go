// Package connect holds what bk-push and bk-join share to reach hosts: the
// ssh and retry flags, and a dialer built from them that shows ssh's own
// messages prefixed with the host.
package connect

import (
	"context"
	"fmt"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/dial"
)

// Flags are the command-line options of Dialer.
func Flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "ssh", Usage: "ssh command to reach SFTP hosts, with its options (default $BK_SSH, else ssh)"},
		&ucli.IntFlag{Name: "retries", Value: 5, Usage: "attempts to reconnect to a host that dropped before giving its share up"},
		&ucli.DurationFlag{Name: "retry-pause", Value: 500 * time.Millisecond, Usage: "pause before the first reconnect, doubled each time up to 8s"},
	}
}

// Dial connects to one host.
type Dial func(ctx context.Context, h hostsfile.Host) (remote.Remote, error)

// Dialer returns a Dial with the options of c. ssh's stderr lines reach
// the user as "bk-x: HOST: line", even with -q: they say why a host failed.
func Dialer(env *cli.Env, c *ucli.Context) (Dial, error) { return UploadDialer(env, c, false) }

// UploadDialer is Dialer for a tool that uploads: with verify, every
// upload is read back before it takes its name (remote.DialOptions.Verify).
func UploadDialer(env *cli.Env, c *ucli.Context, verify bool) (Dial, error) {
	if c.Int("retries") < 1 {
		return nil, cli.Usagef("--retries must be at least 1")
	}
	var mu sync.Mutex
	opts := remote.DialOptions{
		SSHCommand: dial.SSHCommand(c.String("ssh")),
		Stderr: func(host, line string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(env.Stderr, "%s: %s: %s\n", env.Msg.Tool, host, line)
		},
		Retry:  remote.Retry{Attempts: c.Int("retries"), First: c.Duration("retry-pause")},
		Verify: verify,
	}
	return func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		r, err := dial.Host(ctx, h, opts)
		if err != nil {
			return nil, err // not a nil *sftp.SFTP in a non-nil interface
		}
		return r, nil
	}, nil
}
