package sftp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// counting starts the in-process server, which counts the requests it
// serves, and makes a folder for it to serve.
func counting(t *testing.T) (*sshtest.Server, string) {
	t.Helper()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	s, err := sshtest.StartGo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s, folder(t)
}

// A tool that reads the catalog lists a host's files and its leftovers
// with one listing of the folder, not one for each.
func TestListBothListsOnce(t *testing.T) {
	t.Parallel()
	s, dir := counting(t)
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

// A reader of a file the host listed asks for no more than a byte past its
// listed end: the requests beyond it were each answered with the end.
func TestReadAheadStopsAtListedEnd(t *testing.T) {
	t.Parallel()
	s, dir := counting(t)
	data := remotetest.Data(100<<10, 7)
	if err := os.WriteFile(filepath.Join(dir, "s.share0"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := dial(t, s, at(s, dir), remote.DialOptions{})
	defer r.Close()
	reads := func() int {
		before := s.Requests()["read"]
		if got := remotetest.Get(t, r, "s.share0", 0); !bytes.Equal(got, data) {
			t.Fatal("read back other bytes")
		}
		return s.Requests()["read"] - before
	}
	// 32 KiB a request (the in-process server states no limits): chunks
	// of 32 KiB, 64 KiB and 128 KiB, the last four requests at once, of
	// which pkg/sftp sends fewer when the end's answer comes back first:
	// 5 to 7, by timing.
	if n := reads(); n < 5 || n > 7 {
		t.Fatalf("unlisted: %d read requests, want 5 to 7", n)
	}
	if _, err := r.List(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	// The last chunk is the 4 KiB left and a byte: answered short, then
	// the end.
	if n := reads(); n != 5 {
		t.Fatalf("listed: %d read requests, want 5", n)
	}
}

// Past one request, a read-ahead is whole requests.
func TestChunkAfterWholeRequests(t *testing.T) {
	for _, packet := range []int{defaultPacket, maxPacket, 100 << 10} {
		size := 0
		for range 10 {
			size = chunkAfter(size, packet)
			if size > packet && size%packet != 0 || size > readAhead {
				t.Fatalf("packet %d: a chunk of %d", packet, size)
			}
		}
		if size < readAhead-packet {
			t.Errorf("packet %d: read-ahead grows to %d only", packet, size)
		}
	}
}
