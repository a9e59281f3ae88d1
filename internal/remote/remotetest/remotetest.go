// Package remotetest is the conformance suite every remote backend passes,
// so a new kind of host is proven by one call to Run.
package remotetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
)

// Flip changes the byte at offset at of the file name (a slash path under
// the host's folder) behind the backend's back, as a failing disk would.
type Flip func(name string, at int64) error

// InDir is the Flip of a host whose files are in dir on this machine.
func InDir(dir string) Flip {
	return func(name string, at int64) error {
		f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(name)), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, at); err != nil {
			return err
		}
		b[0] ^= 1
		_, err = f.WriteAt(b, at)
		return err
	}
}

// Run runs the suite, its tests in parallel; newRemote returns an empty
// host of the backend under test, dialled with opts and closed by the
// suite, and the means to change its files as a failing disk would. A
// backend whose uploads are no files until they are committed (an object
// store's multipart uploads) returns a nil Flip, and the two tests that
// change a temp file are skipped.
func Run(t *testing.T, newRemote func(t *testing.T, opts remote.DialOptions) (remote.Remote, Flip)) {
	tests := []struct {
		name string
		f    func(t *testing.T, r remote.Remote)
	}{
		{"RoundTrip", testRoundTrip},
		{"Empty", testEmpty},
		{"Missing", testMissing},
		{"List", testList},
		{"Atomic", testAtomic},
		{"NoClobber", testNoClobber},
		{"SameNameRace", testSameNameRace},
		{"Abort", testAbort},
		{"Concurrent", testConcurrent},
		{"BadNames", testBadNames},
		{"Remove", testRemove},
		{"CleanTemp", testCleanTemp},
		{"Used", testUsed},
		{"Free", testFree},
	}
	open := func(t *testing.T, opts remote.DialOptions) (remote.Remote, Flip) {
		t.Parallel()
		r, flip := newRemote(t, opts)
		t.Cleanup(func() {
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return r, flip
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := open(t, remote.DialOptions{})
			tt.f(t, r)
		})
	}
	t.Run("Verify", func(t *testing.T) {
		r, flip := open(t, remote.DialOptions{Verify: true})
		skipWithoutFlip(t, flip)
		testVerify(t, r, flip)
	})
	t.Run("NoVerify", func(t *testing.T) {
		r, flip := open(t, remote.DialOptions{})
		skipWithoutFlip(t, flip)
		testNoVerify(t, r, flip)
	})
	t.Run("NoFsync", func(t *testing.T) {
		// fsync=no: files still go whole under their names (past a local
		// folder's 8 MiB of writeback too).
		r, _ := open(t, remote.DialOptions{NoFsync: true})
		data := Data(9<<20, 13)
		Put(t, r, "nosync", data)
		checkBytes(t, "nosync", Get(t, r, "nosync", 0), data)
	})
}

func skipWithoutFlip(t *testing.T, flip Flip) {
	if flip == nil {
		t.Skip("uploads of this kind of host are no files on this machine before they are committed")
	}
}

// Data returns n pseudo-random bytes, the same for a seed.
func Data(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}).Read(b)
	return b
}

// Put uploads data to name in uneven pieces and commits it.
func Put(t testing.TB, r remote.Remote, name string, data []byte) {
	t.Helper()
	if err := TryPut(r, name, data); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// TryPut is Put that returns the error.
func TryPut(r remote.Remote, name string, data []byte) error {
	ctx := context.Background()
	up, err := r.Create(ctx, name)
	if err != nil {
		return err
	}
	defer up.Abort()
	if err := write(up, data); err != nil {
		return err
	}
	return up.Commit(ctx)
}

// write feeds data in pieces of changing size, as a pipe would.
func write(w io.Writer, data []byte) error {
	for i, step := 0, 1; len(data) > 0; i++ {
		n := min(step, len(data))
		m, err := w.Write(data[:n])
		if err != nil {
			return err
		}
		if m != n {
			return fmt.Errorf("short write: %d of %d", m, n)
		}
		data = data[n:]
		step = step*7%(300<<10) + 1
	}
	return nil
}

// Get reads name from offset to the end.
func Get(t testing.TB, r remote.Remote, name string, offset int64) []byte {
	t.Helper()
	rc, err := r.Open(context.Background(), name, offset)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func checkBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d (equal: %v)", what, len(got), len(want), false)
	}
}

