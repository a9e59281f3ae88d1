package push

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/shard/sharetest"
	"github.com/bk-backup/bk/internal/units"
)

const blockSize = 4096

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func stream(t *testing.T, in []byte, k, n int) []byte {
	t.Helper()
	var out bytes.Buffer
	if _, _, err := shard.SplitStream(context.Background(), bytes.NewReader(in), &out, shard.SplitOptions{K: k, N: n, BlockSize: blockSize}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// folders makes n empty host folders.
func folders(t *testing.T, n int) []hostsfile.Host {
	base := t.TempDir()
	var hosts []hostsfile.Host
	for i := range n {
		dir := filepath.Join(base, "host"+string(rune('a'+i)))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: dir}})
	}
	return hosts
}

func dialLocal(_ context.Context, h hostsfile.Host) (remote.Remote, error) {
	return local.New(pathOf(h), remote.DialOptions{})
}

func pathOf(h hostsfile.Host) string { return h.Location.(local.Location).Path }

// urlPath is the folder of a file:// URL in a manifest.
func urlPath(t *testing.T, u string) string {
	t.Helper()
	loc, err := remote.ParseLocation(u, "")
	if err != nil {
		t.Fatal(err)
	}
	return loc.(local.Location).Path
}

// setup is what a test varies: the hosts, how they are dialled (nil for
// plain folders) and the push options.
type setup struct {
	Options
	Hosts []hostsfile.Host
	Dial  func(ctx context.Context, h hostsfile.Host) (remote.Remote, error)
}

// options makes the catalog of the hosts, and Warn and Note lines as
// bk-push prints them, into stderr.
func (s setup) options(stderr io.Writer) Options {
	opt := s.Options
	opt.Catalog = catalog.New(s.Hosts, catalog.Options{Connect: s.Dial})
	opt.Warn = func(format string, args ...any) { fmt.Fprintf(stderr, "warning: "+format+"\n", args...) }
	opt.Note = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	return opt
}

// outcome is how bk-push would exit on err.
func outcome(err error) string {
	var degraded *DegradedError
	var usage *MinSharesError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &degraded):
		return "degraded"
	case errors.As(err, &usage):
		return "usage"
	}
	return "failed"
}

type run struct {
	m      *manifest.Manifest
	err    error
	stderr string
}

func push(t *testing.T, in []byte, s setup) run {
	t.Helper()
	var stderr syncBuffer
	if s.Name == "" {
		s.Name = "test"
	}
	if s.StaleAge == 0 {
		s.StaleAge = 24 * time.Hour
	}
	opt := s.options(&stderr)
	defer opt.Catalog.Close()
	m, err := Push(context.Background(), bytes.NewReader(in), opt)
	return run{m, err, stderr.String()}
}

// syncBuffer takes lines from parallel uploads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// files lists every file under the host folders, temp files included.
func files(t *testing.T, hosts []hostsfile.Host) []string {
	var out []string
	for _, h := range hosts {
		entries, err := os.ReadDir(pathOf(h))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, filepath.Join(filepath.Base(pathOf(h)), e.Name()))
		}
	}
	return out
}

