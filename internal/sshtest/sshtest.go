// Package sshtest runs SSH servers on 127.0.0.1 for tests: the real OpenSSH
// sshd where it is installed, else an in-process Go server, both reached
// with the system ssh client through a generated config, so no test reads
// or writes the user's ~/.ssh. A cut proxy drops connections on demand.
package sshtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bk-backup/bk/internal/hostsfile"
)

// ErrNoSSHD means OpenSSH's sshd is not installed.
var ErrNoSSHD = errors.New("sshd not installed")

// Server is a running SSH server with SFTP.
type Server struct {
	Dir   string // keys, configs and known_hosts live here
	Alias string // the host name that the ssh config maps to this server
	Port  int
	User  string
	Real  bool // OpenSSH sshd rather than the in-process server
	// AppendOnly is the append-only account (StartAppendOnly), else nil.
	AppendOnly *AppendOnly

	cmd  *exec.Cmd
	done chan struct{} // closed when sshd has exited
	log  *syncBuffer
	gsrv *goServer
	// sftpServer and requestLog are set by StartLoggingRequests: the
	// sftp-server program, and the file it logs each request to.
	sftpServer, requestLog string
}

// SSHDPath is the sshd binary, "" when there is none.
func SSHDPath() string {
	if p, err := exec.LookPath("sshd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
		return "/usr/sbin/sshd"
	}
	return ""
}

// HaveSSH reports whether the ssh client is installed; both servers need it.
func HaveSSH() bool {
	_, err := exec.LookPath("ssh")
	return err == nil
}

// Start runs OpenSSH's sshd in the foreground on a free port of 127.0.0.1,
// with throwaway host and user keys written to dir (which must exist). Its
// alias is dir's base name. It returns ErrNoSSHD when sshd is not installed.
func Start(dir string) (*Server, error) { return start(dir, nil) }

// ErrNoSFTPServer means OpenSSH's sftp-server program was not found.
var ErrNoSFTPServer = errors.New("OpenSSH's sftp-server not found")

// StartLoggingRequests is Start, but sshd runs OpenSSH's sftp-server
// program rather than its internal-sftp, logging each request it serves
// (-l VERBOSE) for RequestLog, for tests of what a client asks of a host.
// It returns ErrNoSFTPServer when the program is not found.
func StartLoggingRequests(dir string) (*Server, error) {
	for _, p := range []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
		"/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server"} {
		if _, err := os.Stat(p); err == nil {
			return start(dir, func(s *Server) {
				s.sftpServer, s.requestLog = p, filepath.Join(s.Dir, "sftp-server.log")
			})
		}
	}
	return nil, ErrNoSFTPServer
}

// RequestLog is what sftp-server has logged so far (StartLoggingRequests):
// a line a request, such as `fsync "/path/of/file"`.
func (s *Server) RequestLog() string {
	b, _ := os.ReadFile(s.requestLog)
	return string(b)
}

// start starts sshd for a server that set (nil: none) makes other than
// plain.
func start(dir string, set func(*Server)) (*Server, error) {
	sshd := SSHDPath()
	if sshd == "" {
		return nil, ErrNoSSHD
	}
	s, err := setup(dir, true)
	if err != nil {
		return nil, err
	}
	if set != nil {
		set(s)
	}
	if os.Geteuid() == 0 {
		// Debian's sshd refuses to start without its privilege-separation
		// folder, which a fresh machine or container may lack.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	// A free port can be taken between our probe and sshd's bind: retry.
	for range 5 {
		if err := s.startSSHD(sshd); err == nil {
			return s, nil
		} else if !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
	return nil, fmt.Errorf("sshd: no free port found")
}

// StartAny starts the real sshd if installed, else the in-process server.
func StartAny(dir string) (*Server, error) {
	if SSHDPath() == "" {
		return StartGo(dir)
	}
	return Start(dir)
}

func (s *Server) startSSHD(sshd string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	if err := s.writeClientFiles(); err != nil {
		return err
	}
	cfg := filepath.Join(s.Dir, "sshd_config")
	penalties, err := knowsPenalties(sshd, cfg, s.sshdConfig(true))
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg, []byte(s.sshdConfig(penalties)), 0o600); err != nil {
		return err
	}
	// -r: no re-exec of sshd for each connection, a quarter of the
	// server's CPU a login; newer sshd ignores it.
	cmd := exec.Command(sshd, "-D", "-e", "-r", "-f", cfg)
	// sshd's connection children inherit its stderr and outlive it, so
	// the log is read from a plain pipe and Wait doesn't wait for them.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stderr = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	s.cmd, s.log, s.done = cmd, &syncBuffer{}, make(chan struct{})
	ready := make(chan bool, 2)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.log.WriteLine(sc.Text())
			if strings.Contains(sc.Text(), "Server listening on") {
				ready <- true
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(s.done)
		ready <- false
	}()
	if <-ready {
		return nil
	}
	<-logDone // sshd exited before serving, so no child holds the pipe
	return fmt.Errorf("sshd did not start: %s", strings.TrimSpace(s.log.String()))
}

// penalties caches knowsPenalties' answer: an sshd -t a server is 10 ms
// of CPU, and a test run starts about seventy.
var penalties struct {
	sync.Mutex
	known, ok bool
}

// knowsPenalties reports whether sshd takes the PerSourcePenalties option,
// trying config (which sets it) with sshd -t, written to path, the first
// time. Newer sshd penalises clients that fail (as the host-key tests do)
// by refusing them for a while; older ones don't know the option.
func knowsPenalties(sshd, path, config string) (bool, error) {
	penalties.Lock()
	defer penalties.Unlock()
	if penalties.known {
		return penalties.ok, nil
	}
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return false, err
	}
	out, err := exec.Command(sshd, "-t", "-f", path).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("PerSourcePenalties")) {
		return false, fmt.Errorf("sshd config: %s", bytes.TrimSpace(out))
	}
	penalties.known, penalties.ok = true, err == nil
	return penalties.ok, nil
}

