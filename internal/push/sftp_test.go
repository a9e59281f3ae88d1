package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/sftp"
	"github.com/bk-backup/bk/internal/sshtest"
	"github.com/bk-backup/bk/internal/units"
)

// The tests here push over SFTP to real sshd servers on 127.0.0.1 (the
// in-process server where sshd is not installed), reached with the system
// ssh client, and break them in the ways hosts break.

// sshHost is one server and the folder it serves for bk.
type sshHost struct {
	srv  *sshtest.Server
	dir  string
	host hostsfile.Host
}

// sshHosts starts n servers and returns them with an ssh command whose
// config reaches all of them. Tests with servers of their own run at once:
// they wait on ssh handshakes far more than on the CPU.
func sshHosts(t *testing.T, n int) ([]*sshHost, []string) {
	t.Helper()
	t.Parallel()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	base := t.TempDir()
	var hosts []*sshHost
	var include strings.Builder
	for i := range n {
		keys := filepath.Join(base, "nas"+strconv.Itoa(i))
		dir := filepath.Join(base, "data"+strconv.Itoa(i))
		for _, d := range []string{keys, dir} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		srv, err := sshtest.StartAny(keys)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Stop() })
		hosts = append(hosts, &sshHost{srv: srv, dir: dir, host: srv.Host(dir)})
		fmt.Fprintf(&include, "Include %q\n", srv.ConfigPath())
	}
	cfg := filepath.Join(base, "ssh_config")
	if err := os.WriteFile(cfg, []byte(include.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return hosts, []string{"ssh", "-F", cfg}
}

// sshOptions are push options for hosts, dialled with ssh and short
// retries so a dead host is given up quickly.
func sshOptions(ssh []string, hosts ...hostsfile.Host) setup {
	opts := remote.DialOptions{SSHCommand: ssh, Retry: remote.Retry{Attempts: 2, First: 10 * time.Millisecond}}
	return setup{Hosts: hosts, Dial: func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
		return h.Dial(ctx, opts)
	}, Options: Options{ExpectSize: -1}}
}

func hostsOf(hs []*sshHost) []hostsfile.Host {
	var out []hostsfile.Host
	for _, h := range hs {
		out = append(out, h.host)
	}
	return out
}

// visible lists the files of dir that a reader sees: no temp files or
// test files (a host killed mid-push may keep its test file too: the test
// files are removed while data flows to the hosts picked first).
func visible(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !remote.IsLeftover(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func joinManifest(t *testing.T, m *manifest.Manifest, dirs map[string]string) []byte {
	t.Helper()
	// The manifest names sftp hosts; their folders are local here.
	onDisk := *m
	onDisk.Shares = nil
	for _, s := range m.Shares {
		h, err := remote.ParseLocation(s.Host, "")
		if err != nil {
			t.Fatal(err)
		}
		s.Host = local.Location{Path: dirs[h.(sftp.Location).Path]}.URL()
		onDisk.Shares = append(onDisk.Shares, s)
	}
	return join(t, &onDisk)
}

func dirsOf(hs []*sshHost) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		out[h.dir] = h.dir
	}
	return out
}

func TestSFTPPush(t *testing.T) {
	hs, ssh := sshHosts(t, 3)
	in := data(200_000, 20)
	r := push(t, stream(t, in, 2, 3), sshOptions(ssh, hostsOf(hs)...))
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	for i, h := range hs {
		if got := visible(t, h.dir); len(got) != 2 {
			t.Errorf("host %d holds %v", i, got)
		}
		if r.m.Shares[i].Host != "sftp://"+h.srv.Alias+h.dir {
			t.Errorf("share %d host %s", i, r.m.Shares[i].Host)
		}
	}
	if got := joinManifest(t, r.m, dirsOf(hs)); !bytes.Equal(got, in) {
		t.Fatal("joined stream differs")
	}
}

