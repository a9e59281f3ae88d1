package push

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/remote"
)

// TestHashesInProcess: a hosts file with an S3 store (whose kind says it
// hashes in the process), or any host with Verify (--verify, or its line's
// verify=yes), keeps bk-push on every processor.
func TestHashesInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		hosts        string
		verify, want bool
	}{
		{"/mnt/a\nnas:/bk\nrclone:remote:bk\n", false, false},
		{"/mnt/a\nnas:/bk\nrclone:remote:bk\n", true, true},
		{"nas:/bk\n", true, true},
		{"/mnt/a\nnas:/bk verify=yes\nrclone:remote:bk\n", false, true},
		{"/mnt/a\nnas:/bk verify=no\n", false, false},
		{"/mnt/a\ns3://bucket/bk endpoint=http://127.0.0.1:7070\n", false, true},
		{"sftp://nas/bk\ns3://bucket endpoint=http://127.0.0.1:7070\n", false, true},
	} {
		file := filepath.Join(dir, "hosts")
		if err := os.WriteFile(file, []byte(tc.hosts), 0o600); err != nil {
			t.Fatal(err)
		}
		cat, err := connect.Open([]string{file}, catalog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hashesInProcess(cat, remote.DialOptions{Verify: tc.verify}); got != tc.want {
			t.Errorf("hosts %q, verify %v: hashesInProcess %v, want %v", tc.hosts, tc.verify, got, tc.want)
		}
		cat.Close()
	}
}