func (s *Server) sshdConfig(penalties bool) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s %s\n", k, v) }
	line("ListenAddress", "127.0.0.1:"+strconv.Itoa(s.Port))
	line("HostKey", quote(filepath.Join(s.Dir, "host_ed25519")))
	line("AuthorizedKeysFile", quote(filepath.Join(s.Dir, "authorized_keys")))
	line("PidFile", "none")
	line("StrictModes", "no")
	line("PubkeyAuthentication", "yes")
	line("PasswordAuthentication", "no")
	line("KbdInteractiveAuthentication", "no")
	line("PermitRootLogin", "prohibit-password")
	line("UsePAM", "no")
	users := s.User
	if s.AppendOnly != nil {
		users += " " + s.AppendOnly.User
	}
	line("AllowUsers", users)
	line("MaxStartups", "100")
	line("MaxSessions", "100")
	line("LogLevel", "INFO")
	if s.sftpServer != "" {
		// Run by the user's shell, which sends its stderr to the log.
		line("Subsystem", "sftp "+s.sftpServer+" -e -l VERBOSE 2>>"+s.requestLog)
	} else {
		line("Subsystem", "sftp internal-sftp")
	}
	if penalties {
		line("PerSourcePenalties", "no")
	}
	if s.AppendOnly != nil {
		b.WriteString(s.AppendOnly.matchBlock())
	}
	return b.String()
}

// setup makes the keys and identity of a new server in dir.
func setup(dir string, real bool) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Alias: alias(dir), User: u.Username, Real: real}
	for _, name := range []string{"host_ed25519", "id_ed25519"} {
		if err := writeKey(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "id_ed25519.pub"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// alias makes a host name of dir's base name.
func alias(dir string) string {
	a := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, filepath.Base(dir))
	a = strings.TrimLeft(a, "-.")
	if a == "" {
		return "sshtest"
	}
	return a
}

// writeKey writes a new ed25519 key pair as name and name.pub.
func writeKey(name string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "bk sshtest")
	if err != nil {
		return err
	}
	if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	return os.WriteFile(name+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644)
}

// writeClientFiles writes known_hosts and ssh_config for the current port.
// The host key is filed under the alias (HostKeyAlias), so it still matches
// when ssh goes through a proxy on another port.
func (s *Server) writeClientFiles() error {
	hostPub, err := os.ReadFile(filepath.Join(s.Dir, "host_ed25519.pub"))
	if err != nil {
		return err
	}
	known := s.Alias + " " + string(hostPub)
	if err := os.WriteFile(filepath.Join(s.Dir, "known_hosts"), []byte(known), 0o600); err != nil {
		return err
	}
	return os.WriteFile(s.ConfigPath(), []byte(s.sshConfig()), 0o600)
}

