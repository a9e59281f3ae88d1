package sftp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// An upload's temp file is fsync'ed before it is closed and takes its
// name, as OpenSSH's sftp-server logs the requests; not on an fsync=no
// host, nor a test file, which is removed when its run ends.
func TestSFTPFsyncsBeforeCommit(t *testing.T) {
	t.Parallel()
	s := loggingServer(t)
	synced, unsynced := folder(t), folder(t)
	r := dial(t, s, at(s, synced), remote.DialOptions{})
	defer r.Close()
	remotetest.Put(t, r, "share", remotetest.Data(3<<20, 1))
	remotetest.Put(t, r, remote.ProbePrefix+"test", []byte("bk-push test file\n"))
	noSync := dial(t, s, at(s, unsynced), remote.DialOptions{NoFsync: true})
	defer noSync.Close()
	remotetest.Put(t, noSync, "share", remotetest.Data(3<<20, 2))

	log := s.RequestLog()
	// sftp-server ends the lines it logs to stderr with \r\n.
	tmp := regexp.MustCompile(`(?m)^fsync "(` + regexp.QuoteMeta(synced) + `/\.tmp-[0-9a-f]+-share)"\r?$`).FindStringSubmatch(log)
	if tmp == nil {
		t.Fatalf("no fsync of the temp file in %s:\n%s", synced, log)
	}
	fsync := strings.Index(log, `fsync "`+tmp[1]+`"`)
	closed := strings.Index(log, `close "`+tmp[1]+`"`)
	named := strings.Index(log, `"`+synced+`/share"`)
	if closed < fsync || named < fsync {
		t.Fatalf("fsync at %d, close at %d, final name at %d:\n%s", fsync, closed, named, log)
	}
	if !strings.Contains(log, remote.ProbePrefix+`test" bytes read 0 written 18`) {
		t.Fatalf("the test file's upload is not in the log:\n%s", log)
	}
	if regexp.MustCompile(`fsync "[^"]*` + regexp.QuoteMeta(remote.ProbePrefix)).MatchString(log) {
		t.Fatalf("a test file was fsync'ed:\n%s", log)
	}
	if strings.Contains(log, `fsync "`+unsynced) {
		t.Fatalf("fsync on an fsync=no host:\n%s", log)
	}
	if !strings.Contains(log, `close "`+unsynced) {
		t.Fatalf("the fsync=no upload is not in the log:\n%s", log)
	}
	remotetest.Get(t, r, "share", 0)
}

// A connection lost once every byte is acknowledged leaves the temp file
// closed: the commit opens it to read, and fsyncs it so.
func TestSFTPFsyncAfterReconnect(t *testing.T) {
	t.Parallel()
	s := loggingServer(t)
	dir := folder(t)
	r, p := dialProxied(t, s, at(s, dir), remote.DialOptions{})
	data := remotetest.Data(ChunkSize, 3)
	commitAfterCut(t, r, p, "share", data)
	if p.Cuts() != 1 || p.Conns() < 2 {
		t.Fatalf("%d cuts, %d connections: the commit did not reconnect", p.Cuts(), p.Conns())
	}
	log := s.RequestLog()
	tmp := regexp.MustCompile(`open "(` + regexp.QuoteMeta(dir) + `/\.tmp-[0-9a-f]+-share)" flags READ mode`).FindStringSubmatch(log)
	if tmp == nil || !strings.Contains(log[strings.Index(log, tmp[0]):], `fsync "`+tmp[1]+`"`) {
		t.Fatalf("the temp file was not opened to read and fsync'ed after the reconnect:\n%s", log)
	}
	if got := remotetest.Get(t, r, "share", 0); !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes, not the %d sent", len(got), len(data))
	}
}

// commitAfterCut uploads data as name to r and commits it once the
// connection through p is cut, every chunk sent before acknowledged.
func commitAfterCut(t *testing.T, r *SFTP, p *sshtest.Proxy, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	up, err := r.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := up.(*upload).settle(ctx, 0); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// loggingServer is a real sshd whose sftp-server logs each request.
func loggingServer(t *testing.T) *sshtest.Server {
	t.Helper()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	dir := filepath.Join(t.TempDir(), "nas")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := sshtest.StartLoggingRequests(dir)
	if errors.Is(err, sshtest.ErrNoSSHD) || errors.Is(err, sshtest.ErrNoSFTPServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// The slack grows with the file, up to what a host caches.
func TestFsyncSlack(t *testing.T) {
	for size, want := range map[int64]time.Duration{0: time.Second, 1 << 30: 65 * time.Second, 1 << 40: 2049 * time.Second} {
		if got := fsyncSlack(size); got != want {
			t.Errorf("fsyncSlack(%d) = %v, want %v", size, got, want)
		}
	}
}

// While an fsync is on its way the watchdog allows its slack beyond the
// timeout, and ends ssh once that is spent too, saying how long it waited.
func TestWatchdogAllowsFsyncSlack(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	c := &conn{cmd: cmd, dead: make(chan struct{}), timeout: 50 * time.Millisecond}
	go func() { _ = cmd.Wait(); close(c.dead) }()
	c.markAlive()
	c.waiting.Add(1)
	c.slack.Add(int64(time.Second))
	start := time.Now()
	go c.watch()
	time.Sleep(500 * time.Millisecond)
	if c.timedOut.Load() {
		t.Fatal("ended within the slack")
	}
	select {
	case <-c.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("not ended once the slack was spent")
	}
	if waited := time.Since(start); !c.timedOut.Load() || waited < time.Second+50*time.Millisecond {
		t.Fatalf("ended after %v, timed out %v", waited, c.timedOut.Load())
	}
	if err := c.timeoutError(); err.Error() != "no answer for 1.05s" {
		t.Fatalf("error %q", err)
	}
}
