package sftp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/fsutil"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

var fastRetry = remote.Retry{Attempts: 5, First: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// TestMain lets more tests run at once than GOMAXPROCS: they wait on ssh
// logins and on timeouts of silent hosts far more than they compute.
func TestMain(m *testing.M) {
	forgeMain()
	sshtest.MoreParallel(8)
	os.Exit(m.Run())
}

// forEachServer runs f against the real sshd (where installed) and the
// in-process server, both at once; the tests themselves run in parallel
// too: they wait on ssh handshakes far more than on the CPU.
func forEachServer(t *testing.T, f func(t *testing.T, s *sshtest.Server)) {
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	for _, kind := range []string{"sshd", "go"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "nas-"+kind)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			start := sshtest.StartGo
			if kind == "sshd" {
				start = sshtest.Start
			}
			s, err := start(dir)
			if errors.Is(err, sshtest.ErrNoSSHD) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Stop() })
			f(t, s)
		})
	}
}

// at is folder dir on s.
func at(s *sshtest.Server, dir string) Location { return Location{Host: s.Alias, Path: dir} }

// folder makes an empty folder on the server's machine.
func folder(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dial(t *testing.T, s *sshtest.Server, h Location, opts remote.DialOptions) *SFTP {
	t.Helper()
	if opts.SSHCommand == nil {
		opts.SSHCommand = s.SSHCommand()
	}
	r, err := Dial(context.Background(), h, opts)
	if err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, s.Log())
	}
	return r
}

// TestSuite runs the conformance suite, which tests sessions, not logins:
// its connections share one (the first dial's, open until the suite ends).
func TestSuite(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		ssh := s.SharedSSHCommand(t.TempDir())
		first := dial(t, s, at(s, folder(t)), remote.DialOptions{SSHCommand: ssh})
		t.Cleanup(func() { first.Close() })
		remotetest.Run(t, func(t *testing.T, opts remote.DialOptions) (remote.Remote, remotetest.Flip) {
			dir := folder(t)
			opts.SSHCommand = ssh
			return dial(t, s, at(s, dir), opts), remotetest.InDir(dir)
		})
	})
}

// viaProxy dials a fresh folder on s through a proxy that can cut the
// connection; both are closed when the test ends.
func viaProxy(t *testing.T, s *sshtest.Server, opts remote.DialOptions) (*SFTP, *sshtest.Proxy) {
	t.Helper()
	return dialProxied(t, s, at(s, folder(t)), opts)
}

// dialProxied dials h on s through a proxy that can cut the connection;
// both are closed when the test ends.
func dialProxied(t *testing.T, s *sshtest.Server, h Location, opts remote.DialOptions) (*SFTP, *sshtest.Proxy) {
	t.Helper()
	p, err := sshtest.NewProxy("127.0.0.1:" + strconv.Itoa(s.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	h.Port = p.Port()
	r := dial(t, s, h, opts)
	t.Cleanup(func() { r.Close() })
	return r, p
}

// warnings collects what a connection warns about.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) add(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, msg)
}

func (w *warnings) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lines)
}

// TestResumeAfterCut cuts an upload and a read: both resume, and each says
// so once, with why the connection was lost, and nothing else is said
// (ssh's own line, when it has one, is the reason in that message).
func TestResumeAfterCut(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		var w warnings
		r, p := viaProxy(t, s, remote.DialOptions{Retry: fastRetry, Warn: w.add})
		// Each cut lands in the middle of a chunk on its way.
		remotetest.Resume(t, r, func() { p.CutAfter(ChunkSize / 3) })
		if p.Cuts() != 2 {
			t.Fatalf("%d cuts, want 2", p.Cuts())
		}
		got := w.get()
		t.Logf("warnings: %q", got)
		prefix := regexp.QuoteMeta("host "+r.String()+": connection lost (") + ".+" + regexp.QuoteMeta("); reconnected, ")
		// Chunks are on their way when the cut lands: the upload resumes
		// at the start of the first one not acknowledged.
		want := []*regexp.Regexp{
			regexp.MustCompile("^" + prefix + "upload of .*/resume/s resumed at byte (0|" + strconv.Itoa(ChunkSize) + "|" + strconv.Itoa(2*ChunkSize) + "|" + strconv.Itoa(3*ChunkSize) + ")$"),
			regexp.MustCompile("^" + prefix + "read of .*/resume/s resumed at byte " + strconv.FormatInt(readAheadEnd(1, 2<<20, r.conn.packet), 10) + "$"),
		}
		if len(got) != len(want) {
			t.Fatalf("warnings %q, want one for each cut", got)
		}
		for i, re := range want {
			if !re.MatchString(got[i]) {
				t.Errorf("warning %q does not match %s", got[i], re)
			}
		}
	})
}

