package sftp

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// An upload's temp file is fsync'ed before it is closed and takes its
// name, as OpenSSH's sftp-server logs the requests; not on an fsync=no
// host, nor a test file, which is removed when its run ends.
func TestSFTPFsyncsBeforeCommit(t *testing.T) {
	t.Parallel()
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
