package sshtest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
)

// servers starts each kind of server available here.
func servers(t *testing.T) map[string]*Server {
	if !HaveSSH() {
		t.Skip("no ssh client")
	}
	out := map[string]*Server{}
	for kind, start := range map[string]func(string) (*Server, error){"sshd": Start, "go": StartGo} {
		dir := filepath.Join(t.TempDir(), "nas-"+kind)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := start(dir)
		if errors.Is(err, ErrNoSSHD) {
			t.Logf("%s: %v", kind, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		t.Cleanup(func() { s.Stop() })
		out[kind] = s
	}
	return out
}

// dialSFTP speaks SFTP over the server's ssh command, with extra ssh args.
func dialSFTP(t *testing.T, s *Server, args ...string) (*sftp.Client, error) {
	cmdline := append(append(s.SSHCommand(), args...), s.Alias, "-s", "sftp")
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c, err := sftp.NewClientPipe(out, in)
	if err != nil {
		cmd.Wait()
		return nil, errors.New(err.Error() + ": " + stderr.String())
	}
	return c, nil
}

func TestServersServeSFTP(t *testing.T) {
	for kind, s := range servers(t) {
		t.Run(kind, func(t *testing.T) {
			if s.Alias != "nas-"+kind {
				t.Errorf("alias %q", s.Alias)
			}
			c, err := dialSFTP(t, s)
			if err != nil {
				t.Fatalf("%v\nserver log:\n%s", err, s.Log())
			}
			defer c.Close()
			f, err := c.Create(filepath.Join(s.Dir, "hello"))
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("hi"))
			f.Close()
			if b, err := os.ReadFile(filepath.Join(s.Dir, "hello")); err != nil || string(b) != "hi" {
				t.Fatalf("file through sftp: %q, %v", b, err)
			}
			if _, ok := c.HasExtension("hardlink@openssh.com"); !ok {
				t.Error("no hardlink@openssh.com")
			}
		})
	}
}

func TestUnknownHostKeyRefused(t *testing.T) {
	for kind, s := range servers(t) {
		t.Run(kind, func(t *testing.T) {
			empty := filepath.Join(t.TempDir(), "known_hosts")
			os.WriteFile(empty, nil, 0o600)
			_, err := dialSFTP(t, s, "-o", "UserKnownHostsFile="+empty)
			if err == nil || !strings.Contains(err.Error(), "Host key verification failed.") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestStopEndsConnections(t *testing.T) {
	for kind, s := range servers(t) {
		t.Run(kind, func(t *testing.T) {
			c, err := dialSFTP(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Getwd(); err == nil {
				if _, err := c.Stat(s.Dir); err == nil {
					t.Fatal("connection still works after Stop")
				}
			}
			if _, err := dialSFTP(t, s); err == nil {
				t.Fatal("new connection after Stop")
			}
		})
	}
}

// proxyTo starts a proxy to s, closed when the test ends.
func proxyTo(t *testing.T, s *Server) *Proxy {
	t.Helper()
	p, err := NewProxy("127.0.0.1:" + strconv.Itoa(s.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProxyCuts(t *testing.T) {
	for kind, s := range servers(t) {
		t.Run(kind, func(t *testing.T) {
			p := proxyTo(t, s)
			port := "-oPort=" + strconv.Itoa(p.Port())
			c, err := dialSFTP(t, s, port)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Stat(s.Dir); err != nil {
				t.Fatalf("through the proxy: %v", err)
			}
			p.CutAfter(100 << 10)
			f, err := c.Create(filepath.Join(s.Dir, "big"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Write(make([]byte, 1<<20))
			if err == nil {
				_, err = c.Stat(s.Dir)
			}
			if err == nil {
				t.Fatal("1 MiB went through a proxy set to cut after 100 KiB")
			}
			if p.Cuts() != 1 {
				t.Fatalf("%d cuts", p.Cuts())
			}
			c2, err := dialSFTP(t, s, port)
			if err != nil {
				t.Fatalf("reconnect after the cut: %v", err)
			}
			if _, err := c2.Stat(s.Dir); err != nil {
				t.Fatal(err)
			}
			p.Cut()
			if _, err := c2.Stat(s.Dir); err == nil {
				t.Fatal("connection works after Cut")
			}
		})
	}
}

func TestProxyStalls(t *testing.T) {
	for kind, s := range servers(t) {
		t.Run(kind, func(t *testing.T) {
			p := proxyTo(t, s)
			open, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.Port()))
			if err != nil {
				t.Fatal(err)
			}
			defer open.Close()
			if banner := readSome(open, 10*time.Second); !strings.HasPrefix(banner, "SSH-2.0-") {
				t.Fatalf("before the stall the server said %q", banner)
			}
			p.Stall()
			if _, err := open.Write([]byte("SSH-2.0-test\r\n")); err != nil {
				t.Fatal(err)
			}
			if got := readSome(open, 300*time.Millisecond); got != "" {
				t.Fatalf("a stalled connection passed %q", got)
			}
			fresh, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.Port()))
			if err != nil {
				t.Fatalf("a stalled proxy refused a connection: %v", err)
			}
			defer fresh.Close()
			if got := readSome(fresh, 300*time.Millisecond); got != "" {
				t.Fatalf("a new connection to a stalled proxy got %q", got)
			}
		})
	}
}

// readSome returns what c says within d, "" when nothing.
func readSome(c net.Conn, d time.Duration) string {
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(d))
	n, _ := c.Read(buf)
	return string(buf[:n])
}

// TestDescendants finds a shell's children and grandchildren from /proc's
// lists of children, as the scan of every process's parent does.
func TestDescendants(t *testing.T) {
	// The inner shell says "started" once every process below the outer
	// one has been forked.
	cmd := exec.Command("sh", "-c", `sleep 30 & sh -c 'sleep 30 & sleep 30 & echo started; wait' & wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, pid := range descendantsByParent(cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if _, err := out.Read(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	got, want := descendants(cmd.Process.Pid), descendantsByParent(cmd.Process.Pid)
	slices.Sort(got)
	slices.Sort(want)
	if len(want) != 4 || !slices.Equal(got, want) {
		t.Fatalf("descendants = %v, the scan of parents found %v; want the same 4", got, want)
	}
}

// Once its client has gone, a connection's process has been waited for by
// sshd when WaitConnections returns.
func TestWaitConnections(t *testing.T) {
	s, ok := servers(t)["sshd"]
	if !ok {
		t.Skip("no sshd")
	}
	c, err := dialSFTP(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(children(s.cmd.Process.Pid)) == 0 {
		t.Fatal("no process serves the connection")
	}
	c.Close()
	s.WaitConnections(10 * time.Second)
	if n := len(children(s.cmd.Process.Pid)); n > 0 {
		t.Fatalf("%d processes of sshd's left after WaitConnections", n)
	}
}
