package sftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	psftp "github.com/pkg/sftp"

	"github.com/bk-backup/bk/internal/remote"
)

// conn is one ssh process and the SFTP client speaking over its pipes.
type conn struct {
	c      *psftp.Client
	s      *session // our own requests on the same session
	packet int      // the data a read or write request carries
	cmd    *exec.Cmd
	dead   chan struct{} // closed when ssh has exited

	timeout  time.Duration
	slack    atomic.Int64 // time a wait may take beyond timeout now: an fsync writing a file out
	waited   atomic.Int64 // what the watchdog allowed when it ended ssh
	alive    atomic.Int64 // UnixNano of the host's last answer, or of the start of a wait for one
	waiting  atomic.Int32 // operations (or the dial) waiting for the host
	timedOut atomic.Bool  // the watchdog ended ssh

	mu    sync.Mutex
	lines []string // ssh's stderr lines not reported yet
}

// keptLines bounds the ssh stderr lines a connection holds back: beyond
// it (ssh -v), the oldest are reported at once.
const keptLines = 64

// errTimeout means the host stopped answering: the watchdog ended ssh.
var errTimeout = errors.New("no answer")

// sshArgs is the command line that runs the SFTP subsystem on h: the ssh
// command (or its override), then the port, user and our options (ssh
// takes the first value it sees, so options in the override win), then the
// host.
func sshArgs(h Location, command []string, timeout time.Duration) []string {
	args := loginArgs(h, command)
	host := args[len(args)-1]
	secs := func(d time.Duration) string { return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))) }
	args = append(args[:len(args)-1],
		// Never a prompt: N hosts at once would ask on one terminal, under
		// the progress bar, and a cron job has no one to answer. An unknown
		// host key is refused, with a hint to check it once by hand.
		"-o", "BatchMode=yes",
		// Nothing of the client's goes to the host but the session, as
		// with OpenSSH's sftp: a hostile host could use a forwarded agent
		// to log in to the other hosts and remove their shares.
		"-o", "ForwardAgent=no",
		"-o", "ForwardX11=no",
		"-o", "ClearAllForwardings=yes",
		"-o", "PermitLocalCommand=no",
		"-o", "ConnectTimeout="+secs(timeout),
		// ssh ends a connection whose host stops answering after about
		// the timeout: three unanswered probes.
		"-o", "ServerAliveInterval="+secs(timeout/3),
		"-o", "ServerAliveCountMax=3")
	return append(args, host, "-s", "sftp")
}

// loginArgs is the ssh command that logs in to h, with its port and user.
func loginArgs(h Location, command []string) []string {
	if len(command) == 0 {
		command = []string{"ssh"}
	}
	args := append([]string{}, command...)
	if h.Port != 0 {
		args = append(args, "-p", strconv.Itoa(h.Port))
	}
	if h.User != "" {
		args = append(args, "-l", h.User)
	}
	return append(args, h.Host)
}

// LoginCommand is what a user runs to log in to h by hand with the ssh
// command of opts, e.g. to check and accept its host key once.
func LoginCommand(h Location, opts remote.DialOptions) string {
	return strings.Join(loginArgs(h, opts.SSHCommand), " ")
}

// Errors of a failed dial that the user can fix by hand, for hints.
var (
	ErrHostKey = errors.New("host key unknown or changed")
	ErrAuth    = errors.New("login refused")
)

// dialError explains why ssh gave up, from its last stderr line ("Host key
// verification failed.", "Connection refused").
type dialError struct {
	reason string
	kind   error // ErrHostKey, ErrAuth or nil
}

func (e *dialError) Error() string { return e.reason }
func (e *dialError) Unwrap() error { return e.kind }

// dial starts ssh and the SFTP session. ssh never prompts (BatchMode), so
// it needs no terminal; a Ctrl-C ends it with us, leaving at most a temp
// file that List hides and CleanTemp removes.
func (r *SFTP) dial(ctx context.Context) (*conn, error) {
	timeout := r.opts.Timeout
	if timeout <= 0 {
		timeout = remote.DefaultTimeout
	}
	args := sshArgs(r.host, r.opts.SSHCommand, timeout)
	cmd := exec.Command(args[0], args[1:]...)
	replies, toSSH, closeAfterStart, closeAfterWait, err := sshStdio(cmd)
	if err != nil {
		return nil, err
	}
	// Answers to writes are 28 bytes, read as a length and the rest.
	stdout := bufio.NewReaderSize(replies, 32<<10)
	stdin := newWholeRequests(toSSH)
	stderr, err := cmd.StderrPipe()
	if err == nil {
		err = cmd.Start()
	}
	closeAfterStart()
	if err != nil {
		closeAfterWait()
		return nil, fmt.Errorf("host %s: %w", r, err)
	}
	c := &conn{cmd: cmd, dead: make(chan struct{}), timeout: timeout}
	c.markAlive()
	c.s = newSession(stdin, c.markAlive)
	stdin.closing = func() { c.s.fail(fmt.Errorf("%w (the session ended)", psftp.ErrSSHFxConnectionLost)) }
	c.waiting.Add(1) // the dial waits for the host too
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.keep(r, sc.Text())
		}
	}()
	go func() {
		<-stderrDone // Wait closes the pipe, so read it to the end first
		_ = cmd.Wait()
		closeAfterWait()
		close(c.dead)
	}()
	go c.watch()

	type result struct {
		c      *psftp.Client
		packet int
		err    error
	}
	done := make(chan result, 1)
	var requests io.WriteCloser = stdin
	if r.opts.AppendOnly {
		requests = &createMode{w: stdin, perm: 0o444}
	}
	go func() {
		version, packet, err := hello(answers{stdout, c}, stdin)
		if err != nil {
			done <- result{err: err}
			return
		}
		rd, wr := replayHello(version, &sessionReader{r: stdout, s: c.s}, requests)
		pc, err := psftp.NewClientPipe(rd, wr,
			psftp.MaxPacketUnchecked(packet),
			psftp.UseConcurrentWrites(true),
			psftp.MaxConcurrentRequestsPerFile(64),
			psftp.UseConcurrentReads(true))
		done <- result{pc, packet, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		res = <-done
		if res.err == nil {
			res.c.Close()
		}
		<-c.dead
		return nil, ctx.Err()
	}
	c.waiting.Add(-1)
	if res.err != nil {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-c.dead
		return nil, fmt.Errorf("host %s: %w", r, c.dialFailure(res.err))
	}
	c.c, c.packet = res.c, res.packet
	c.report(r) // what ssh said on the way in: "Permanently added…"
	return c, nil
}