func (s *Server) sshConfig() string {
	var b strings.Builder
	names := s.Alias
	if s.AppendOnly != nil {
		// ssh takes the first value it reads: the client's block first.
		b.WriteString(s.clientConfig())
		names += " " + s.AppendOnly.Alias
	}
	fmt.Fprintf(&b, "Host %s\n", names)
	line := func(k, v string) { fmt.Fprintf(&b, "\t%s %s\n", k, v) }
	line("HostName", "127.0.0.1")
	line("Port", strconv.Itoa(s.Port))
	line("User", s.User)
	line("HostKeyAlias", s.Alias)
	line("UserKnownHostsFile", quote(filepath.Join(s.Dir, "known_hosts")))
	line("GlobalKnownHostsFile", "/dev/null")
	line("StrictHostKeyChecking", "yes")
	line("IdentityFile", quote(filepath.Join(s.Dir, "id_ed25519")))
	line("IdentitiesOnly", "yes")
	line("IdentityAgent", "none")
	// OpenSSH 9's default key exchange, sntrup761x25519, costs the client
	// about 0.1 s of CPU a login, 8 times curve25519's; the tests log in
	// hundreds of times, and on a loaded machine the slower login alone
	// outlasted a 5 s --timeout. Which exchange is used is not under test.
	line("KexAlgorithms", "curve25519-sha256")
	// AES-GCM runs on the CPU's AES instructions in OpenSSH and in Go;
	// the default, chacha20-poly1305, is plain Go code in the in-process
	// server, where it was a fifth of the SFTP tests' CPU. Which cipher is
	// used is not under test either.
	line("Ciphers", "aes128-gcm@openssh.com")
	line("BatchMode", "yes")
	line("ControlMaster", "no")
	line("ControlPath", "none")
	line("ConnectTimeout", "20")
	line("LogLevel", "ERROR")
	return b.String()
}

func quote(s string) string { return `"` + s + `"` }

// ConfigPath is the generated ssh_config that maps Alias to this server.
// It holds only a "Host Alias" block, so configs of several servers can be
// joined with Include.
func (s *Server) ConfigPath() string { return filepath.Join(s.Dir, "ssh_config") }

// SSHCommand is the ssh command line that reaches this server as Alias:
// what $BK_SSH or DialOptions.SSHCommand should hold.
func (s *Server) SSHCommand() []string { return []string{"ssh", "-F", s.ConfigPath()} }

// SharedSSHCommand is SSHCommand with the logins sharing one connection
// (ControlMaster), its socket in folder dir (a short path: sockets' paths
// are limited), for tests of what goes on in a session rather than of
// logins or connections: each login after the first then costs no key
// exchange. The connection ends with the server.
func (s *Server) SharedSSHCommand(dir string) []string {
	return append(s.SSHCommand(), "-o", "ControlMaster=auto", "-o", "ControlPath="+filepath.Join(dir, "%C"), "-o", "ControlPersist=60")
}

// Host is a hosts-file destination for folder dir (absolute) on this
// server. The test binary must hold the sftp kind of host (package kinds).
func (s *Server) Host(dir string) hostsfile.Host {
	h, _, err := hostsfile.ParseLine(s.HostsLine(dir), "")
	if err != nil {
		panic(err)
	}
	return h
}

// HostsLine is Host written as a hosts-file line.
func (s *Server) HostsLine(dir string) string { return "sftp://" + s.Alias + dir }

// Log is what sshd has logged so far, for failing tests to show.
func (s *Server) Log() string {
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Stop ends the server and every connection to it, and removes the
// append-only account's chroot.
func (s *Server) Stop() error {
	if s.gsrv != nil {
		return s.gsrv.stop()
	}
	if s.cmd == nil {
		return nil
	}
	if s.AppendOnly != nil {
		defer os.RemoveAll(s.AppendOnly.Top)
	}
	// Each connection is served by a child in a session of its own; find
	// them before their parent goes and they are handed to init.
	pids := append(descendants(s.cmd.Process.Pid), s.cmd.Process.Pid)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-s.done
	s.cmd = nil
	return nil
}

// WaitConnections waits up to timeout for sshd to have waited for the
// processes that served its connections, which end when their clients go:
// their CPU time then counts in sshd's (its children's, in /proc). The
// in-process server has none.
func (s *Server) WaitConnections(timeout time.Duration) {
	if s.cmd == nil {
		return
	}
	for end := time.Now().Add(timeout); len(children(s.cmd.Process.Pid)) > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
}

// descendants lists the processes below pid (empty where there is none):
// from the lists of children /proc keeps of each thread, which read only
// the processes below pid; where the kernel keeps none (no
// CONFIG_PROC_CHILDREN), from every process's parent in /proc, a read of
// every process on the machine.
func descendants(pid int) []int {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d/children", os.Getpid(), os.Getpid())); err != nil {
		return descendantsByParent(pid)
	}
	var out []int
	for next := children(pid); len(next) > 0; next = next[1:] {
		out = append(out, next[0])
		next = append(next, children(next[0])...)
	}
	return out
}

// children lists the processes that pid's threads started.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, f := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(f); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

func descendantsByParent(pid int) []int {
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// After "pid (comm) state ppid"; comm may hold spaces and ")".
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		parent[child], _ = strconv.Atoi(fields[1])
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for child, pp := range parent {
			if pp == p {
				out = append(out, child)
				walk(child)
			}
		}
	}
	walk(pid)
	return out
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects log lines from a goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() < 1<<20 {
		b.b.WriteString(s + "\n")
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