// join rebuilds the stream from the shares the manifest lists.
func join(t *testing.T, m *manifest.Manifest) []byte {
	t.Helper()
	var sources []shard.Source
	for _, s := range m.Shares {
		sources = append(sources, shard.FileSource(filepath.Join(urlPath(t, s.Host), s.Path)))
	}
	var out bytes.Buffer
	if _, err := shard.Join(context.Background(), sources, &out, shard.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func checkManifests(t *testing.T, m *manifest.Manifest, hosts []hostsfile.Host) {
	t.Helper()
	for _, s := range m.Shares {
		dir := urlPath(t, s.Host)
		b, err := os.ReadFile(filepath.Join(dir, manifest.ManifestPath(m.ID)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := manifest.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || len(got.Shares) != len(m.Shares) {
			t.Fatalf("manifest on %s differs", dir)
		}
		share, err := os.ReadFile(filepath.Join(dir, s.Path))
		if err != nil || int64(len(share)) != s.Size {
			t.Fatalf("share %d: %v, size %d, manifest says %d", s.Index, err, len(share), s.Size)
		}
		// Computed from the layout of docs/FORMAT.md alone, without
		// package shard.
		f, err := sharetest.Parse(share)
		if err != nil {
			t.Fatal(err)
		}
		if sum := f.MetaSum(); got.Version != 4 || s.MetaBLAKE3 != hex.EncodeToString(sum[:]) || s.BLAKE3 != "" {
			t.Fatalf("share %d: meta BLAKE3 %x, manifest of version %d says %q (blake3 %q)", s.Index, sum, got.Version, s.MetaBLAKE3, s.BLAKE3)
		}
	}
}

// A header larger than a stripe record (a long label, the smallest
// blocks) is stored as any other frame.
func TestHeaderLargerThanRecord(t *testing.T) {
	in := data(1000, 3)
	var st bytes.Buffer
	info, _, err := shard.SplitStream(context.Background(), bytes.NewReader(in), &st,
		shard.SplitOptions{K: 1, N: 2, BlockSize: shard.MinBlockSize, Label: strings.Repeat("l", 256)})
	if err != nil {
		t.Fatal(err)
	}
	if hdr := (shard.Header{SetInfo: info}).Size(); hdr <= info.RecordSize() {
		t.Fatalf("header of %d bytes, record of %d: the test needs a larger header", hdr, info.RecordSize())
	}
	hosts := folders(t, 2)
	r := push(t, st.Bytes(), setup{Hosts: hosts, Options: Options{ExpectSize: int64(len(in))}})
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	checkManifests(t, r.m, hosts)
	if got := join(t, r.m); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
}

func TestPushAll(t *testing.T) {
	in := data(50_000, 1)
	hosts := folders(t, 3)
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: int64(len(in))}})
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	m := r.m
	if m.K != 2 || m.N != 3 || len(m.Shares) != 3 || m.StreamSize != int64(len(in)) || !strings.HasPrefix(m.ID, "test-") {
		t.Fatalf("manifest %+v", m)
	}
	for i, s := range m.Shares {
		if s.Index != i || s.Host != hosts[i].URL() || s.Size != ShareSize(shard.SetInfo{K: 2, N: 3, BlockSize: blockSize}, int64(len(in))) {
			t.Errorf("share %+v", s)
		}
	}
	checkManifests(t, m, hosts)
	if got := join(t, m); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
	if n := len(files(t, hosts)); n != 6 {
		t.Fatalf("want a share and a manifest on each host, got %v", files(t, hosts))
	}
}

func TestSpareTakesPlaceOfMissingHost(t *testing.T) {
	in := data(20_000, 2)
	hosts := folders(t, 4)
	os.Remove(pathOf(hosts[1])) // an unmounted disk
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: int64(len(in))}})
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if r.m.Shares[1].Host != hosts[3].URL() {
		t.Fatalf("share 1 went to %s", r.m.Shares[1].Host)
	}
	if !strings.Contains(r.stderr, "warning: host "+pathOf(hosts[1])) || !strings.Contains(r.stderr, "spare host "+pathOf(hosts[3])) {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if got := join(t, r.m); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
}

func TestTooFewHosts(t *testing.T) {
	hosts := folders(t, 2)
	r := push(t, stream(t, data(100, 3), 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: -1}})
	if r.err == nil || !strings.Contains(r.err.Error(), "lists 2 hosts, but the stream has n=3") {
		t.Fatalf("got %v", r.err)
	}
}

func TestMinSharesOutOfRange(t *testing.T) {
	for _, m := range []int{1, 4} {
		r := push(t, stream(t, data(100, 3), 2, 3), setup{Hosts: folders(t, 3), Options: Options{ExpectSize: -1, MinShares: m}})
		if outcome(r.err) != "usage" {
			t.Errorf("--min-shares %d: got %v", m, r.err)
		}
	}
}

func TestQuotaTooSmallRefusedBeforeUpload(t *testing.T) {
	in := data(40_000, 4)
	hosts := folders(t, 3)
	hosts[2].Quota = units.Bytes(10_000) // a share is about 20 KB
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: int64(len(in)), MinShares: 3}})
	if r.err == nil || !strings.Contains(r.err.Error(), "nothing was stored") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "quota 9.8K has 9.8K left (0B used), the share needs") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

func TestQuotaCountsEarlierBackups(t *testing.T) {
	in := data(20_000, 5)
	hosts := folders(t, 3)
	if r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: int64(len(in))}}); r.err != nil {
		t.Fatal(r.err)
	}
	hosts[0].Quota = units.Bytes(15_000) // room for one backup's share, not two
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: int64(len(in)), MinShares: 2}})
	if outcome(r.err) != "degraded" || !strings.Contains(r.stderr, "used), the share needs") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	if len(r.m.Shares) != 2 {
		t.Fatalf("shares %+v", r.m.Shares)
	}
}

// listsLate is a host whose listing answers only once bk-push's test
// file is there: the test file is written while the quota is checked.
type listsLate struct {
	remote.Remote
	dir string
}