// mustNotExist checks that err says a file is absent and names the host.
func mustNotExist(t testing.TB, r remote.Remote, what string, err error) {
	t.Helper()
	if !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("%s: got %v, want ErrNotExist", what, err)
	}
	if !strings.Contains(err.Error(), r.String()) {
		t.Errorf("%s: error %q does not name host %s", what, err, r)
	}
}

func names(infos []remote.Info) string {
	var s []string
	for _, fi := range infos {
		n := fi.Name
		if fi.Dir {
			n += "/"
		}
		s = append(s, n)
	}
	return strings.Join(s, " ")
}

func testRoundTrip(t *testing.T, r remote.Remote) {
	data := Data(3<<20+12345, 1)
	Put(t, r, "b1/share.001", data)
	ctx := context.Background()
	fi, err := r.Stat(ctx, "b1/share.001")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != int64(len(data)) || fi.Dir || fi.Name != "b1/share.001" {
		t.Errorf("Stat = %+v, want size %d", fi, len(data))
	}
	if d := time.Since(fi.ModTime); d < -time.Minute || d > time.Hour {
		t.Errorf("ModTime %v is not about now", fi.ModTime)
	}
	for _, off := range []int64{0, 1, 32 << 10, 1<<20 + 7, int64(len(data)) - 1, int64(len(data))} {
		checkBytes(t, fmt.Sprintf("read from %d", off), Get(t, r, "b1/share.001", off), data[off:])
	}
	rc, err := r.Open(ctx, "b1/share.001", 100)
	if err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 10)
	if _, err := io.ReadFull(rc, small); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	checkBytes(t, "10 bytes at 100", small, data[100:110])
}

func testEmpty(t *testing.T, r remote.Remote) {
	Put(t, r, "empty", nil)
	fi, err := r.Stat(context.Background(), "empty")
	if err != nil || fi.Size != 0 {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	if got := Get(t, r, "empty", 0); len(got) != 0 {
		t.Fatalf("read %d bytes from an empty file", len(got))
	}
}

func testMissing(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	_, err := r.Stat(ctx, "nope")
	mustNotExist(t, r, "Stat", err)
	_, err = r.Open(ctx, "dir/nope", 0)
	mustNotExist(t, r, "Open", err)
	mustNotExist(t, r, "Remove", r.Remove(ctx, "nope"))
	_, err = r.List(ctx, "nodir")
	mustNotExist(t, r, "List", err)
}

func testList(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	if infos, err := r.List(ctx, ""); err != nil || len(infos) != 0 {
		t.Fatalf("List of an empty host = %q, %v", names(infos), err)
	}
	Put(t, r, "a/c", []byte("cc"))
	Put(t, r, "a/b", []byte("b"))
	Put(t, r, "a/d/e", []byte("eee"))
	Put(t, r, "top", []byte("t"))
	for dir, want := range map[string]string{"": "a/ top", ".": "a/ top", "a": "b c d/", "a/d": "e"} {
		infos, err := r.List(ctx, dir)
		if err != nil {
			t.Fatalf("List(%q): %v", dir, err)
		}
		if got := names(infos); got != want {
			t.Errorf("List(%q) = %q, want %q", dir, got, want)
		}
	}
	infos, err := r.List(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].Size != 1 || infos[1].Size != 2 {
		t.Errorf("List sizes: %+v", infos)
	}
}

func testAtomic(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	data := Data(2<<20, 2)
	up, err := r.Create(ctx, "b/s")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if err := write(up, data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	_, err = r.Stat(ctx, "b/s")
	mustNotExist(t, r, "Stat of a file being uploaded", err)
	_, err = r.Open(ctx, "b/s", 0)
	mustNotExist(t, r, "Open of a file being uploaded", err)
	if infos, err := r.List(ctx, "b"); err != nil || len(infos) != 0 {
		t.Fatalf("List during upload = %q, %v; want nothing", names(infos), err)
	}
	temps, err := r.ListTemp(ctx, "b")
	if err != nil || len(temps) != 1 || !remote.IsTemp(temps[0].Name) || !strings.HasSuffix(temps[0].Name, "-s") {
		t.Fatalf("ListTemp during upload = %q, %v; want one temp file", names(temps), err)
	}
	if files, leftovers, err := remote.ListBoth(ctx, r, "b"); err != nil || len(files) != 0 || names(leftovers) != names(temps) {
		t.Fatalf("ListBoth during upload = %q and %q, %v; want nothing and %q", names(files), names(leftovers), err, names(temps))
	}
	if err := write(up, data[1<<20:]); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if temps, err := r.ListTemp(ctx, "b"); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after Commit = %q, %v", names(temps), err)
	}
	if infos, err := r.List(ctx, "b"); err != nil || names(infos) != "s" {
		t.Fatalf("List after Commit = %q, %v", names(infos), err)
	}
	checkBytes(t, "after commit", Get(t, r, "b/s", 0), data)
	if _, err := up.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := up.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	checkBytes(t, "after abort", Get(t, r, "b/s", 0), data)
}

func testNoClobber(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	first := Data(100<<10, 3)
	Put(t, r, "x", first)
	up, err := r.Create(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := write(up, Data(50<<10, 4)); err != nil {
		t.Fatal(err)
	}
	err = up.Commit(ctx)
	if !errors.Is(err, remote.ErrExist) {
		t.Fatalf("Commit over an existing file: got %v, want ErrExist", err)
	}
	if !strings.Contains(err.Error(), r.String()) {
		t.Errorf("error %q does not name host %s", err, r)
	}
	if err := up.Abort(); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "the first file", Get(t, r, "x", 0), first)
	if temps, err := r.ListTemp(ctx, ""); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after Abort = %q, %v", names(temps), err)
	}
}