// answers counts every byte from the host as a sign of life.
type answers struct {
	r io.Reader
	c *conn
}

func (a answers) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.c.alive.Store(time.Now().UnixNano())
	}
	return n, err
}

// watch ends ssh when the host leaves a wait unanswered for the timeout.
// pkg/sftp's calls take no context, so ending the connection is what
// ends a stuck call.
func (c *conn) watch() {
	tick := time.NewTicker(max(c.timeout/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
			allowed := c.timeout + time.Duration(c.slack.Load())
			if c.waiting.Load() > 0 && time.Since(time.Unix(0, c.alive.Load())) > allowed {
				c.waited.Store(int64(allowed))
				c.timedOut.Store(true)
				_ = c.cmd.Process.Kill()
				return
			}
		}
	}
}

// run runs op, one request or a batch of them, under the watchdog.
func (c *conn) run(op func() error) error {
	c.markAlive()
	c.waiting.Add(1)
	err := op()
	c.waiting.Add(-1)
	if err != nil && c.timedOut.Load() {
		return c.timeoutError()
	}
	return err
}

func (c *conn) timeoutError() error {
	return fmt.Errorf("%w for %v", errTimeout, max(c.timeout, time.Duration(c.waited.Load())))
}

// keep holds ssh's stderr line back: it may turn out to be the reason a
// dial failed or a connection was lost, to be said once in that message.
func (c *conn) keep(r *SFTP, line string) {
	c.mu.Lock()
	c.lines = append(c.lines, line)
	var over string
	if len(c.lines) > keptLines {
		over = c.lines[0]
		c.lines = c.lines[1:]
	}
	c.mu.Unlock()
	if over != "" {
		r.warn("ssh: %s", over)
	}
}

// report passes the lines held back to the user as warnings: ssh said
// them, though nothing failed.
func (c *conn) report(r *SFTP) {
	c.mu.Lock()
	lines := c.lines
	c.lines = nil
	c.mu.Unlock()
	for _, l := range lines {
		r.warn("ssh: %s", l)
	}
}

// reason is why the connection failed: ssh's last line says it best,
// else err; the lines held back are spent on it.
func (c *conn) reason(err error) string {
	if c.timedOut.Load() {
		return c.timeoutError().Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines
	c.lines = nil
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	if c.cmd.ProcessState != nil && !c.cmd.ProcessState.Success() {
		return "ssh failed: " + c.cmd.ProcessState.String()
	}
	return err.Error()
}

// dialFailure is the error of a dial that failed with err; ssh has exited.
func (c *conn) dialFailure(err error) error {
	if c.timedOut.Load() {
		return c.timeoutError()
	}
	e := &dialError{reason: c.reason(err)}
	switch {
	case strings.Contains(e.reason, "Host key verification failed"):
		e.kind = ErrHostKey
	case strings.Contains(e.reason, "Permission denied"):
		e.kind = ErrAuth
	}
	return e
}

// close ends the session and ssh, killing it if it lingers. What ssh said
// stays held back for report or reason.
func (c *conn) close() {
	_ = c.c.Close()
	select {
	case <-c.dead:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.dead
	}
}

// lost reports whether err means the connection is gone rather than that
// the server refused the operation, so a new connection may succeed. An
// error of no known kind counts as lost if ssh exits soon after it.
func (c *conn) lost(err error) bool {
	var status *psftp.StatusError
	var refused *statusError
	switch {
	case err == nil:
		return false
	case c.timedOut.Load():
		return true
	case errors.Is(err, psftp.ErrSSHFxConnectionLost):
		return true
	case errors.As(err, &status):
		return status.Code == uint32(psftp.ErrSSHFxConnectionLost)
	case errors.As(err, &refused), errors.As(err, new(*sourceError)):
		return false
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrExist), errors.Is(err, errProtocol),
		errors.Is(err, io.EOF), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errSize), errors.Is(err, remote.ErrUnknownSpace), errors.Is(err, os.ErrClosed):
		return false
	}
	select {
	case <-c.dead:
		return true
	case <-time.After(time.Second):
		return false
	}
}