// A host whose server cannot fsync (the in-process one lacks
// fsync@openssh.com, as sshd never does) is named in a note, once a push,
// unless its line says fsync=no.
func TestSFTPHostThatCannotFsync(t *testing.T) {
	t.Parallel()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	keys, dir := filepath.Join(t.TempDir(), "nas"), t.TempDir()
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	srv, err := sshtest.StartGo(keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	in := data(50_000, 22)
	for _, noFsync := range []bool{false, true} {
		hosts := append(folders(t, 2), srv.Host(dir))
		hosts[2].NoFsync = noFsync
		s := sshOptions(srv.SSHCommand(), hosts...)
		s.Name = fmt.Sprint("nofsync-", noFsync)
		r := push(t, stream(t, in, 2, 3), s)
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		note := "host " + srv.Alias + ": its SFTP server cannot fsync (no fsync@openssh.com)"
		if got := strings.Count(r.stderr, note); got != map[bool]int{false: 1, true: 0}[noFsync] {
			t.Fatalf("fsync=no %v: the note %d times:\n%s", noFsync, got, r.stderr)
		}
	}
}

func TestSFTPUnreachableHostReplacedBySpare(t *testing.T) {
	hs, ssh := sshHosts(t, 4)
	hs[0].srv.Stop()
	in := data(50_000, 21)
	r := push(t, stream(t, in, 2, 3), sshOptions(ssh, hostsOf(hs)...))
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: host "+hs[0].srv.Alias) || !strings.Contains(r.stderr, "share 0 goes to spare host "+hs[3].srv.Alias) {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if r.m.Shares[0].Host != hs[3].host.URL() || len(visible(t, hs[0].dir)) != 0 {
		t.Fatalf("share 0 on %s", r.m.Shares[0].Host)
	}
}

func TestSFTPUnknownHostKeyRefused(t *testing.T) {
	hs, ssh := sshHosts(t, 3)
	// A known_hosts that lacks the host: ssh must refuse, not ask or add.
	cfg, err := os.ReadFile(hs[1].srv.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	cfg = regexp.MustCompile(`(?m)^\s*UserKnownHostsFile .*$`).ReplaceAll(cfg, []byte("\tUserKnownHostsFile "+strconv.Quote(empty)))
	if err := os.WriteFile(hs[1].srv.ConfigPath(), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := sshOptions(ssh, hostsOf(hs)...)
	opts.MinShares = 3
	r := push(t, stream(t, data(10_000, 22), 2, 3), opts)
	if outcome(r.err) != "failed" || !strings.Contains(r.stderr, hs[1].srv.Alias) ||
		!strings.Contains(strings.ToLower(r.stderr), "host key verification failed") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Fatal("ssh added the unknown host key")
	}
	for _, h := range hs {
		if got := visible(t, h.dir); len(got) != 0 {
			t.Errorf("left behind: %v", got)
		}
	}
}

// killer calls kill once n bytes were read through it.
type killer struct {
	r    io.Reader
	n    int
	once sync.Once
	kill func()
}

func (k *killer) Read(p []byte) (int, error) {
	if k.n <= 0 {
		k.once.Do(k.kill)
	}
	if len(p) > k.n && k.n > 0 {
		p = p[:k.n]
	}
	n, err := k.r.Read(p)
	k.n -= n
	return n, err
}

// waitFor waits until ok, for at most a minute.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("gave up waiting")
		}
	}
}

func pushReader(t *testing.T, r io.Reader, s setup) run {
	t.Helper()
	var stderr syncBuffer
	s.Name, s.StaleAge = "test", 24*time.Hour
	opt := s.options(&stderr)
	defer opt.Catalog.Close()
	m, err := Push(context.Background(), r, opt)
	return run{m, err, stderr.String()}
}

func TestSFTPHostKilledMidPush(t *testing.T) {
	in := data(600_000, 23)
	s := stream(t, in, 2, 3)
	for _, minShares := range []int{2, 3} {
		t.Run("min-shares="+strconv.Itoa(minShares), func(t *testing.T) {
			hs, ssh := sshHosts(t, 3)
			opt := sshOptions(ssh, hostsOf(hs)...)
			opt.MinShares = minShares
			// Killed once its share's temp file is there: the stream is
			// read ahead while hosts log in, so half of it read does not
			// mean the host took data.
			kill := func() {
				waitFor(t, func() bool { m, _ := filepath.Glob(filepath.Join(hs[2].dir, ".tmp-*.share2")); return len(m) > 0 })
				hs[2].srv.Stop()
			}
			r := pushReader(t, &killer{r: bytes.NewReader(s), n: len(s) / 2, kill: kill}, opt)
			if len(visible(t, hs[2].dir)) != 0 {
				t.Fatalf("killed host shows %v", visible(t, hs[2].dir))
			}
			if minShares == 2 {
				if outcome(r.err) != "degraded" || !strings.Contains(r.err.Error(), "failed: share 2 on "+hs[2].srv.Alias) {
					t.Fatalf("got %v\n%s", r.err, r.stderr)
				}
				if got := joinManifest(t, r.m, dirsOf(hs)); !bytes.Equal(got, in) {
					t.Fatal("joined stream differs")
				}
				return
			}
			if outcome(r.err) != "failed" || r.m != nil {
				t.Fatalf("got %v\n%s", r.err, r.stderr)
			}
			for _, h := range hs {
				if got := visible(t, h.dir); len(got) != 0 {
					t.Errorf("left behind: %v", got)
				}
			}
		})
	}
}