func (l listsLate) ListTemp(ctx context.Context, dir string) ([]remote.Info, error) {
	for range 500 {
		if m, _ := filepath.Glob(filepath.Join(l.dir, remote.ProbePrefix+"*")); len(m) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l.Remote.ListTemp(ctx, dir)
}

// The test file of this run does not count against a quota that just
// fits the share (it is removed before the push ends).
func TestQuotaLeavesOutTestFile(t *testing.T) {
	in := data(40_000, 4)
	hosts := folders(t, 3)
	info := shard.SetInfo{K: 2, N: 3, BlockSize: blockSize}
	hosts[2].Quota = units.Bytes(ShareSize(info, int64(len(in))) + manifestAllowance(3))
	dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		r, err := dialLocal(ctx, h)
		return listsLate{r, pathOf(h)}, err
	}
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: int64(len(in)), MinShares: 3}})
	if r.err != nil {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
}

// A quota reached during the upload fails that host, as a full disk would.
func TestQuotaReachedMidUpload(t *testing.T) {
	in := data(60_000, 6)
	hosts := folders(t, 3)
	hosts[1].Quota = units.Bytes(12_000)
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: -1, MinShares: 2}})
	if outcome(r.err) != "degraded" {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{"warning: backup size unknown", "warning: share 1: host " + pathOf(hosts[1]) + ": quota 11.7K reached", "failed: share 1 on " + pathOf(hosts[1])} {
		if !strings.Contains(r.stderr+r.err.Error(), want) {
			t.Errorf("messages lack %q:\n%s%v", want, r.stderr, r.err)
		}
	}
	if f := files(t, hosts[1:2]); len(f) != 0 {
		t.Fatalf("failed host keeps %v", f)
	}
	if got := join(t, r.m); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
}

// With fewer than --min-shares stored, nothing of the run is left.
func TestTooFewStoredLeavesNothing(t *testing.T) {
	in := data(60_000, 7)
	hosts := folders(t, 3)
	hosts[1].Quota = units.Bytes(12_000)
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: -1, MinShares: 3}})
	if outcome(r.err) != "failed" || r.m != nil || !strings.Contains(r.err.Error(), "nothing of this backup was kept") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// Issue 8 item 12: by default (k) anything restorable is kept. With one
// host of 2-of-3 down and no spare, the backup is kept, degraded, with its
// manifest on both hosts that hold a share.
func TestDefaultMinSharesKeepsRestorable(t *testing.T) {
	in := data(30_000, 16)
	hosts := folders(t, 3)
	os.Remove(pathOf(hosts[2]))
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: -1}})
	if outcome(r.err) != "degraded" || !strings.Contains(r.err.Error(), "stored 2 of 3 shares") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	checkManifests(t, r.m, hosts)
	if got := join(t, r.m); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
}

// Item 12: a share counts as stored only when its host also holds the
// manifest. One host refusing it makes the backup degraded; two (of
// 2-of-3) leave fewer than k, and nothing of the run is kept: no share
// and no manifest.
func TestShareCountsOnlyWithItsManifest(t *testing.T) {
	for _, refusing := range []int{1, 2} {
		t.Run(fmt.Sprint(refusing), func(t *testing.T) {
			in := data(30_000, 17)
			hosts := folders(t, 3)
			dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
				r, err := local.New(pathOf(h), remote.DialOptions{})
				if slices.ContainsFunc(hosts[3-refusing:], func(x hostsfile.Host) bool { return pathOf(x) == pathOf(h) }) {
					return noManifest{r}, err
				}
				return r, err
			}
			r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: -1}})
			if refusing == 1 {
				if outcome(r.err) != "degraded" || !strings.Contains(r.err.Error(), "stored 2 of 3 shares") ||
					!strings.Contains(r.stderr, "warning: share 2: manifest not stored, so the share does not count: ") {
					t.Fatalf("got %v\n%s", r.err, r.stderr)
				}
				return
			}
			if outcome(r.err) != "failed" || r.m != nil || !strings.Contains(r.err.Error(), "only 1 of 3 shares could be stored") {
				t.Fatalf("got %v\n%s", r.err, r.stderr)
			}
			if f := files(t, hosts); len(f) != 0 {
				t.Fatalf("left behind: %v", f)
			}
		})
	}
}

// noManifest is a folder that takes shares but not manifests, as a host
// whose disk fills up just then.
type noManifest struct{ *local.Local }

func (n noManifest) Create(ctx context.Context, name string) (remote.Upload, error) {
	if strings.HasSuffix(name, ".manifest.json") {
		return nil, errors.New("no space left on device")
	}
	return n.Local.Create(ctx, name)
}

