package sftp

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/sshtest"
)

// A tool that reads the catalog lists a host's files and its leftovers
// with one listing of the folder, not one for each.
func TestListBothListsOnce(t *testing.T) {
	t.Parallel()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	s, err := sshtest.StartGo(filepath.Join(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	dir := folder(t)
	leftover := remote.TempName("a.share0")
	for _, name := range []string{"a.share0", leftover} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := dial(t, s, at(s, dir), remote.DialOptions{})
	defer r.Close()
	before := s.Requests()["opendir"]
	files, leftovers, err := remote.ListBoth(context.Background(), r, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Name != "a.share0" || len(leftovers) != 1 || leftovers[0].Name != leftover {
		t.Fatalf("ListBoth = %v and %v; want a.share0 and %s", files, leftovers, leftover)
	}
	if n := s.Requests()["opendir"] - before; n != 1 {
		t.Fatalf("ListBoth opened the folder %d times; want once", n)
	}
}