// A connection cut mid-upload is re-dialled and the upload resumed: of a
// stream read once for all hosts, and of one in a file, which each SFTP
// upload sends its share of from the file itself (the blocks never read
// into bk-push), and again after the cut.
func TestSFTPCutConnectionResumed(t *testing.T) {
	for _, fromFile := range []bool{false, true} {
		t.Run(map[bool]string{false: "pipe", true: "file"}[fromFile], func(t *testing.T) {
			hs, ssh := sshHosts(t, 3)
			proxy := proxied(t, hs[1])
			in := data(800_000, 24)
			s := stream(t, in, 2, 3)
			var r io.Reader
			var sf *streamFile
			if fromFile {
				sf = newStreamFile(t, s)
				r = sf
				proxy.CutAfter(300_000) // past the login, part way through the share
			} else {
				// Arm the cut once the upload runs: past the ssh handshake.
				r = &killer{r: bytes.NewReader(s), n: len(s) / 4, kill: func() { proxy.CutAfter(100_000) }}
			}
			got := pushReader(t, r, sshOptions(ssh, hostsOf(hs)...))
			if got.err != nil {
				t.Fatalf("%v\n%s", got.err, got.stderr)
			}
			if proxy.Cuts() == 0 {
				t.Fatal("the proxy never cut the connection")
			}
			if joined := joinManifest(t, got.m, dirsOf(hs)); !bytes.Equal(joined, in) {
				t.Fatal("joined stream differs")
			}
			if files := visible(t, hs[1].dir); len(files) != 2 {
				t.Fatalf("host 1 holds %v", files)
			}
			if sf != nil && minShareBlock == 0 { // each upload reads its own share
				if read := sf.at.Load(); read > int64(len(s))/20 {
					t.Fatalf("read %d bytes of the %d-byte stream at offsets: the blocks were read, not sent from the file", read, len(s))
				}
			}
		})
	}
}

