package sftp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// rclone's SFTP server (rclone serve sftp, a host some users run) offers
// hard links and statvfs@openssh.com, then answers a hard link without
// making it and refuses statvfs as unsupported. Uploads still take their
// names (by rename), and its free space is unknown, not an error.
func TestRcloneServeSFTP(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("rclone"); err != nil {
		t.Skip("rclone not installed")
	}
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "bk"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "host"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, key)).CombinedOutput(); err != nil {
			t.Skipf("ssh-keygen: %v %s", err, out)
		}
	}
	srv := exec.Command("rclone", "serve", "sftp", data, "--addr", "127.0.0.1:0",
		"--authorized-keys", filepath.Join(dir, "id.pub"), "--key", filepath.Join(dir, "host"), "--config", "/dev/null")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	listening := regexp.MustCompile(`SFTP server listening on 127\.0\.0\.1:(\d+)`)
	port := ""
	for sc := bufio.NewScanner(stderr); port == "" && sc.Scan(); {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatal("rclone serve sftp did not say where it listens")
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	cfg := filepath.Join(dir, "ssh_config")
	config := fmt.Sprintf("Host rclone-sftp\n  HostName 127.0.0.1\n  Port %s\n  User bk\n  IdentityFile %s\n  IdentitiesOnly yes\n"+
		"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n", port, filepath.Join(dir, "id"))
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Dial(context.Background(), Location{Host: "rclone-sftp", Path: "bk"}, remote.DialOptions{SSHCommand: []string{"ssh", "-F", cfg}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	want := remotetest.Data(300_000, 4)
	remotetest.Put(t, r, "share", want)
	if got, err := os.ReadFile(filepath.Join(data, "bk", "share")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the server's folder holds %d bytes (%v), want the %d sent", len(got), err, len(want))
	}
	if _, err := r.Free(context.Background()); !errors.Is(err, remote.ErrUnknownSpace) {
		t.Fatalf("Free: %v, want unknown space", err)
	}
	if fs, err := r.FileSystem(context.Background()); fs != "" || err != nil {
		t.Fatalf("FileSystem: %q, %v", fs, err)
	}
}