// testSameNameRace starts uploads to one name at once: exactly one wins,
// whole, and the rest get ErrExist. Three make two losers: an rclone
// upload is six process starts.
func testSameNameRace(t *testing.T, r remote.Remote) {
	const n = 3
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = TryPut(r, "same", Data(200<<10, uint64(10+i))) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("uploads %d and %d both committed", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, remote.ErrExist):
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no upload committed")
	}
	checkBytes(t, "the winner", Get(t, r, "same", 0), Data(200<<10, uint64(10+won)))
}

func testAbort(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	up, err := r.Create(ctx, "d/gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := write(up, Data(1<<20, 5)); err != nil {
		t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	// An upload aborted before its first byte reached the host may leave
	// no folder at all (rclone's rcat creates it on its first write).
	if temps, err := r.ListTemp(ctx, "d"); (err != nil && !errors.Is(err, remote.ErrNotExist)) || len(temps) != 0 {
		t.Fatalf("ListTemp after Abort = %q, %v", names(temps), err)
	}
	_, err = r.Stat(ctx, "d/gone")
	mustNotExist(t, r, "Stat after Abort", err)
	if err := up.Commit(ctx); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

// testConcurrent runs uploads of different names to one host at once, with
// their writes interleaved: none touches another's file. Four are enough
// to interleave; each is eight process starts on rclone.
func testConcurrent(t *testing.T, r remote.Remote) {
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = TryPut(r, fmt.Sprintf("c/s%d", i), Data(300<<10+i*1000, uint64(20+i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	for i := range n {
		checkBytes(t, fmt.Sprintf("c/s%d", i), Get(t, r, fmt.Sprintf("c/s%d", i), 0), Data(300<<10+i*1000, uint64(20+i)))
	}
}

func testBadNames(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	for _, name := range []string{"", ".", "..", "../x", "a/../../x", "/etc/passwd", "a//b", "a/", `a\b`, ".tmp-0123-x", "d/.tmp-x"} {
		if up, err := r.Create(ctx, name); err == nil {
			up.Abort()
			t.Errorf("Create(%q) succeeded", name)
		} else if !strings.Contains(err.Error(), r.String()) {
			t.Errorf("Create(%q): error %q does not name host %s", name, err, r)
		}
	}
	for _, name := range []string{"", "../x", "/etc/passwd"} {
		if _, err := r.Stat(ctx, name); err == nil || errors.Is(err, remote.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want a bad-name error", name, err)
		}
		if rc, err := r.Open(ctx, name, 0); err == nil {
			rc.Close()
			t.Errorf("Open(%q) succeeded", name)
		}
		if err := r.Remove(ctx, name); err == nil {
			t.Errorf("Remove(%q) succeeded", name)
		}
	}
	if _, err := r.List(ctx, "../x"); err == nil {
		t.Error("List(../x) succeeded")
	}
}

func testRemove(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	Put(t, r, "r/f", []byte("x"))
	if err := r.Remove(ctx, "r/f"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Stat(ctx, "r/f")
	mustNotExist(t, r, "Stat after Remove", err)
	if err := r.Remove(ctx, "r"); err != nil {
		t.Fatalf("Remove of an empty folder: %v", err)
	}
	if infos, err := r.List(ctx, ""); err != nil || len(infos) != 0 {
		t.Fatalf("List after Remove = %q, %v", names(infos), err)
	}
}

// is reports whether a name is name.
func is(name string) func(string) bool { return func(n string) bool { return n == name } }

func testCleanTemp(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	Put(t, r, "t/kept", []byte("k"))
	up, err := r.Create(ctx, "t/stale")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	probe := remote.ProbePrefix + "0123456789abcdef"
	Put(t, r, "t/"+probe, []byte("p"))
	if n, err := remote.CleanTemp(ctx, r, "t", time.Now().Add(-time.Hour), nil); err != nil || n != 0 {
		t.Fatalf("CleanTemp(1h) = %d, %v; want 0 removed", n, err)
	}
	// The caller's own test file and the temp files of the one it names
	// stay, however old they look.
	if n, err := remote.CleanTemp(ctx, r, "t", time.Now().Add(time.Hour), is(probe)); err != nil || n != 1 {
		t.Fatalf("CleanTemp(-1h) but the test file = %d, %v; want the temp file removed", n, err)
	}
	up2, err := r.Create(ctx, "t/"+probe+"2")
	if err != nil {
		t.Fatal(err)
	}
	defer up2.Abort()
	if _, err := up2.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if n, err := remote.CleanTemp(ctx, r, "t", time.Now().Add(time.Hour), is(probe+"2")); err != nil || n != 1 {
		t.Fatalf("CleanTemp(-1h) but the test file's temp = %d, %v; want the other test file removed", n, err)
	}
	if n, err := remote.CleanTemp(ctx, r, "t", time.Now().Add(time.Hour), nil); err != nil || n != 1 {
		t.Fatalf("CleanTemp(-1h) = %d, %v; want 1 removed", n, err)
	}
	if temps, err := r.ListTemp(ctx, "t"); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after CleanTemp = %q, %v", names(temps), err)
	}
	if err := up.Commit(ctx); err == nil {
		t.Fatal("Commit of a removed temp file succeeded")
	}
	if _, err := r.Stat(ctx, "t/stale"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("t/stale appeared: %v", err)
	}
	checkBytes(t, "t/kept", Get(t, r, "t/kept", 0), []byte("k"))
}

func testUsed(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	if n, err := remote.Used(ctx, r, "u", nil); err != nil || n != 0 {
		t.Fatalf("Used of a missing folder = %d, %v", n, err)
	}
	Put(t, r, "u/a", Data(1000, 6))
	Put(t, r, "u/sub/b", Data(2000, 7))
	Put(t, r, "other", Data(4000, 8))
	up, err := r.Create(ctx, "u/sub/c")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write(Data(500, 9)); err != nil {
		t.Fatal(err)
	}
	// The upload may still hold its bytes in memory, so count only what
	// is committed, plus at most what it wrote.
	n, err := remote.Used(ctx, r, "u", nil)
	if err != nil || n < 3000 || n > 3500 {
		t.Fatalf("Used(u) = %d, %v; want 3000 to 3500", n, err)
	}
	if err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := remote.Used(ctx, r, "", nil); err != nil || n != 7500 {
		t.Fatalf("Used() = %d, %v; want 7500", n, err)
	}

	// A caller's own test file, and one still being written, are not
	// counted when it says so; others' are.
	probe := remote.ProbePrefix + "ours-"
	Put(t, r, "u/"+probe+"1", Data(18, 10))
	Put(t, r, "u/"+remote.ProbePrefix+"theirs-1", Data(20, 11))
	writing, err := r.Create(ctx, "u/"+probe+"2")
	if err != nil {
		t.Fatal(err)
	}
	defer writing.Abort()
	if _, err := writing.Write(Data(300, 12)); err != nil {
		t.Fatal(err)
	}
	ours := func(name string) bool { return strings.HasPrefix(name, probe) }
	if n, err := remote.Used(ctx, r, "", ours); err != nil || n != 7520 {
		t.Fatalf("Used() skipping the caller's test files = %d, %v; want 7520", n, err)
	}
	if n, err := remote.Used(ctx, r, "", nil); err != nil || n < 7538 {
		t.Fatalf("Used() = %d, %v; want at least 7538", n, err)
	}
	writing.Abort()
	for _, name := range []string{probe + "1", remote.ProbePrefix + "theirs-1"} {
		if err := r.Remove(ctx, "u/"+name); err != nil {
			t.Fatal(err)
		}
	}
}

func testFree(t *testing.T, r remote.Remote) {
	n, err := r.Free(context.Background())
	if errors.Is(err, remote.ErrUnknownSpace) {
		t.Skip("host cannot say how much space is free")
	}
	if err != nil || n <= 0 {
		t.Fatalf("Free = %d, %v", n, err)
	}
}

// changed is more than a backend may hold in memory, so that a part of it
// has reached the host's disk before Commit.
const changed = 9 << 20

// upChanged writes data to name and then, before Commit, flips a byte of
// the temp file, as a failing disk would.
func upChanged(t *testing.T, r remote.Remote, flip Flip, name string, data []byte) remote.Upload {
	t.Helper()
	ctx := context.Background()
	up, err := r.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Abort() })
	if err := write(up, data); err != nil {
		t.Fatal(err)
	}
	temps, err := r.ListTemp(ctx, path.Dir(name))
	if err != nil || len(temps) != 1 || temps[0].Size == 0 {
		t.Fatalf("ListTemp before Commit = %+v, %v; want one temp file holding some bytes", temps, err)
	}
	if err := flip(path.Join(path.Dir(name), temps[0].Name), temps[0].Size/2); err != nil {
		t.Fatal(err)
	}
	return up
}

// testVerify checks that with Verify, Commit reads the temp file back: a
// file whose bytes changed on the host never appears under its name.
func testVerify(t *testing.T, r remote.Remote, flip Flip) {
	ctx := context.Background()
	data := Data(changed, 40)
	Put(t, r, "v/good", data)
	checkBytes(t, "v/good", Get(t, r, "v/good", 0), data)

	up := upChanged(t, r, flip, "v/bad", data)
	err := up.Commit(ctx)
	if !errors.Is(err, remote.ErrChanged) {
		t.Fatalf("Commit of a changed file: got %v, want ErrChanged", err)
	}
	if !strings.Contains(err.Error(), r.String()) || !strings.Contains(err.Error(), "v/bad") {
		t.Errorf("error %q does not name host %s and file v/bad", err, r)
	}
	_, err = r.Stat(ctx, "v/bad")
	mustNotExist(t, r, "Stat after a failed check", err)
	if temps, err := r.ListTemp(ctx, "v"); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after a failed check = %q, %v; want the temp file removed", names(temps), err)
	}
	if err := up.Commit(ctx); err == nil {
		t.Fatal("second Commit of a changed file succeeded")
	}
	if err := up.Abort(); err != nil {
		t.Fatalf("Abort after a failed check: %v", err)
	}
}

// testNoVerify checks the suite's own means: without Verify, Commit trusts
// the size and the changed file takes its name; were it not changed,
// testVerify would prove nothing.
func testNoVerify(t *testing.T, r remote.Remote, flip Flip) {
	data := Data(changed, 41)
	up := upChanged(t, r, flip, "v/bad", data)
	if err := up.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, r, "v/bad", 0); bytes.Equal(got, data) || len(got) != len(data) {
		t.Fatal("the file was not changed; the Verify test proves nothing")
	}
}

// Resume checks that an upload and a read survive a connection cut: cut is
// called once during each, after a part of the data has gone through.
func Resume(t *testing.T, r remote.Remote, cut func()) {
	ctx := context.Background()
	data := Data(12<<20, 30)
	up, err := r.Create(ctx, "resume/s")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if err := write(up, data[:3<<20]); err != nil {
		t.Fatal(err)
	}
	cut()
	if err := write(up, data[3<<20:]); err != nil {
		t.Fatalf("write after the cut: %v", err)
	}
	if err := up.Commit(ctx); err != nil {
		t.Fatalf("commit after the cut: %v", err)
	}
	rc, err := r.Open(ctx, "resume/s", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 2<<20)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	cut()
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read after the cut: %v", err)
	}
	checkBytes(t, "resumed file", append(head, rest...), data[1:])
	if temps, err := r.ListTemp(ctx, "resume"); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after a resumed upload = %q, %v", names(temps), err)
	}
}

