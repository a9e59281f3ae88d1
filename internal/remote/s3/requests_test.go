package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/s3test"
)

// Every request costs the store CPU and the client a round trip (issue
// 16: versitygw was a fifth of the soak's CPU). These tests count what
// each operation asks of the store, through a counting proxy.

// viaCounter is a fresh bucket behind a counting proxy, and a dial of it
// (a run of a tool).
func viaCounter(t *testing.T) (connect func() *S3, c *s3test.Counter) {
	t.Helper()
	s := server(t)
	loc := bucket(t, s, "p")
	c, err := s3test.NewCounter(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	loc.Endpoint = c.Endpoint
	return func() *S3 { return dial(t, loc, remote.DialOptions{}) }, c
}

// expect runs f and fails the test unless it asked exactly want of the
// store ("Op N, …" sorted by operation).
func expect(t *testing.T, c *s3test.Counter, what, want string, f func()) {
	t.Helper()
	before := c.Requests()
	f()
	if got := s3test.Since(before, c.Requests()); got != want {
		t.Errorf("%s asked %q of the store, want %q", what, got, want)
	}
}

// A file smaller than a part is one PUT (with If-None-Match: *), after a
// HEAD that checks the name is free; once the store has refused a
// conditional PUT (here a folder's marker that is there), it keeps the
// condition, and the PUT is all. It was five requests: create, part,
// list of parts, HEAD, complete.
func TestRequestsSmallUpload(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	first := []byte("first")
	expect(t, c, "a small file to a new folder", "HeadObject 1, PutObject 2", func() { remotetest.Put(t, r, "d/a", first) })
	expect(t, c, "a small file", "HeadObject 1, PutObject 1", func() { remotetest.Put(t, r, "d/b", []byte("b")) })
	expect(t, c, "an empty file", "HeadObject 1, PutObject 1", func() { remotetest.Put(t, r, "d/empty", nil) })

	r = connect() // another run: the folder's marker is there
	expect(t, c, "a small file to a folder there", "PutObject 2", func() { remotetest.Put(t, r, "d/c", []byte("c")) })
	expect(t, c, "a small file, the condition known kept", "PutObject 1", func() { remotetest.Put(t, r, "d/e", []byte("e")) })
	expect(t, c, "a small file over one that is there", "PutObject 1", func() {
		if err := remotetest.TryPut(r, "d/a", []byte("second")); !errors.Is(err, remote.ErrExist) {
			t.Errorf("a PUT over d/a: %v, want ErrExist", err)
		}
	})
	if got := remotetest.Get(t, r, "d/a", 0); !bytes.Equal(got, first) {
		t.Fatalf("d/a holds %q after a refused upload, want %q", got, first)
	}
	for name, want := range map[string]string{"d/b": "b", "d/c": "c", "d/e": "e", "d/empty": ""} {
		if got := remotetest.Get(t, r, name, 0); string(got) != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	if info, err := r.Stat(ctx, "d/empty"); err != nil || info.Size != 0 || info.Dir {
		t.Errorf("Stat(d/empty) = %+v, %v", info, err)
	}
}

// On a store that ignores If-None-Match, a conditional PUT over a marker
// is taken (an empty object for an empty one), so the condition is never
// taken for kept: the HEAD before each PUT is what keeps a file from
// being replaced (FORMAT.md states the window it leaves).
func TestRequestsStoreIgnoresConditions(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	first := []byte("first")
	remotetest.Put(t, connect(), "d/a", first)
	c.IgnoreConditions(true)
	r := connect()
	expect(t, c, "a small file to a folder there", "HeadObject 1, PutObject 2", func() { remotetest.Put(t, r, "d/b", []byte("b")) })
	expect(t, c, "a small file over one that is there", "HeadObject 1", func() {
		if err := remotetest.TryPut(r, "d/a", []byte("second")); !errors.Is(err, remote.ErrExist) {
			t.Errorf("a PUT over d/a: %v, want ErrExist", err)
		}
	})
	if got := remotetest.Get(t, r, "d/a", 0); !bytes.Equal(got, first) {
		t.Fatalf("d/a holds %q, want %q", got, first)
	}
}

// An upload that never fills a part is held in memory: a run killed
// before its Commit leaves nothing on the store, not even an upload to
// abort, while the run itself lists it as a temp file (for its quota and
// its clean-up, which cancels it).
func TestKilledSmallUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	up, err := r.Create(ctx, "d/x")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write([]byte("never committed")); err != nil {
		t.Fatal(err)
	}
	if temps, err := r.ListTemp(ctx, "d"); err != nil || len(temps) != 1 || temps[0].Size != 15 {
		t.Fatalf("the run's own ListTemp = %+v, %v; want its upload of 15 bytes", temps, err)
	}
	other := connect()
	if temps, err := other.ListTemp(ctx, "d"); err != nil || len(temps) != 0 {
		t.Fatalf("another run's ListTemp = %+v, %v; want nothing", temps, err)
	}
	if _, err := other.Stat(ctx, "d/x"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Stat(d/x) in another run: %v", err)
	}
	if n := c.Requests()["CreateMultipartUpload"]; n != 0 {
		t.Errorf("%d multipart uploads started for a small file", n)
	}
}

// A folder's files and leftovers are one listing of objects and one of
// uploads; its files alone, the first. They were two of each, and two.
// A Stat is a HEAD of the file, and of its folder's marker when there is
// no file. That was a listing of the folder, which cost the store a walk
// of the folder above: bk-push looks for its test files on every host.
func TestRequestsListAndStat(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	remotetest.Put(t, r, "d/a", []byte("a"))
	expect(t, c, "ListBoth", "ListMultipartUploads 1, ListObjects 1", func() {
		if files, temps, err := remote.ListBoth(ctx, r, "d"); err != nil || len(files) != 1 || len(temps) != 0 {
			t.Errorf("ListBoth = %+v, %+v, %v", files, temps, err)
		}
	})
	expect(t, c, "List", "ListObjects 1", func() {
		if files, err := r.List(ctx, "d"); err != nil || len(files) != 1 {
			t.Errorf("List = %+v, %v", files, err)
		}
	})
	expect(t, c, "Stat of a file", "HeadObject 1", func() {
		if info, err := r.Stat(ctx, "d/a"); err != nil || info.Size != 1 || info.Dir {
			t.Errorf("Stat(d/a) = %+v, %v", info, err)
		}
	})
	expect(t, c, "Stat of a folder", "HeadObject 2", func() {
		if info, err := r.Stat(ctx, "d"); err != nil || !info.Dir {
			t.Errorf("Stat(d) = %+v, %v", info, err)
		}
	})
	expect(t, c, "Stat of nothing", "HeadObject 2", func() {
		if _, err := r.Stat(ctx, "d/nope"); !errors.Is(err, remote.ErrNotExist) {
			t.Errorf("Stat(d/nope): %v", err)
		}
	})
}

// A reader learns the object's size from its first answer: reads at or
// past the end cost no request (they were a GET each, answered 416, and
// for a Read a HEAD after it), and a read across it asks for what is
// there.
func TestRequestsReadEnd(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	exact, big := remotetest.Data(firstRange, 1), remotetest.Data(3*firstRange, 2)
	remotetest.Put(t, r, "exact", exact)
	remotetest.Put(t, r, "big", big)
	expect(t, c, "a read to the end of an object of one range", "GetObject 1", func() {
		if got := remotetest.Get(t, r, "exact", 0); !bytes.Equal(got, exact) {
			t.Errorf("read %d bytes, want %d", len(got), len(exact))
		}
	})
	rc, err := r.Open(ctx, "big", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	at := rc.(io.ReaderAt)
	expect(t, c, "reads at and past the end", "", func() {
		for _, off := range []int64{int64(len(big)), int64(len(big)) + 1000} {
			if n, err := at.ReadAt(make([]byte, 100), off); n != 0 || err != io.EOF {
				t.Errorf("ReadAt(100 bytes at %d) = %d, %v; want 0, io.EOF", off, n, err)
			}
		}
	})
	expect(t, c, "a read across the end", "GetObject 1", func() {
		p := make([]byte, 100)
		off := int64(len(big)) - 40
		if n, err := at.ReadAt(p, off); n != 40 || err != io.EOF || !bytes.Equal(p[:n], big[off:]) {
			t.Errorf("ReadAt across the end = %d, %v; want the last 40 bytes and io.EOF", n, err)
		}
	})
}

// A file read through is read in ranges growing fourfold from the first
// (the header's) to a part's size: 128 KiB, 512 KiB, 2 MiB for a file of
// 2 MiB (doubling from 32 KiB, it was seven).
func TestRequestsReadThrough(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	data := remotetest.Data(2<<20, 4)
	remotetest.Put(t, r, "f", data)
	expect(t, c, "a read of 2 MiB through", "GetObject 3", func() {
		if got := remotetest.Get(t, r, "f", 0); !bytes.Equal(got, data) {
			t.Errorf("read %d bytes, want %d", len(got), len(data))
		}
	})
}

// One run's requests to a host share one connection when they come one
// at a time: a reader closed before the end of its first range reads
// that range's rest rather than close the connection.
func TestConnectionReused(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	remotetest.Put(t, r, "d/big", remotetest.Data(3*firstRange, 3))
	remotetest.Put(t, r, "d/small", []byte("small"))
	for i := range 3 {
		rc, err := r.Open(ctx, "d/big", int64(i)*1000)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if got := remotetest.Get(t, r, "d/small", 0); string(got) != "small" {
			t.Fatalf("d/small holds %q", got)
		}
		if _, err := r.Stat(ctx, "d/big"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.List(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if n := c.Conns(); n != 1 {
		t.Errorf("%d connections for %d requests one after another, want 1", n, c.Total())
	}
}

// A run asks the store nothing before its first request: that one tells
// a missing bucket. A HEAD's 404 cannot (it has no body), so a Stat of a
// name not there asks about the bucket, once, when no answer has shown
// it yet.
func TestRequestsNoBucketCheck(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	ctx := context.Background()
	remotetest.Put(t, connect(), "d/a", []byte("a"))
	expect(t, c, "a run that lists", "ListObjects 1", func() {
		if _, err := connect().List(ctx, "d"); err != nil {
			t.Error(err)
		}
	})
	r := connect()
	expect(t, c, "a run that Stats a name not there, twice", "HeadBucket 1, HeadObject 4", func() {
		for range 2 {
			if _, err := r.Stat(ctx, "d/nope"); !errors.Is(err, remote.ErrNotExist) {
				t.Errorf("Stat(d/nope): %v", err)
			}
		}
	})
}

// A folder's leftovers are its uploads and the objects whose names start
// with a dot (temp and test files): the store lists those alone, not the
// folder's every object.
func TestRequestsListTemp(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	for _, name := range []string{"d/a", "d/b", "d/" + remote.ProbePrefix + "0123456789abcdef"} {
		remotetest.Put(t, r, name, []byte("x"))
	}
	listed := len(c.Prefixes())
	expect(t, c, "ListTemp", "ListMultipartUploads 1, ListObjects 1", func() {
		if temps, err := r.ListTemp(ctx, "d"); err != nil || len(temps) != 1 || temps[0].Name != remote.ProbePrefix+"0123456789abcdef" {
			t.Errorf("ListTemp = %+v, %v; want the test file", temps, err)
		}
	})
	if got := c.Prefixes()[listed:]; !slices.Equal(got, []string{"p/d/."}) {
		t.Errorf("ListTemp listed the objects of prefixes %q, want those of \"p/d/.\"", got)
	}
	if temps, err := r.ListTemp(ctx, "d/a-folder-not-there"); !errors.Is(err, remote.ErrNotExist) {
		t.Errorf("ListTemp of a missing folder = %+v, %v", temps, err)
	}
	remotetest.Put(t, r, "e/a", []byte("x"))
	if temps, err := r.ListTemp(ctx, "e"); err != nil || len(temps) != 0 {
		t.Errorf("ListTemp of a folder without leftovers = %+v, %v", temps, err)
	}
}
