// Package dial opens the remote backend that a hosts-file line names. It
// sits apart from package remote because the backends import that one.
package dial

import (
	"context"
	"os"
	"strings"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/sftp"
)

// EnvSSH names the environment variable that replaces the ssh command.
const EnvSSH = "BK_SSH"

// Host connects to h with the backend for its kind.
func Host(ctx context.Context, h hostsfile.Host, opts remote.DialOptions) (remote.Remote, error) {
	if h.Kind == hostsfile.Local {
		return local.New(h.Path, opts)
	}
	return sftp.Dial(ctx, h, opts)
}

// SSHCommand is the ssh command from a --ssh flag value, else from
// $BK_SSH, split on spaces; empty means plain "ssh".
func SSHCommand(flag string) []string {
	if flag == "" {
		flag = os.Getenv(EnvSSH)
	}
	return strings.Fields(flag)
}
