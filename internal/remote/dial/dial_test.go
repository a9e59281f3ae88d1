package dial

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/sftp"
	"github.com/bk-backup/bk/internal/sshtest"
)

func TestHostPicksBackend(t *testing.T) {
	dir := t.TempDir()
	r, err := Host(context.Background(), hostsfile.Host{Kind: hostsfile.Local, Path: dir}, remote.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*local.Local); !ok || r.String() != dir {
		t.Fatalf("local line gave %T %s", r, r)
	}
	r.Close()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	state := filepath.Join(t.TempDir(), "nas")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := sshtest.StartAny(state)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	r, err = Host(context.Background(), s.Host(dir), remote.DialOptions{SSHCommand: s.SSHCommand()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(*sftp.SFTP); !ok || r.String() != "nas" {
		t.Fatalf("sftp line gave %T %s", r, r)
	}
	if _, err := r.Stat(context.Background(), "x"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Stat: %v", err)
	}
}

func TestSSHCommand(t *testing.T) {
	t.Setenv(EnvSSH, "ssh  -F /etc/bk/cfg ")
	if got := SSHCommand(""); !slices.Equal(got, []string{"ssh", "-F", "/etc/bk/cfg"}) {
		t.Errorf("from $BK_SSH: %q", got)
	}
	if got := SSHCommand("myssh -v"); !slices.Equal(got, []string{"myssh", "-v"}) {
		t.Errorf("from the flag: %q", got)
	}
	t.Setenv(EnvSSH, "")
	if got := SSHCommand(""); len(got) != 0 {
		t.Errorf("unset: %q", got)
	}
}