// TestKeptResumeAfterCut cuts an upload of lent buffers (WriteKept, as
// bk-push sends): it resumes, sending again what was not acknowledged,
// and each buffer comes back once, only once acknowledged: a buffer
// scribbled on when it comes back, then sent again, would show in the file.
func TestKeptResumeAfterCut(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r, p := viaProxy(t, s, remote.DialOptions{Retry: fastRetry})
		ctx := context.Background()
		data := remotetest.Data(6<<20, 31)
		up, err := r.Create(ctx, "kept")
		if err != nil {
			t.Fatal(err)
		}
		defer up.Abort()
		keeper := up.(remote.Keeper)
		lent := map[*byte]bool{}
		release := func(b []byte) {
			if !lent[&b[0]] {
				t.Errorf("a buffer came back twice, or was never lent")
			}
			delete(lent, &b[0])
			clear(b)
		}
		const batch = 900 << 10 // not a multiple of any chunk or request
		for off := 0; off < len(data); off += batch {
			if off >= 2<<20 && p.Cuts() == 0 {
				p.CutAfter(ChunkSize / 3)
			}
			b := slices.Clone(data[off:min(off+batch, len(data))])
			lent[&b[0]] = true
			if err := keeper.WriteKept(b, release); err != nil {
				t.Fatalf("write at %d: %v", off, err)
			}
		}
		if err := up.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if p.Cuts() != 1 {
			t.Fatalf("%d cuts, want 1", p.Cuts())
		}
		if len(lent) != 0 {
			t.Errorf("%d buffers never came back", len(lent))
		}
		if got := remotetest.Get(t, r, "kept", 0); !bytes.Equal(got, data) {
			t.Fatal("stored file differs from what was written")
		}
	})
}

// readAheadEnd is where a reader opened at from has read ahead to once n
// bytes have been read from it, packet bytes a request: the read after
// that is the one cut.
func readAheadEnd(from, n int64, packet int) int64 {
	end := from
	for size := chunkAfter(0, packet); end-from < n; size = chunkAfter(size, packet) {
		end += int64(size)
	}
	return end
}

// TestVerifyAfterCut cuts the connection while Commit reads the file back:
// the read resumes, and the file is committed.
func TestVerifyAfterCut(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r, p := viaProxy(t, s, remote.DialOptions{Retry: fastRetry, Verify: true})
		ctx := context.Background()
		data := remotetest.Data(3*ChunkSize, 50) // whole chunks: all sent before Commit
		up, err := r.Create(ctx, "v")
		if err != nil {
			t.Fatal(err)
		}
		defer up.Abort()
		if _, err := up.Write(data); err != nil {
			t.Fatal(err)
		}
		p.CutAfter(ChunkSize + ChunkSize/3)
		if err := up.Commit(ctx); err != nil {
			t.Fatalf("commit with a cut during the check: %v", err)
		}
		if p.Cuts() != 1 {
			t.Fatalf("%d cuts, want 1", p.Cuts())
		}
		if !bytes.Equal(remotetest.Get(t, r, "v", 0), data) {
			t.Fatal("committed file differs")
		}
	})
}

func TestGiveUpAfterRetries(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r, p := viaProxy(t, s, remote.DialOptions{Retry: fastRetry})
		up, err := r.Create(context.Background(), "f")
		if err != nil {
			t.Fatal(err)
		}
		defer up.Abort()
		p.Close() // the host is gone for good
		// A full window: the last chunk waits for the first.
		_, err = up.Write(make([]byte, Window*ChunkSize))
		want := "host " + r.String() + ": upload "
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "gave up after 5 reconnects") {
			t.Fatalf("got %v, want %q… gave up after 5 reconnects", err, want)
		}
		if _, err2 := up.Write([]byte("x")); err2 == nil {
			t.Fatal("write after giving up succeeded")
		}
		if err2 := up.Commit(context.Background()); err2 == nil {
			t.Fatal("commit after giving up succeeded")
		}
	})
}

