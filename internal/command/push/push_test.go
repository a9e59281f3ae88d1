package push

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/command/connect"
)

// TestHashesInProcess: only a hosts file with an S3 store keeps bk-push
// on every processor.
func TestHashesInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for hosts, want := range map[string]bool{
		"/mnt/a\nnas:/bk\nrclone:remote:bk\n":                         false,
		"/mnt/a\ns3://bucket/bk endpoint=http://127.0.0.1:7070\n":     true,
		"sftp://nas/bk\ns3://bucket endpoint=http://127.0.0.1:7070\n": true,
	} {
		file := filepath.Join(dir, "hosts")
		if err := os.WriteFile(file, []byte(hosts), 0o600); err != nil {
			t.Fatal(err)
		}
		cat, err := connect.Open([]string{file}, catalog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hashesInProcess(cat); got != want {
			t.Errorf("hosts %q: hashesInProcess %v, want %v", hosts, got, want)
		}
		cat.Close()
	}
}