// A host that fails at commit, after the others committed, makes the run
// remove the shares it already stored.
func TestCommittedSharesRemovedOnFailure(t *testing.T) {
	in := data(30_000, 8)
	hosts := folders(t, 3)
	id := make(chan string, 1)
	dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		r, err := local.New(pathOf(h), remote.DialOptions{})
		if pathOf(h) == pathOf(hosts[2]) {
			return &clobbered{Local: r, id: id}, err
		}
		return r, err
	}
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: -1, MinShares: 3}})
	if outcome(r.err) != "failed" {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	got := files(t, hosts)
	if want := []string{"hostc/" + manifest.SharePath(<-id, 2)}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want only the file that was there first: %v", got, want)
	}
}

// clobbered is a folder where a file appears under the share's name while
// it uploads, so its commit fails.
type clobbered struct {
	*local.Local
	id chan string
}

func (c *clobbered) Create(ctx context.Context, name string) (remote.Upload, error) {
	up, err := c.Local.Create(ctx, name)
	if err == nil && strings.Contains(name, ".share") {
		c.id <- strings.TrimSuffix(name, ".share2")
		os.WriteFile(filepath.Join(c.String(), name), []byte("precious"), 0o644)
	}
	return up, err
}

func TestTwoConcurrentPushes(t *testing.T) {
	hosts := folders(t, 3)
	ins := [][]byte{data(30_000, 9), data(30_000, 10)}
	runs := make([]run, 2)
	var wg sync.WaitGroup
	for i := range runs {
		s := stream(t, ins[i], 2, 3)
		wg.Go(func() { runs[i] = push(t, s, setup{Hosts: hosts, Options: Options{ExpectSize: -1}}) })
	}
	wg.Wait()
	for i, r := range runs {
		if r.err != nil {
			t.Fatalf("push %d: %v", i, r.err)
		}
		if got := join(t, r.m); !bytes.Equal(got, ins[i]) {
			t.Fatalf("push %d: joined stream differs", i)
		}
	}
	if runs[0].m.ID == runs[1].m.ID || len(files(t, hosts)) != 12 {
		t.Fatalf("IDs %s %s, files %v", runs[0].m.ID, runs[1].m.ID, files(t, hosts))
	}
}

func TestStaleTempFilesRemoved(t *testing.T) {
	hosts := folders(t, 3)
	old := filepath.Join(pathOf(hosts[0]), remote.TempPrefix+"0123-killed.share0")
	fresh := filepath.Join(pathOf(hosts[0]), remote.TempPrefix+"4567-running.share0")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(old, past, past)
	r := push(t, stream(t, data(1000, 11), 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: -1}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale temp file kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("fresh temp file (another run's) removed")
	}
}

func TestNotAShareStream(t *testing.T) {
	r := push(t, []byte("hello, this is not a share stream"), setup{Hosts: folders(t, 3), Options: Options{ExpectSize: -1}})
	if r.err == nil || !strings.Contains(r.err.Error(), "not a bk share") {
		t.Fatalf("got %v", r.err)
	}
}