// proxied has h reached through a proxy that can cut the connection: its
// ssh config, on the proxy's port. The proxy closes when the test ends.
func proxied(t *testing.T, h *sshHost) *sshtest.Proxy {
	t.Helper()
	proxy, err := sshtest.NewProxy("127.0.0.1:" + strconv.Itoa(h.srv.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg, err := os.ReadFile(h.srv.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	cfg = regexp.MustCompile(`(?m)^\s*Port \d+$`).ReplaceAll(cfg, []byte("\tPort "+strconv.Itoa(proxy.Port())))
	if err := os.WriteFile(h.srv.ConfigPath(), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return proxy
}

func TestSFTPQuotaReachedMidUpload(t *testing.T) {
	hs, ssh := sshHosts(t, 3)
	hs[0].host.Quota = units.Bytes(50_000)
	in := data(300_000, 25)
	opt := sshOptions(ssh, hostsOf(hs)...)
	opt.MinShares = 2
	r := push(t, stream(t, in, 2, 3), opt)
	if outcome(r.err) != "degraded" || !strings.Contains(r.stderr, "quota 48.8K reached") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	if got := visible(t, hs[0].dir); len(got) != 0 {
		t.Fatalf("full host shows %v", got)
	}
}

func TestSFTPConcurrentPushes(t *testing.T) {
	hs, ssh := sshHosts(t, 3)
	ins := [][]byte{data(100_000, 26), data(100_000, 27)}
	runs := make([]run, 2)
	var wg sync.WaitGroup
	for i := range runs {
		s := stream(t, ins[i], 2, 3)
		wg.Go(func() { runs[i] = push(t, s, sshOptions(ssh, hostsOf(hs)...)) })
	}
	wg.Wait()
	for i, r := range runs {
		if r.err != nil {
			t.Fatalf("push %d: %v\n%s", i, r.err, r.stderr)
		}
		if got := joinManifest(t, r.m, dirsOf(hs)); !bytes.Equal(got, ins[i]) {
			t.Fatalf("push %d: joined stream differs", i)
		}
	}
	for _, h := range hs {
		if got := visible(t, h.dir); len(got) != 4 {
			t.Fatalf("host holds %v", got)
		}
	}
}

// streamFile is a stream saved in a file after other bytes, as bk-push
// finds one on stdin: read in order, at offsets from the stream's start,
// and sent from the file itself by the uploads that can. at counts the
// bytes read at offsets.
type streamFile struct {
	f    *os.File
	base int64
	at   atomic.Int64
	all  atomic.Int64 // all bytes read
	// cut, when set, is called once the reads pass cutAfter bytes.
	cut      func()
	cutAfter int64
	cutOnce  sync.Once
}

func (s *streamFile) Read(p []byte) (int, error) {
	n, err := s.f.Read(p)
	s.read(0, n)
	return n, err
}

func (s *streamFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, s.base+off)
	s.read(n, n)
	return n, err
}

// read counts n bytes read at offsets, of all bytes read, and cuts.
func (s *streamFile) read(at, all int) {
	s.at.Add(int64(at))
	if s.all.Add(int64(all)) > s.cutAfter && s.cut != nil {
		s.cutOnce.Do(s.cut)
	}
}

func (s *streamFile) File() (*os.File, int64) { return s.f, s.base }

// newStreamFile saves stream in a file after 1,000 other bytes, at which
// the file is left open.
func newStreamFile(t *testing.T, stream []byte) *streamFile {
	t.Helper()
	name := filepath.Join(t.TempDir(), "stream.bks")
	if err := os.WriteFile(name, append(make([]byte, 1000), stream...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return &streamFile{f: f, base: 1000}
}

// TestSFTPStreamFileCutShort: a stream file cut short under bk-push, while
// the SFTP uploads send from it, fails the push as a damaged stream, with
// no host blamed and nothing left on the hosts.
func TestSFTPStreamFileCutShort(t *testing.T) {
	hs, ssh := sshHosts(t, 3)
	s := stream(t, data(3_000_000, 27), 2, 3)
	sf := newStreamFile(t, s)
	// Sent from the file, 30 kB are headers and checksums of about a tenth
	// of the way; read, a hundredth.
	sf.cutAfter = 30_000
	sf.cut = func() {
		if err := os.Truncate(sf.f.Name(), sf.base+int64(len(s))/2); err != nil {
			t.Error(err)
		}
	}
	opt := sshOptions(ssh, hostsOf(hs)...)
	opt.ExpectSize = 3_000_000
	r := pushReader(t, sf, opt)
	var streamErr *StreamError
	if !errors.As(r.err, &streamErr) || !strings.Contains(r.err.Error(), "truncated") {
		t.Fatalf("got %v, want the stream named as cut short\n%s", r.err, r.stderr)
	}
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("warnings, want none:\n%s", r.stderr)
	}
	for i, h := range hs {
		if got := visible(t, h.dir); len(got) != 0 {
			t.Errorf("host %d holds %v", i, got)
		}
	}
}

// TestSFTPHostClockBehind: with the hosts' clocks two days behind ours,
// every file there looks stale, this push's test files being written too;
// the stale temps are removed while they are written, but not them: a
// push succeeds and removes nothing, and one folder reached as two hosts
// is still refused by its test files, neither host removing the other's.
func TestSFTPHostClockBehind(t *testing.T) {
	hs, ssh := sshHosts(t, 3)
	s := stream(t, data(100_000, 28), 2, 3)
	opt := sshOptions(ssh, hostsOf(hs)...)
	opt.Now = time.Now().Add(48 * time.Hour)
	r := pushReader(t, bytes.NewReader(s), opt)
	if r.err != nil || strings.Contains(r.stderr, "removed") {
		t.Fatalf("got %v\n%s", r.err, r.stderr)
	}
	opt = sshOptions(ssh, hs[0].host, hs[1].host, hs[2].srv.Host(hs[0].dir))
	opt.Now = time.Now().Add(48 * time.Hour)
	r = pushReader(t, bytes.NewReader(stream(t, data(100_000, 29), 2, 3)), opt)
	var sameErr *SameFolderError
	if !errors.As(r.err, &sameErr) {
		t.Fatalf("one folder as two hosts: got %v, want it refused\n%s", r.err, r.stderr)
	}
}
