package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
)

func TestSuite(t *testing.T) {
	remotetest.Run(t, func(t *testing.T, opts remote.DialOptions) (remote.Remote, remotetest.Flip) {
		dir := t.TempDir()
		l, err := New(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		return l, remotetest.InDir(dir)
	})
}

func TestNewRefusesMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "unmounted")
	_, err := New(dir, remote.DialOptions{})
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "host "+dir+": ") {
		t.Fatalf("got %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file, remote.DialOptions{}); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Fatalf("got %v", err)
	}
}

func TestWriteErrorFailsCommit(t *testing.T) {
	l, err := New(t.TempDir(), remote.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	up, err := l.Create(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	up.(*upload).f.Close() // the next write fails as on a yanked disk
	if _, err := up.Write([]byte("x")); err == nil {
		t.Fatal("write to a closed file succeeded")
	}
	if err := up.Commit(ctx); err == nil || !strings.Contains(err.Error(), l.String()) {
		t.Fatalf("Commit after a failed write: %v", err)
	}
	if _, err := l.Stat(ctx, "f"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("f appeared: %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	l, err := New(t.TempDir(), remote.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Create(ctx, "f"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create: %v", err)
	}
	if _, err := l.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("List: %v", err)
	}
}

// Two folders of one file system name it alike; another file system
// (the /proc of Linux) differently.
func TestFileSystem(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	var names []string
	for _, dir := range []string{filepath.Join(base, "a"), filepath.Join(base, "b"), "/proc"} {
		if dir != "/proc" {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		} else if _, err := os.Stat(dir); err != nil {
			t.Skip("no /proc to compare with")
		}
		l, err := New(dir, remote.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name, err := l.FileSystem(ctx)
		if err != nil || name == "" {
			t.Fatalf("%s: %q, %v", dir, name, err)
		}
		names = append(names, name)
	}
	if names[0] != names[1] || names[0] == names[2] {
		t.Fatalf("file systems %q: want the first two equal, the third not", names)
	}
}

// A file written past a few writeback starts (in odd-sized writes, so
// that they fall between records) is stored whole, with its hash.
func TestWritebackKeepsFileWhole(t *testing.T) {
	t.Parallel()
	l, err := New(t.TempDir(), remote.DialOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	up, err := l.Create(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	data := make([]byte, 2*writebackChunk+12345)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 1<<20+3)
		if _, err := up.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if q := up.(*upload).queued; q < 2*writebackChunk {
		t.Fatalf("writeback started for %d bytes of %d", q, len(data))
	}
	if err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(l.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("stored file differs from what was written")
	}
}

// List gives the files and folders of a folder, each with its size and
// time, and ListTemp the leftovers; neither gives a symlink or a FIFO.
func TestListKinds(t *testing.T) {
	dir := t.TempDir()
	when := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	temp := remote.TempName("upload")
	for name, size := range map[string]int{"share": 5, temp: 3} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("share", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := New(dir, remote.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	files, err := l.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "share" || files[0].Size != 5 || !files[0].ModTime.Equal(when) || files[0].Dir ||
		files[1].Name != "sub" || !files[1].Dir {
		t.Fatalf("List = %+v; want share (5 bytes, %v) and the folder sub", files, when)
	}
	temps, err := l.ListTemp(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(temps) != 1 || temps[0].Name != temp || temps[0].Size != 3 || !temps[0].ModTime.Equal(when) {
		t.Fatalf("ListTemp = %+v; want the upload's temp file (3 bytes, %v)", temps, when)
	}
}