func TestTruncatedStreamLeavesNothing(t *testing.T) {
	hosts := folders(t, 3)
	s := stream(t, data(30_000, 12), 2, 3)
	r := push(t, s[:len(s)/2], setup{Hosts: hosts, Options: Options{ExpectSize: -1}})
	if r.err == nil || !strings.Contains(r.err.Error(), "truncated") {
		t.Fatalf("got %v", r.err)
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// An interrupt mid-stream leaves nothing behind: no share, no temp file,
// no manifest.
func TestInterruptedLeavesNothing(t *testing.T) {
	hosts := folders(t, 3)
	s := stream(t, data(200_000, 13), 2, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &killer{r: bytes.NewReader(s), n: len(s) / 2, kill: cancel}
	opt := setup{Hosts: hosts, Options: Options{Name: "t", ExpectSize: -1, StaleAge: time.Hour}}.options(io.Discard)
	defer opt.Catalog.Close()
	m, err := Push(ctx, r, opt)
	if !errors.Is(err, context.Canceled) || m != nil {
		t.Fatalf("got %v, %v", m, err)
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// A host that refuses to create the share's file fails that share only.
// Issue 8 item 11: the preflight stores a test file, so a host that
// can't take files (read-only) is found before data flows and its spare
// takes the share; without a spare the backup is degraded. A file where
// the folder should be fails too (at the dial). No test file is left.
func TestPreflightWritesATestFile(t *testing.T) {
	for _, spare := range []bool{true, false} {
		t.Run(fmt.Sprint("spare=", spare), func(t *testing.T) {
			in := data(20_000, 14)
			hosts := folders(t, 5)
			if spare {
				os.Remove(pathOf(hosts[2]))
				os.WriteFile(pathOf(hosts[2]), []byte("not a folder"), 0o644)
			} else {
				hosts = hosts[:3]
			}
			dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
				r, err := local.New(pathOf(h), remote.DialOptions{})
				if pathOf(h) == pathOf(hosts[1]) {
					return readOnly{r}, err
				}
				return r, err
			}
			r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: -1}})
			if !strings.Contains(r.stderr, "warning: read-only file system (the test file written before data flows)") ||
				spare && !strings.Contains(r.stderr, "is not a folder") {
				t.Fatalf("got %v\n%s", r.err, r.stderr)
			}
			want := "ok"
			if !spare {
				want = "degraded"
			}
			if outcome(r.err) != want {
				t.Fatalf("got %v, want %s\n%s", r.err, want, r.stderr)
			}
			if spare && (r.m.Shares[1].Host != hosts[3].URL() || r.m.Shares[2].Host != hosts[4].URL()) {
				t.Fatalf("shares went to %+v", r.m.Shares)
			}
			if got := join(t, r.m); !bytes.Equal(got, in) {
				t.Fatal("joined stream differs")
			}
			folders := slices.DeleteFunc(slices.Clone(hosts), func(h hostsfile.Host) bool { return spare && pathOf(h) == pathOf(hosts[2]) })
			for _, f := range files(t, folders) {
				if strings.Contains(f, remote.ProbePrefix) {
					t.Fatalf("test file left behind: %s", f)
				}
			}
		})
	}
}

// Item 11: one folder under two names (here a symlink) is refused before
// anything is stored: two shares there would be lost together.
func TestSameFolderRefused(t *testing.T) {
	in := data(20_000, 18)
	hosts := folders(t, 4)
	os.Remove(pathOf(hosts[2]))
	if err := os.Symlink(pathOf(hosts[0]), pathOf(hosts[2])); err != nil {
		t.Fatal(err)
	}
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Options: Options{ExpectSize: -1}})
	var same *SameFolderError
	if !errors.As(r.err, &same) || same.A != pathOf(hosts[0]) || same.B != pathOf(hosts[2]) {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// Item 11: folders on one file system share its free space in the check.
// Three hosts on one disk with room for two and a half shares: the third
// goes to the spare on another disk, before data flows.
func TestHostsOnOneFileSystemShareItsSpace(t *testing.T) {
	in := data(40_000, 19)
	hosts := folders(t, 4)
	need := ShareSize(shard.SetInfo{K: 2, N: 3, BlockSize: blockSize}, int64(len(in))) + manifestAllowance(3)
	dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		r, err := local.New(pathOf(h), remote.DialOptions{})
		if pathOf(h) == pathOf(hosts[3]) {
			return onDisk{r, "disk2", 100 * need}, err
		}
		return onDisk{r, "disk1", 5 * need / 2}, err
	}
	r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: int64(len(in))}})
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	want := fmt.Sprintf("warning: host %s: shares one file system with %s, %s: %s free, 3 shares need %s",
		pathOf(hosts[2]), pathOf(hosts[0]), pathOf(hosts[1]), units.Bytes(5*need/2), units.Bytes(3*need))
	if !strings.Contains(r.stderr, want) || r.m.Shares[2].Host != hosts[3].URL() {
		t.Fatalf("want %q and share 2 on the spare; got %+v\n%s", want, r.m.Shares, r.stderr)
	}
	if f := files(t, hosts[2:3]); len(f) != 0 {
		t.Fatalf("the host that did not fit keeps %v", f)
	}
}

// onDisk is a folder said to be on file system fs with free bytes left.
type onDisk struct {
	*local.Local
	fs   string
	free int64
}

func (d onDisk) Free(context.Context) (int64, error)        { return d.free, nil }
func (d onDisk) FileSystem(context.Context) (string, error) { return d.fs, nil }

// readOnly is a folder whose file system went read-only after mounting.
type readOnly struct{ *local.Local }

func (readOnly) Create(context.Context, string) (remote.Upload, error) {
	return nil, errors.New("read-only file system")
}

// --verify has the hosts read each share back before it takes its name:
// one that a bad disk changed never appears under its name, and the backup
// is kept without it.
func TestVerifyCatchesBadDisk(t *testing.T) {
	in := data(30_000, 15)
	hosts := folders(t, 3)
	for _, verify := range []bool{false, true} {
		dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
			r, err := local.New(pathOf(h), remote.DialOptions{Verify: verify})
			if pathOf(h) == pathOf(hosts[0]) {
				return badDisk{r}, err
			}
			return r, err
		}
		r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: -1, MinShares: 2}})
		if !verify {
			if r.err != nil {
				t.Fatalf("without --verify: %v", r.err)
			}
			continue
		}
		if outcome(r.err) != "degraded" || !strings.Contains(r.stderr, ".share0: stored bytes differ from what was sent") {
			t.Fatalf("got %v\n%s", r.err, r.stderr)
		}
		if got := join(t, r.m); !bytes.Equal(got, in) {
			t.Fatal("joined stream differs")
		}
	}
	// The first run stored a share and a manifest there; the second
	// nothing, not even a temp file.
	if n := len(files(t, hosts[:1])); n != 2 {
		t.Fatalf("bad disk holds %v", files(t, hosts[:1]))
	}
}

