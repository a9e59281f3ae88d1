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
	"sync"
	"time"

	psftp "github.com/pkg/sftp"

	"github.com/bk-backup/bk/internal/remote"
)

// conn is one ssh process and the SFTP client speaking over its pipes.
type conn struct {
	c    *psftp.Client
	cmd  *exec.Cmd
	dead chan struct{} // closed when ssh has exited

	mu   sync.Mutex
	last string // ssh's last stderr line
}

// sshArgs is the command line that runs the SFTP subsystem on h: the ssh
// command (or its override) with the port, user and host appended.
func sshArgs(h Location, command []string, batch bool) []string {
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
	if batch {
		// Without a terminal a password prompt would hang forever.
		args = append(args, "-o", "BatchMode=yes")
	}
	return append(args, h.Host, "-s", "sftp")
}

// haveTerminal reports whether ssh could ask the user something: it asks on
// the controlling terminal, which a cron job lacks.
func haveTerminal() bool {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	tty.Close()
	return true
}

// dial starts ssh and the SFTP session. ssh stays in our process group, so
// it can prompt on the terminal; a Ctrl-C then ends it with us, leaving at
// most a temp file that List hides and CleanTemp removes.
func (r *SFTP) dial(ctx context.Context) (*conn, error) {
	args := sshArgs(r.host, r.opts.SSHCommand, !haveTerminal())
	cmd := exec.Command(args[0], args[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("host %s: %w", r, err)
	}
	c := &conn{cmd: cmd, dead: make(chan struct{})}
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.last = line
			c.mu.Unlock()
			if r.opts.Stderr != nil {
				r.opts.Stderr(r.String(), line)
			}
		}
	}()
	go func() {
		<-stderrDone // Wait closes the pipe, so read it to the end first
		_ = cmd.Wait()
		close(c.dead)
	}()

	type result struct {
		c   *psftp.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		pc, err := psftp.NewClientPipe(stdout, stdin,
			psftp.UseConcurrentWrites(true),
			psftp.MaxConcurrentRequestsPerFile(64),
			psftp.UseConcurrentReads(true))
		done <- result{pc, err}
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
	if res.err != nil {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-c.dead
		return nil, fmt.Errorf("host %s: %s", r, c.failure(res.err))
	}
	c.c = res.c
	return c, nil
}

// failure explains why ssh gave up: its last stderr line says it best
// ("Host key verification failed.", "Connection refused").
func (c *conn) failure(err error) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != "" {
		return c.last
	}
	if c.cmd.ProcessState != nil && !c.cmd.ProcessState.Success() {
		return "ssh failed: " + c.cmd.ProcessState.String()
	}
	return err.Error()
}

// close ends the session and ssh, killing it if it lingers.
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
	switch {
	case err == nil:
		return false
	case errors.Is(err, psftp.ErrSSHFxConnectionLost):
		return true
	case errors.As(err, &status):
		return status.Code == uint32(psftp.ErrSSHFxConnectionLost)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrExist),
		errors.Is(err, io.EOF), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errSize), errors.Is(err, remote.ErrUnknownSpace):
		return false
	}
	select {
	case <-c.dead:
		return true
	case <-time.After(time.Second):
		return false
	}
}