// remoteShare is a share stored on a host, as bk-join reads it.
type remoteShare struct {
	r    remote.Remote
	name string
}

func (s remoteShare) Name() string { return s.name }

func (s remoteShare) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	return s.r.Open(ctx, s.name, offset)
}

func (s remoteShare) OpenRange(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
	return remote.OpenRange(ctx, s.r, s.name, offset, length)
}

// JoinReadsChecksumsOnly joins a k=2 n=4 set whose shares are all on r,
// and checks that what the host sent (down counts it) is close to k/n of
// the share bytes plus the other shares' checksums: the shares not needed
// for their blocks are read for their records, and that must not cost
// their blocks, but where a read is a request (shard.RequestSizer), those
// between the checksums of the records of a span that one read gets.
// probe is what opening a share to read its header may cost beyond the
// header.
func JoinReadsChecksumsOnly(t *testing.T, r remote.Remote, down func() int64, probe int64) {
	ctx := context.Background()
	const k, n = 2, 4
	data, info, sources, shareBytes := storeShares(t, r, "join", k, n)
	// As many records' checksums a read as fit in its RequestSize.
	span := int64(1)
	if rc, err := sources[0].Open(ctx, 0); err == nil {
		if rs, ok := rc.(shard.RequestSizer); ok {
			span = 1 + int64(rs.RequestSize()-info.N*shard.HashSize)/int64(info.RecordSize())
		}
		rc.Close()
	}
	before := down()
	var out bytes.Buffer
	if _, err := shard.Join(ctx, sources, &out, shard.JoinOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("join: %v", err)
	}
	read := down() - before
	stripes := int64(len(data)) / int64(k*info.BlockSize)
	spans := (stripes + span - 1) / span
	records := int64(n-k) * (stripes*int64(n*shard.HashSize) + spans*(span-1)*int64(info.BlockSize))
	t.Logf("checksums read %d records a read", span)
	// A few per cent for the framing of each request.
	limit := (shareBytes*k/n + records + n*probe) * 21 / 20
	t.Logf("read %d bytes of %d in shares (%.2f); limit %d", read, shareBytes, float64(read)/float64(shareBytes), limit)
	if read > limit {
		t.Errorf("join downloaded %d bytes, more than the %d of %d of %d shares and the others' checksums", read, limit, k, n)
	}
}