// badDisk is a folder whose disk flips a bit of each share it holds, after
// it was written.
type badDisk struct{ *local.Local }

func (b badDisk) Create(ctx context.Context, name string) (remote.Upload, error) {
	up, err := b.Local.Create(ctx, name)
	if err != nil || !strings.Contains(name, ".share") {
		return up, err
	}
	return flipping{up, b}, nil
}

type flipping struct {
	remote.Upload
	b badDisk
}

func (f flipping) Commit(ctx context.Context) error {
	temps, err := f.b.ListTemp(ctx, "")
	if err != nil {
		return err
	}
	for _, tmp := range temps {
		name := filepath.Join(f.b.String(), tmp.Name)
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return err
		}
	}
	return f.Upload.Commit(ctx)
}

// At N = 256 eight queued frames a host were up to 2 GiB (1 MiB blocks)
// and 256 MiB at the default block size; the queues, in batches of
// frames, now stay within queueBytes unless one stripe alone is larger,
// and then take one frame a host.
func TestQueuedFramesBoundedAtLargeN(t *testing.T) {
	for _, c := range []struct {
		info                 shard.SetInfo
		frames, queue, early int
	}{
		{shard.SetInfo{K: 2, N: 3, BlockSize: shard.DefaultBlockSize}, 7, 2, 8},
		{shard.SetInfo{K: 128, N: 256, BlockSize: shard.DefaultBlockSize}, 1, 1, 1},
		{shard.SetInfo{K: 128, N: 256, BlockSize: shard.FittingBlockSize(256)}, 1, 1, 1},
		{shard.SetInfo{K: 16, N: 32, BlockSize: shard.DefaultBlockSize}, 3, 2, 2},
	} {
		frames, queue, early := batchFrames(c.info), queueLen(c.info), earlyLen(c.info)
		if frames != c.frames || queue != c.queue || early != c.early {
			t.Errorf("k=%d n=%d block %d: queue of %d batches (%d before the host is picked) of %d frames a host, want %d (%d) of %d",
				c.info.K, c.info.N, c.info.BlockSize, queue, early, frames, c.queue, c.early, c.frames)
		}
		for _, batches := range []int{queue, early} {
			if queued := int64(batches*frames) * c.info.StripeMemory(); batches*frames > 1 && queued > queueBytes {
				t.Errorf("k=%d n=%d block %d: %d bytes queued, over %d", c.info.K, c.info.N, c.info.BlockSize, queued, queueBytes)
			}
		}
	}
}

// The recipe of docs/FORMAT.md (section 5) that computes a share's
// meta_blake3 with python3 and b3sum prints what the manifest records,
// for a share of a few stripes and one of one.
func TestMetaHashRecipe(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"python3", "b3sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the meta hash is still checked against sharetest's in checkManifests", tool)
		}
	}
	doc, err := os.ReadFile("../../docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := bytes.Cut(doc, []byte("<!-- meta_blake3 recipe"))
	_, after, ok2 := bytes.Cut(after, []byte("```sh\n"))
	recipe, _, ok3 := bytes.Cut(after, []byte("```\n"))
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/FORMAT.md has no meta_blake3 recipe")
	}
	for _, size := range []int{3*blockSize + 100, 1} {
		hosts := folders(t, 3)
		r := push(t, stream(t, data(size, 9), 2, 3), setup{Hosts: hosts})
		if r.err != nil {
			t.Fatal(r.err)
		}
		s := r.m.Shares[2]
		file := filepath.Join(urlPath(t, s.Host), s.Path)
		out, err := exec.Command("sh", "-c", strings.ReplaceAll(string(recipe), "ID.shareI", file)).Output()
		if err != nil {
			t.Fatalf("the recipe: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != s.MetaBLAKE3 {
			t.Errorf("stream of %d bytes: the recipe prints %q, the manifest says %s", size, got, s.MetaBLAKE3)
		}
	}
}