// A host that can't be reached is reported once: by the error, with
// ssh's reason, and by no warning besides.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		h := at(s, folder(t))
		h.Port = port
		var w warnings
		_, err = Dial(context.Background(), h, remote.DialOptions{SSHCommand: s.SSHCommand(), Warn: w.add})
		want := "host " + s.Alias + ":" + strconv.Itoa(port) + ": ssh: connect to host 127.0.0.1 port " + strconv.Itoa(port) + ": Connection refused"
		if err == nil || err.Error() != want {
			t.Fatalf("got  %v\nwant %s", err, want)
		}
		if got := w.get(); len(got) != 0 {
			t.Fatalf("the failed host was also reported as %q", got)
		}
	})
}

// An unknown host key is refused, never asked about, even where ssh could
// ask on a terminal; the error says which, so the tools can hint.
func TestUnknownHostKey(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var w warnings
		cmd := append(s.SSHCommand(), "-o", "UserKnownHostsFile="+empty)
		_, err := Dial(context.Background(), at(s, folder(t)), remote.DialOptions{SSHCommand: cmd, Warn: w.add})
		if want := "host " + s.Alias + ": Host key verification failed."; err == nil || err.Error() != want || !errors.Is(err, ErrHostKey) {
			t.Fatalf("got  %v\nwant %s (ErrHostKey)", err, want)
		}
		if got := w.get(); len(got) != 0 {
			t.Fatalf("the refused host was also reported as %q", got)
		}
		if got, want := LoginCommand(at(s, ""), remote.DialOptions{SSHCommand: cmd}), strings.Join(cmd, " ")+" "+s.Alias; got != want {
			t.Errorf("LoginCommand = %q, want %q", got, want)
		}
	})
}

// What ssh says on a connection that works reaches the user as warnings
// naming the host.
func TestStderrNamesHost(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		var w warnings
		opts := remote.DialOptions{SSHCommand: append(s.SSHCommand(), "-v"), Warn: w.add}
		r := dial(t, s, at(s, folder(t)), opts)
		r.Close()
		lines := w.get()
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "host "+s.Alias+": ssh: debug1: ") }) {
			t.Fatalf("no debug line prefixed with the host in %q", lines)
		}
	})
}

// A host that accepts the connection and then says nothing fails the dial
// within the timeout, naming the host, instead of hanging.
func TestDialSilentHost(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		p, err := sshtest.NewProxy("127.0.0.1:" + strconv.Itoa(s.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.Stall()
		h := at(s, folder(t))
		h.Port = p.Port()
		err = returnsSoon(t, func() error {
			r, err := Dial(context.Background(), h, remote.DialOptions{SSHCommand: s.SSHCommand(), Timeout: testTimeout})
			if err == nil {
				r.Close()
			}
			return err
		})
		if err == nil || !strings.HasPrefix(err.Error(), "host "+h.String()+": ") || !regexp.MustCompile(`no answer for 5s|[Tt]imed out`).MatchString(err.Error()) {
			t.Fatalf("got %v, want the host named and a timeout", err)
		}
	})
}

// A host that stops answering in the middle of a session fails the
// request within the timeout: the connection is ended, as pkg/sftp's calls
// can't be cancelled, and the host is not dialled again.
func TestStuckRequest(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r, p, up := stalledUpload(t, s)
		ctx := context.Background()
		err := returnsSoon(t, func() error {
			if _, err := up.Write(make([]byte, ChunkSize)); err != nil {
				return err
			}
			return up.Commit(ctx)
		})
		if want := "host " + r.String() + ": upload "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), ": no answer for 5s") {
			t.Fatalf("got %v, want %q…: no answer for 5s", err, want)
		}
		dials := p.Conns()
		_, err = r.Stat(ctx, "f")
		if want := "host " + r.String() + ": stat f: no answer for 5s"; err == nil || err.Error() != want {
			t.Fatalf("stat of the stalled host: got %v, want %s", err, want)
		}
		if p.Conns() != dials {
			t.Fatal("the host that stopped answering was dialled again")
		}
	})
}

// stalledUpload starts an upload of "f" on s through a proxy, then makes
// the host hang; the upload is aborted when the test ends.
func stalledUpload(t *testing.T, s *sshtest.Server) (*SFTP, *sshtest.Proxy, remote.Upload) {
	t.Helper()
	r, p := viaProxy(t, s, remote.DialOptions{Retry: fastRetry, Timeout: testTimeout})
	up, err := r.Create(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Abort() })
	p.Stall()
	return r, p, up
}

// testTimeout is the timeout of the tests of silent hosts: long enough
// that a healthy login on a loaded machine is not taken for silence.
const testTimeout = 5 * time.Second

