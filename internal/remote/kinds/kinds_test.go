package kinds

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/rclone"
	"github.com/bk-backup/bk/internal/remote/s3"
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
	_, err := remote.ParseLocation("ftp://nas/x", "")
	if err == nil || err.Error() != `unknown kind of destination "ftp://nas/x" (want a folder, file:///path, rclone:remote:path, s3://bucket/prefix, sftp://host/path, host:path)` {
		t.Fatalf("got %v", err)
	}
}

// TestObjectStoreLines reads hosts-file lines of the S3 and rclone kinds:
// their own options go to them, and rclone: wins over scp's host:path.
func TestObjectStoreLines(t *testing.T) {
	h, _, err := hostsfile.ParseLine("s3://bk/nas endpoint=http://127.0.0.1:7070 path-style=yes region=r1 profile=me quota=1G", "")
	if err != nil {
		t.Fatal(err)
	}
	want := s3.Location{Bucket: "bk", Prefix: "nas", Endpoint: "http://127.0.0.1:7070", Region: "r1", PathStyle: true, Profile: "me"}
	if got, ok := h.Location.(*s3.Location); !ok || *got != want || h.Quota.Bytes != 1<<30 {
		t.Fatalf("s3 line gave %#v, quota %d", h.Location, h.Quota.Bytes)
	}
	_, _, err = hostsfile.ParseLine("s3://bk endpoint=127.0.0.1", "")
	if err == nil || !strings.Contains(err.Error(), "endpoint=127.0.0.1: want a URL") {
		t.Fatalf("bad endpoint: %v", err)
	}
	_, _, err = hostsfile.ParseLine("s3://bk regoin=x", "")
	if err == nil || err.Error() != `unknown option "regoin" (known: quota, append-only, verify, fsync, endpoint, region, path-style, profile)` {
		t.Fatalf("unknown option: %v", err)
	}
	_, _, err = hostsfile.ParseLine("/mnt/usb endpoint=x", "")
	if err == nil || err.Error() != `unknown option "endpoint" (known: quota, append-only, verify, fsync)` {
		t.Fatalf("option of another kind: %v", err)
	}
	h, _, err = hostsfile.ParseLine("rclone:nas:bk quota=2G", "")
	if err != nil {
		t.Fatal(err)
	}
	if h.Location != (rclone.Location{Path: "nas:bk"}) || h.String() != "rclone:nas:bk" {
		t.Fatalf("rclone line gave %#v", h.Location)
	}
}