// A host picked first takes data while another still connects: the stream
// is read ahead into its queue meanwhile. Here the third host connects
// only once the first has written some of its share; waiting for all
// hosts before any data flows would hold it up for good. When the third
// then fails, with --min-shares 3, what the first took is removed.
func TestDataFlowsBeforeAllHostsArePicked(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			in := data(200_000, 24)
			hosts := folders(t, 3)
			wrote := make(chan struct{})
			dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
				r, err := local.New(pathOf(h), remote.DialOptions{})
				switch pathOf(h) {
				case pathOf(hosts[0]):
					return &firstWrite{Local: r, wrote: wrote}, err
				case pathOf(hosts[2]):
					select {
					case <-wrote:
					case <-time.After(20 * time.Second):
						return nil, errors.New("no data reached the first host while this one connected")
					}
					if fail {
						return nil, errors.New("connection refused")
					}
				}
				return r, err
			}
			opt := Options{ExpectSize: int64(len(in))}
			if fail {
				opt.MinShares = 3
			}
			r := push(t, stream(t, in, 2, 3), setup{Hosts: hosts, Dial: dial, Options: opt})
			if fail {
				var few *TooFewError
				if !errors.As(r.err, &few) || few.Picked || !strings.Contains(r.stderr, "connection refused") {
					t.Fatalf("got %v\n%s", r.err, r.stderr)
				}
				if f := files(t, hosts); len(f) != 0 {
					t.Fatalf("left behind: %v", f)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.stderr)
			}
			if got := join(t, r.m); !bytes.Equal(got, in) {
				t.Fatal("joined stream differs")
			}
		})
	}
}

// firstWrite is a folder that says when data first reaches a share there.
type firstWrite struct {
	*local.Local
	wrote chan struct{}
	once  sync.Once
}

func (f *firstWrite) Create(ctx context.Context, name string) (remote.Upload, error) {
	up, err := f.Local.Create(ctx, name)
	if err != nil || !strings.Contains(name, ".share") { // not the test file
		return up, err
	}
	return &wroteUpload{Upload: up, f: f}, nil
}

type wroteUpload struct {
	remote.Upload
	f *firstWrite
}

func (w *wroteUpload) Write(p []byte) (int, error) {
	n, err := w.Upload.Write(p)
	if n > 0 {
		w.f.once.Do(func() { close(w.f.wrote) })
	}
	return n, err
}

// Once too few shares are left the stream is given up, not read to its
// end: here a host's quota runs out early in a stream of 75 MB, more than
// twice what the queues read ahead while the hosts are picked (3 hosts, 9
// batches of about 1 MiB each). With the stream read as one: read apart,
// each share goes at its host's pace, and the others may be whole before
// the failing host's reader has reached its quota (on /tmp, in 30 ms).
func TestTooFewStopsTheStream(t *testing.T) {
	defer func(b int) { minShareBlock = b }(minShareBlock)
	minShareBlock = math.MaxInt
	in := data(50_000_000, 25)
	s := stream(t, in, 2, 3)
	hosts := folders(t, 3)
	hosts[1].Quota = units.Bytes(100_000)
	opt := setup{Hosts: hosts, Options: Options{Name: "t", ExpectSize: -1, MinShares: 3, StaleAge: time.Hour}}.options(io.Discard)
	defer opt.Catalog.Close()
	r := &readCounter{Reader: bytes.NewReader(s)}
	_, err := Push(context.Background(), r, opt)
	var few *TooFewError
	if !errors.As(err, &few) || !few.Picked || !few.Early {
		t.Fatalf("got %v", err)
	}
	read := int(r.n.Load())
	t.Logf("read %d of the stream's %d bytes", read, len(s))
	if read > len(s)/2 {
		t.Fatal("read on after the backup could not be kept")
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// readCounter counts the bytes read from a stream, at offsets too.
type readCounter struct {
	*bytes.Reader
	n atomic.Int64
}

func (r *readCounter) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (r *readCounter) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	r.n.Add(int64(n))
	return n, err
}

// A stream that ends short while a host still connects: the connecting
// is given up (its dial sees the cancel), the stream's error is what
// Push returns, and nothing is left on the hosts that took data.
func TestStreamEndsWhileHostsConnect(t *testing.T) {
	hosts := folders(t, 3)
	s := stream(t, data(200_000, 26), 2, 3)
	cancelled := make(chan struct{})
	dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		if pathOf(h) == pathOf(hosts[2]) {
			select {
			case <-ctx.Done():
				close(cancelled)
				return nil, ctx.Err()
			case <-time.After(20 * time.Second):
				return nil, errors.New("connecting was not given up")
			}
		}
		return dialLocal(ctx, h)
	}
	r := push(t, s[:len(s)/2], setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: int64(len(s))}})
	var se *StreamError
	if !errors.As(r.err, &se) || !strings.Contains(r.err.Error(), "truncated") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	select {
	case <-cancelled:
	default:
		t.Fatal("the connecting host was not told to give up")
	}
	if f := files(t, hosts); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// With one processor, as bk-push runs to SFTP hosts, every host starts
