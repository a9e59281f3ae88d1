package kinds

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/sftp"
	"github.com/bk-backup/bk/internal/sshtest"
)

// TestDestinationPicksKind dials a folder and an SFTP host through the
// registry, as a hosts file names them.
func TestDestinationPicksKind(t *testing.T) {
	dir := t.TempDir()
	loc, err := remote.ParseLocation(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := loc.Dial(context.Background(), remote.DialOptions{})
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
	r, err = s.Host(dir).Dial(context.Background(), remote.DialOptions{SSHCommand: s.SSHCommand()})
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

func TestUnknownScheme(t *testing.T) {
	_, err := remote.ParseLocation("s3://bucket/x", "")
	if err == nil || err.Error() != `unknown kind of destination "s3://bucket/x" (want a folder, file:///path, sftp://host/path, host:path)` {
		t.Fatalf("got %v", err)
	}
}