// ReaderAtReadsStripesOnly opens a k=2 n=4 set whose shares are all on r
// for ranged reads (shard.ReaderAt) and reads 40 KiB from its middle: what
// the host sent (down) must be what the reader fetched (headers, trailers,
// the records of k shares and the checksums of the others for the two
// stripes read) and, for each share, probe for opening it and perReq for
// each request, no more.
func ReaderAtReadsStripesOnly(t *testing.T, r remote.Remote, down func() int64, probe, perReq int64) {
	ctx := context.Background()
	const k, n = 2, 4
	data, info, sources, shareBytes := storeShares(t, r, "readat", k, n)
	before := down()
	ra, err := shard.NewReaderAt(ctx, sources, shard.ReadAtOptions{Length: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	off := info.StripeSize()*30 + 1000
	p := make([]byte, 40<<10)
	if _, err := ra.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
		t.Fatalf("ReadAt: %v", err)
	}
	read, st := down()-before, ra.Stats()
	requests := int64(n + n + 2*n) // headers, trailers, then a read of each share a stripe
	// A header is read in one request of 512 bytes.
	want := int64(2*(k*info.RecordSize()+(n-k)*n*shard.HashSize)) + n*int64(512+shard.TrailerSize)
	limit := st.Fetched + n*probe + requests*perReq
	t.Logf("fetched %d bytes, the host sent %d of %d in shares (%.4f); limit %d", st.Fetched, read, shareBytes, float64(read)/float64(shareBytes), limit)
	switch {
	case st.Fetched != want || st.Stripes != 2:
		t.Errorf("fetched %d bytes in %d stripes, want %d in 2", st.Fetched, st.Stripes, want)
	case read > limit:
		t.Errorf("the host sent %d bytes for a read that fetched %d (limit %d)", read, st.Fetched, limit)
	}
}

// storeShares splits 2 MiB k of n in 16 KiB blocks and stores the shares
// on r under dir.
func storeShares(t *testing.T, r remote.Remote, dir string, k, n int) (data []byte, info shard.SetInfo, sources []shard.Source, shareBytes int64) {
	ctx := context.Background()
	data = Data(2<<20, 40)
	bufs := make([]bytes.Buffer, n)
	ws := make([]io.Writer, n)
	for i := range bufs {
		ws[i] = &bufs[i]
	}
	info, _, err := shard.Split(ctx, bytes.NewReader(data), ws, shard.SplitOptions{K: k, N: n, BlockSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range bufs {
		name := fmt.Sprintf("%s/share-%d", dir, i)
		up, err := r.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(up, bufs[i].Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := up.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		shareBytes += int64(bufs[i].Len())
		sources = append(sources, remoteShare{r, name})
	}
	return data, info, sources, shareBytes
}