// to connect before the stream is read ahead: else the reader kept the
// processor through megabytes of reads (8 batches a host) and each ssh
// started that much later. The reader waits until each host's check has
// begun, not until its dial has: a goroutine stopped in between (for the
// garbage collector, under load) lets the reader in first, once in about
// 40 loaded runs here. So the push is tried up to three times; on the old
// code every try failed.
func TestHostsConnectBeforeTheStreamIsReadAhead(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s := stream(t, data(20<<20, 25), 2, 3)
	var late []string
	for try := range 3 {
		late = hostsReadAheadOf(t, s)
		if len(late) == 0 {
			return
		}
		t.Logf("try %d: %s", try+1, strings.Join(late, "; "))
	}
	t.Fatal(strings.Join(late, "; "))
}

// hostsReadAheadOf pushes s to three folders and says which connected
// once more than a batch of it had been read.
func hostsReadAheadOf(t *testing.T, s []byte) []string {
	var read atomic.Int64
	var mu sync.Mutex
	var atDial []int64
	dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		mu.Lock()
		atDial = append(atDial, read.Load())
		mu.Unlock()
		return dialLocal(ctx, h)
	}
	var stderr syncBuffer
	opt := setup{Hosts: folders(t, 3), Dial: dial, Options: Options{Name: "test", ExpectSize: 20 << 20, StaleAge: time.Hour}}.options(&stderr)
	defer opt.Catalog.Close()
	if _, err := Push(context.Background(), &countingReader{r: bytes.NewReader(s), n: &read}, opt); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if len(atDial) != 3 {
		t.Fatalf("%d hosts connected, want 3", len(atDial))
	}
	var late []string
	for i, n := range atDial {
		if n > batchBytes {
			late = append(late, fmt.Sprintf("host %d of 3 connected once %d bytes of the stream were read", i+1, n))
		}
	}
	return late
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// From a file, each upload reads its own share: a host that stalls holds
// back neither the others nor the reading of their shares, as the queues
// of one stream read for all do once the stalled host's batches fill them
// (its 9 batches, about 9 MiB here).
func TestStalledHostHoldsNoOtherBack(t *testing.T) {
	defer func(b int) { minShareBlock = b }(minShareBlock)
	minShareBlock = 0
	in := data(24<<20, 26)
	s := stream(t, in, 2, 3)
	sr, err := shard.NewStreamReader(bytes.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	share := ShareSize(sr.Info(), int64(len(in)))
	hosts := folders(t, 3)
	var others sync.WaitGroup
	others.Add(2)
	dial := func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		r, err := local.New(pathOf(h), remote.DialOptions{})
		if pathOf(h) == pathOf(hosts[1]) {
			return &wrapped{Local: r, wrap: func(up remote.Upload) remote.Upload {
				return &stalledUpload{Upload: up, until: &others, t: t}
			}}, err
		}
		return &wrapped{Local: r, wrap: func(up remote.Upload) remote.Upload {
			return &countedUpload{Upload: up, whole: share, done: others.Done}
		}}, err
	}
	r := push(t, s, setup{Hosts: hosts, Dial: dial, Options: Options{ExpectSize: int64(len(in))}})
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if got := join(t, r.m); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
}

// wrapped is a folder whose share uploads, not its test files, go through
// wrap.
type wrapped struct {
	*local.Local
	wrap func(remote.Upload) remote.Upload
}

func (w *wrapped) Create(ctx context.Context, name string) (remote.Upload, error) {
	up, err := w.Local.Create(ctx, name)
	if err != nil || !strings.Contains(name, ".share") {
		return up, err
	}
	return w.wrap(up), nil
}

// stalledUpload takes no data until until is done.
type stalledUpload struct {
	remote.Upload
	until *sync.WaitGroup
	t     *testing.T
	once  sync.Once
}

func (u *stalledUpload) Write(p []byte) (int, error) {
	u.once.Do(func() {
		whole := make(chan struct{})
		go func() { u.until.Wait(); close(whole) }()
		select {
		case <-whole:
		case <-time.After(20 * time.Second):
			u.t.Error("the other shares were held back while one host stalled")
		}
	})
	return u.Upload.Write(p)
}

// countedUpload calls done once it has taken whole bytes.
type countedUpload struct {
	remote.Upload
	whole int64
	done  func()
	n     int64
}

func (u *countedUpload) Write(p []byte) (int, error) {
	n, err := u.Upload.Write(p)
	if u.n < u.whole && u.n+int64(n) >= u.whole {
		u.done()
	}
	u.n += int64(n)
	return n, err
}
