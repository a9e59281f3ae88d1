package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/s3test"
	"github.com/bk-backup/bk/internal/sshtest"
)

// shared is the versitygw that the tests share, each in buckets of its
// own: a server a test would cost a start, and keys set by t.Setenv would
// keep the tests from running in parallel.
var shared struct {
	once sync.Once
	s    *s3test.Server
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		shared.s.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// server starts the shared versitygw, once, and gives this process its
// keys, the way a user's environment would; tests that change the keys
// do so with t.Setenv, which puts them back.
func server(t testing.TB) *s3test.Server {
	t.Helper()
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "bk-s3-test-"); shared.err != nil {
			return
		}
		if shared.s, shared.err = s3test.Start(shared.dir); shared.err != nil {
			return
		}
		for _, kv := range shared.s.Env() {
			k, v, _ := strings.Cut(kv, "=")
			shared.err = errors.Join(shared.err, os.Setenv(k, v))
		}
	})
	if errors.Is(shared.err, s3test.ErrNoServer) {
		t.Skip(shared.err)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s
}

// startWith runs start on a fresh folder, skipping the test when
// versitygw is not installed; the server stops at the test's end.
func startWith(t testing.TB, start func(dir string) (*s3test.Server, error)) *s3test.Server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gw")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := start(dir)
	if errors.Is(err, s3test.ErrNoServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var buckets atomic.Int64

// bucket makes a fresh bucket and returns the Location of a host in it.
func bucket(t testing.TB, s *s3test.Server, prefix string) Location {
	t.Helper()
	name := fmt.Sprintf("bk-test-%d", buckets.Add(1))
	if err := s.MakeBucket(name); err != nil {
		t.Fatalf("make bucket %s: %v\n%s", name, err, s.Log())
	}
	return Location{Bucket: name, Prefix: prefix, Endpoint: s.Endpoint, PathStyle: true}
}

func dial(t testing.TB, loc Location, opts remote.DialOptions) *S3 {
	t.Helper()
	r, err := Dial(context.Background(), loc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSuite(t *testing.T) {
	t.Parallel()
	s := server(t)
	for what, prefix := range map[string]string{"top": "", "prefix": "backups/nas"} {
		t.Run(what, func(t *testing.T) {
			remotetest.Run(t, func(t *testing.T, opts remote.DialOptions) (remote.Remote, remotetest.Flip) {
				return dial(t, bucket(t, s, prefix), opts), nil
			})
		})
	}
}

// The server keeps connections alive, as S3 stores do: a folder's marker
// (an empty object) must leave nothing unread on its connection, which
// the next request would meet as garbage (versitygw answered it 400 Bad
// Request when minio-go sent the empty body in signed chunks).
func TestEmptyPutKeepsConnectionClean(t *testing.T) {
	s := server(t)
	r := dial(t, bucket(t, s, ""), remote.DialOptions{})
	for i := range 3 {
		data := []byte(fmt.Sprintf("file %d", i))
		remotetest.Put(t, r, fmt.Sprintf("d%d/e/f", i), data)
		if got := remotetest.Get(t, r, fmt.Sprintf("d%d/e/f", i), 0); !bytes.Equal(got, data) {
			t.Fatalf("read back %q, want %q", got, data)
		}
	}
}

var fastRetry = remote.Retry{Attempts: 5, First: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// TestManyParts sends an object of several parts, the last one short, and
// reads it back from inside its second part.
func TestManyParts(t *testing.T) {
	t.Parallel()
	s := server(t)
	r := dial(t, bucket(t, s, "p"), remote.DialOptions{})
	data := remotetest.Data(2*PartSize+12345, 1)
	remotetest.Put(t, r, "d/big", data)
	if got := remotetest.Get(t, r, "d/big", PartSize+7); !bytes.Equal(got, data[PartSize+7:]) {
		t.Fatalf("read from inside part 2: %d bytes, want %d, equal %v", len(got), len(data)-PartSize-7, false)
	}
}

// TestInterruptedUpload leaves an upload as a killed bk-push would: parts
// stored, never completed nor aborted. Nothing appears under its name; it
// is listed as a temp file holding its parts, and CleanTemp aborts it.
func TestInterruptedUpload(t *testing.T) {
	t.Parallel()
	s := server(t)
	cfg := bucket(t, s, "p")
	r := dial(t, cfg, remote.DialOptions{})
	ctx := context.Background()
	up, err := r.Create(ctx, "b/share")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(remotetest.Data(2*PartSize+100, 2)); err != nil {
		t.Fatal(err)
	}
	if err := up.(*upload).settle(0); err != nil { // the two parts stored
		t.Fatal(err)
	}
	// A new process sees what the dead one left.
	r = dial(t, cfg, remote.DialOptions{})
	if _, err := r.Stat(ctx, "b/share"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Stat of an interrupted upload: %v", err)
	}
	temps, err := r.ListTemp(ctx, "b")
	if err != nil || len(temps) != 1 || temps[0].Size != 2*PartSize {
		t.Fatalf("ListTemp = %+v, %v; want one upload of two parts", temps, err)
	}
	if infos, err := r.List(ctx, "b"); err != nil || len(infos) != 0 {
		t.Fatalf("List = %+v, %v; want nothing", infos, err)
	}
	if n, err := remote.CleanTemp(ctx, r, "b", time.Now().Add(time.Hour), nil); err != nil || n != 1 {
		t.Fatalf("CleanTemp = %d, %v", n, err)
	}
	left := 0
	for mu := range r.core.Client.ListIncompleteUploads(ctx, cfg.Bucket, "", true) {
		if mu.Err != nil {
			t.Fatal(mu.Err)
		}
		left++
	}
	if left != 0 {
		t.Fatalf("%d multipart uploads left after CleanTemp", left)
	}
	if err := up.Commit(ctx); err == nil {
		t.Fatal("Commit of an aborted upload succeeded")
	}
}

// viaProxy dials a fresh bucket through a proxy that can cut the
// connections and counts what the store sends.
func viaProxy(t *testing.T, opts remote.DialOptions) (*S3, *sshtest.Proxy) {
	s := server(t)
	cfg := bucket(t, s, "")
	p, err := sshtest.NewProxy(strings.TrimPrefix(s.Endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", p.Port())
	return dial(t, cfg, opts), p
}

func TestResumeAfterCut(t *testing.T) {
	t.Parallel()
	r, p := viaProxy(t, remote.DialOptions{Retry: fastRetry})
	remotetest.Resume(t, r, func() { p.CutAfter(PartSize / 3) })
	if p.Cuts() != 2 {
		t.Fatalf("%d cuts, want 2", p.Cuts())
	}
}

// TestPartFails: parts on their way at once fail, the store gone; the
// upload fails naming the host, and its abort leaves nothing under the
// name and no upload in progress.
func TestPartFails(t *testing.T) {
	t.Parallel()
	r, p := viaProxy(t, remote.DialOptions{Retry: remote.Retry{Attempts: 1, First: 10 * time.Millisecond, Max: 10 * time.Millisecond}})
	ctx := context.Background()
	up, err := r.Create(ctx, "d/x")
	if err != nil {
		t.Fatal(err)
	}
	p.SetDown(true)
	p.CutAfter(PartSize / 2)
	_, err = up.Write(remotetest.Data(2*PartSize+100, 3))
	if err == nil {
		err = up.Commit(ctx)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "host "+r.String()+": upload d/x part ") {
		t.Fatalf("got %v, want the host and a part named", err)
	}
	p.SetDown(false)
	if err := up.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(ctx, "d/x"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Stat after the abort: %v", err)
	}
	if temps, err := r.ListTemp(ctx, "d"); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after the abort = %+v, %v; want nothing", temps, err)
	}
}

// A join with all n shares in the bucket downloads the blocks of k shares
// and only the checksums of the others.
func TestJoinReadsChecksumsOnly(t *testing.T) {
	t.Parallel()
	r, p := viaProxy(t, remote.DialOptions{})
	// Beyond the header, a share costs the first range of the probe and of
	// the Open whose reader is then read at offsets, and the HTTP
	// headers of a ranged GET a stripe.
	remotetest.JoinReadsChecksumsOnly(t, r, p.Down, 4*firstRange)
}

// A ranged read of the stream downloads the stripes it covers: a GET of
// each range, after the first range of the Open that reads the header.
func TestReaderAtReadsStripesOnly(t *testing.T) {
	t.Parallel()
	r, p := viaProxy(t, remote.DialOptions{})
	remotetest.ReaderAtReadsStripesOnly(t, r, p.Down, firstRange, 1024)
}

// A missing bucket fails a run's first request, whatever it is, naming
// the host and the bucket's absence (never a missing file, which callers
// would take for a share to send again); wrong keys fail it naming the
// host. Dial asks nothing: a HeadBucket was a request of every tool run.
func TestDialErrors(t *testing.T) {
	s := server(t)
	cfg := bucket(t, s, "")
	missing := cfg
	missing.Bucket = "nope"
	ctx := context.Background()
	first := map[string]func(r *S3) error{
		"List":   func(r *S3) error { _, err := r.List(ctx, ""); return err },
		"Stat":   func(r *S3) error { _, err := r.Stat(ctx, "f"); return err },
		"Open":   func(r *S3) error { _, err := r.Open(ctx, "f", 0); return err },
		"Put":    func(r *S3) error { return remotetest.TryPut(r, "f", []byte("x")) },
		"Remove": func(r *S3) error { return r.Remove(ctx, "f") },
	}
	for what, op := range first {
		err := op(dial(t, missing, remote.DialOptions{}))
		if !errors.Is(err, errNoBucket) || errors.Is(err, remote.ErrNotExist) || !strings.HasPrefix(err.Error(), "host s3://nope: ") {
			t.Errorf("%s first on a missing bucket: %v", what, err)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	_, err := dial(t, cfg, remote.DialOptions{}).List(ctx, "")
	if err == nil || !strings.HasPrefix(err.Error(), "host s3://"+cfg.Bucket+": ") {
		t.Fatalf("wrong secret: %v", err)
	}
}

// A store's access log tells which tool asked: requests name it (the
// program's name, here the test binary's) in their User-Agent.
func TestUserAgentNamesTheTool(t *testing.T) {
	var agents sync.Map
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agents.Store(r.UserAgent(), true)
		if strings.Trim(r.URL.Path, "/") != "bk-agent" { // the bucket is there, nothing in it
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer store.Close()
	r := dial(t, Location{Bucket: "bk-agent", Endpoint: store.URL, PathStyle: true, Region: s3test.Region}, remote.DialOptions{})
	if _, err := r.Stat(context.Background(), "f"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatal(err)
	}
	tool := " " + filepath.Base(os.Args[0]) + "/"
	n := 0
	agents.Range(func(agent, _ any) bool {
		n++
		if !strings.Contains(agent.(string), tool) {
			t.Errorf("User-Agent %q does not name the tool (%q)", agent, tool)
		}
		return true
	})
	if n == 0 {
		t.Error("no request reached the store")
	}
}

// TestProfile takes the keys from a profile of the credentials file, with
// none in the environment.
func TestProfile(t *testing.T) {
	s := server(t)
	cfg := bucket(t, s, "")
	file := filepath.Join(t.TempDir(), "credentials")
	ini := fmt.Sprintf("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"+
		"[backup]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s.Access, s.Secret)
	if err := os.WriteFile(file, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := dial(t, cfg, remote.DialOptions{}).List(context.Background(), ""); err == nil {
		t.Fatal("the default profile's wrong keys were taken")
	}
	cfg.Profile = "backup"
	r := dial(t, cfg, remote.DialOptions{})
	remotetest.Put(t, r, "f", []byte("x"))
}

func TestParseDest(t *testing.T) {
	for dest, want := range map[string]Location{
		"s3://b":           {Bucket: "b"},
		"s3://b/":          {Bucket: "b"},
		"s3://b/p/q/":      {Bucket: "b", Prefix: "p/q"},
		"s3://my.bucket/x": {Bucket: "my.bucket", Prefix: "x"},
	} {
		got, err := ParseDest(dest)
		if err != nil || *got != want {
			t.Errorf("ParseDest(%q) = %+v, %v; want %+v", dest, got, err, want)
		}
	}
	for _, dest := range []string{"s3://", "s3:///p", "s3://b/../x", "s3://b/a//c", "http://b"} {
		if _, err := ParseDest(dest); err == nil {
			t.Errorf("ParseDest(%q) succeeded", dest)
		}
	}
}

// TestURL checks that a manifest's URL reads back to the same place, and
// that the profile, this user's choice of keys, stays out of it.
func TestURL(t *testing.T) {
	l := &Location{Bucket: "b", Prefix: "p/q", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true, Profile: "me"}
	url := l.URL()
	if url != "s3://b/p/q?endpoint=http%3A%2F%2F127.0.0.1%3A7070&path-style=yes&region=eu-west-1" {
		t.Fatalf("URL = %s", url)
	}
	back, err := remote.ParseLocation(url, "")
	if err != nil {
		t.Fatal(err)
	}
	want := *l
	want.Profile = ""
	if got := *back.(*Location); got != want {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	if got := (&Location{Bucket: "b"}).URL(); got != "s3://b" {
		t.Fatalf("URL without options = %s", got)
	}
	for _, bad := range []string{"s3://b?quota=1G", "s3://b?endpoint=ftp://x", "s3://b?%zz"} {
		if _, err := remote.ParseLocation(bad, ""); err == nil {
			t.Errorf("ParseLocation(%q) succeeded", bad)
		}
	}
}

func TestSetOption(t *testing.T) {
	var c Location
	for _, kv := range [][2]string{{"endpoint", "http://127.0.0.1:7070"}, {"region", "eu-west-1"}, {"path-style", "yes"}, {"profile", "backup"}} {
		if ok, err := c.SetOption(kv[0], kv[1]); !ok || err != nil {
			t.Fatalf("SetOption(%s=%s) = %v, %v", kv[0], kv[1], ok, err)
		}
	}
	want := Location{Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true, Profile: "backup"}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	for _, kv := range [][2]string{{"endpoint", "127.0.0.1:7070"}, {"endpoint", "ftp://x"}, {"endpoint", "http://x/path"}, {"path-style", "1"}, {"profile", ""}} {
		if ok, err := c.SetOption(kv[0], kv[1]); !ok || err == nil || !strings.Contains(err.Error(), kv[0]+"=") {
			t.Errorf("SetOption(%s=%s) = %v, %v; want an error naming the option", kv[0], kv[1], ok, err)
		}
	}
	if ok, _ := c.SetOption("quota", "1G"); ok {
		t.Error("SetOption took a key it does not know")
	}
}

// TestStalledStore makes the store stop answering, as a hung server or
// network would: uploads, reads and requests fail within bounds instead of
// hanging bk.
func TestStalledStore(t *testing.T) {
	t.Parallel()
	s := server(t)
	loc := bucket(t, s, "")
	p, err := sshtest.NewProxy(strings.TrimPrefix(s.Endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	loc.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", p.Port())
	// The file to read is stored with the default timeout: on a loaded
	// machine a healthy store may well take half a second over a part.
	data := remotetest.Data(PartSize+1000, 5)
	remotetest.Put(t, dial(t, loc, remote.DialOptions{}), "f", data)
	// Two tries: minio repeats a request that timed out, pausing between.
	r := dial(t, loc, remote.DialOptions{Retry: remote.Retry{Attempts: 2, First: 10 * time.Millisecond, Max: 50 * time.Millisecond}, Timeout: time.Second})
	ctx := context.Background()
	rc, err := r.Open(ctx, "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	up, err := r.Create(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	// A small file is one PUT, with no HEAD before it on a store known to
	// keep If-None-Match.
	r.conditionalPuts.Store(true)
	small, err := r.Create(ctx, "h")
	if err != nil {
		t.Fatal(err)
	}
	defer small.Abort()
	if _, err := small.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	done := make(chan error, 4)
	go func() {
		_, err := io.ReadAll(rc)
		done <- err
	}()
	go func() {
		_, err := up.Write(data)
		if err == nil { // the part went on its way: Commit waits for it
			err = up.Commit(ctx)
		}
		done <- err
	}()
	go func() {
		_, err := r.Stat(ctx, "f")
		done <- err
	}()
	go func() { done <- small.Commit(ctx) }()
	for range 4 {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), r.String()) {
				t.Fatalf("an operation on a stalled store: %v", err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("an operation on a stalled store still hangs after 2 minutes")
		}
	}
	// The store switched off: the deferred abort and close fail at once
	// instead of waiting out the timeout again.
	p.SetDown(true)
	p.Cut()
}

// ReadAt answers the reads that the first range Open fetched covers (a
// share's header) from it, without a GET each (issue 16: every share's
// header cost one more request), and reads past it with a GET; a short
// object's end shows as io.EOF from the first range alone.
func TestReadAtKeepsFirstRange(t *testing.T) {
	t.Parallel()
	connect, c := viaCounter(t)
	r := connect()
	ctx := context.Background()
	big, small := remotetest.Data(3*firstRange, 7), remotetest.Data(1000, 8)
	remotetest.Put(t, r, "d/big", big)
	remotetest.Put(t, r, "d/small", small)
	readAt := func(rc io.ReadCloser, n int, off int64) ([]byte, error) {
		t.Helper()
		b := make([]byte, n)
		got, err := rc.(io.ReaderAt).ReadAt(b, off)
		return b[:got], err
	}
	before := c.Total()
	rc, err := r.Open(ctx, "d/big", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, at := range []struct {
		n   int
		off int64
	}{{512, 100}, {1000, 3000}, {60, firstRange + 40}, {100, 2*firstRange + 5}} {
		if got, err := readAt(rc, at.n, at.off); err != nil || !bytes.Equal(got, big[at.off:at.off+int64(at.n)]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d bytes, %v; want the object's", at.n, at.off, len(got), err)
		}
	}
	// The Open, and the one read past its range (from 100 to 100+32 KiB).
	if got := c.Total() - before; got != 2 {
		t.Errorf("%d requests for an Open and four reads at offsets, three of them inside its first range; want 2", got)
	}
	before = c.Total()
	rs, err := r.Open(ctx, "d/small", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if got, err := readAt(rs, 100, 950); err != io.EOF || !bytes.Equal(got, small[950:]) {
		t.Errorf("ReadAt across a short object's end = %d bytes, %v; want its last 50 and io.EOF", len(got), err)
	}
	if got, err := readAt(rs, 10, 1000); err != io.EOF || len(got) != 0 {
		t.Errorf("ReadAt at a short object's end = %d bytes, %v; want none and io.EOF", len(got), err)
	}
	if got := c.Total() - before; got != 1 {
		t.Errorf("%d requests for an Open and reads inside a short object's first range; want 1", got)
	}
}

// ListTemp lists by the start the leftovers' names share: it is a dot,
// which no backup file's name starts with.
func TestLeftoverStart(t *testing.T) {
	if leftoverStart != "." {
		t.Fatalf("temp and test files' names share the start %q, want %q", leftoverStart, ".")
	}
	for _, name := range []string{"b.manifest.json", "b.share0", "b.r2.manifest.json"} {
		if strings.HasPrefix(name, leftoverStart) {
			t.Errorf("%s starts as leftovers do", name)
		}
	}
}