// returnsSoon runs f and fails the test if it hangs: a guard against a
// hang, far above the timeouts under test, not a measure of speed.
func returnsSoon(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("still waiting after 2 minutes: the host's silence was not noticed")
		return nil
	}
}

func TestMissingFolder(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		dir := filepath.Join(t.TempDir(), "nope")
		_, err := Dial(context.Background(), at(s, dir), remote.DialOptions{SSHCommand: s.SSHCommand()})
		if !errors.Is(err, remote.ErrNotExist) || !strings.HasPrefix(err.Error(), "host "+s.Alias+": folder "+dir+": ") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestFreeMatchesStatfs(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		dir := folder(t)
		r := dial(t, s, at(s, dir), remote.DialOptions{})
		defer r.Close()
		free, err := r.Free(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want, err := fsutil.FreeSpace(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d := free - want; d < -64<<20 || d > 64<<20 {
			t.Fatalf("Free = %d, statfs says %d", free, want)
		}
	})
}

func TestClosed(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r := dial(t, s, at(s, folder(t)), remote.DialOptions{})
		r.Close()
		if _, err := r.Stat(context.Background(), "x"); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Stat after Close: %v", err)
		}
	})
}

func TestSSHArgs(t *testing.T) {
	h := Location{Host: "nas", User: "me", Port: 2222}
	got := strings.Join(sshArgs(h, nil, 30*time.Second), " ")
	if want := "ssh -p 2222 -l me -o BatchMode=yes -o ForwardAgent=no -o ForwardX11=no -o ClearAllForwardings=yes -o PermitLocalCommand=no -o ConnectTimeout=30 -o ServerAliveInterval=10 -o ServerAliveCountMax=3 nas -s sftp"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	got = strings.Join(sshArgs(Location{Host: "nas"}, []string{"ssh", "-F", "cfg"}, time.Second), " ")
	if want := "ssh -F cfg -o BatchMode=yes -o ForwardAgent=no -o ForwardX11=no -o ClearAllForwardings=yes -o PermitLocalCommand=no -o ConnectTimeout=1 -o ServerAliveInterval=1 -o ServerAliveCountMax=3 nas -s sftp"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestSSHForwardsNothing: a user's ssh config that forwards the agent, X11
// and ports, and runs a local command, does none of it for bk: the real
// ssh client's resolved config (ssh -G) says so.
func TestSSHForwardsNothing(t *testing.T) {
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	conf := "Host nas\n ForwardAgent yes\n ForwardX11 yes\n LocalForward 8080 localhost:80\n PermitLocalCommand yes\n LocalCommand touch /tmp/x\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := sshArgs(Location{Host: "nas"}, []string{"ssh", "-F", cfg}, time.Second)
	out, err := exec.Command(args[0], append([]string{"-G"}, args[1:]...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"forwardagent no", "forwardx11 no", "clearallforwardings yes", "permitlocalcommand no"} {
		if !regexp.MustCompile("(?m)^" + want + "$").Match(out) {
			t.Errorf("ssh -G does not say %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("localforward")) {
		t.Errorf("a port is still forwarded:\n%s", out)
	}
}

// Folders of one file system on one host name it alike: the hosts share
// its free space in bk-push's check.
func TestFileSystem(t *testing.T) {
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		var names []string
		for range 2 {
			r := dial(t, s, at(s, folder(t)), remote.DialOptions{})
			name, err := r.FileSystem(context.Background())
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		if names[0] != names[1] || (s.Real && !strings.HasPrefix(names[0], "sftp:@"+s.Alias+":")) {
			t.Fatalf("file systems %q: want one, named after the host", names)
		}
	})
}

// TestWindowCountsChunks: an upload keeps at most Window chunks on their
// way, however small the ones it is lent: at N=256 bk-push lends a frame
// a batch, and a window counted in bytes only would hold thousands a host.
func TestWindowCountsChunks(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		_, _, up := stalledUpload(t, s)
		keeper := up.(remote.Keeper)
		accepted := 0
		err := returnsSoon(t, func() error {
			for range 100 * Window {
				if err := keeper.WriteKept(make([]byte, 4<<10), func([]byte) {}); err != nil {
					return err
				}
				accepted++
			}
			return nil
		})
		if err == nil {
			t.Fatalf("%d chunks of 4 KiB went on their way to a host that answers nothing", accepted)
		}
		if accepted >= Window {
			t.Fatalf("%d chunks on their way to a silent host, want fewer than %d", accepted, Window)
		}
	})
}
