package command_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/metacache"
)

// Testscript commands for what every tool shares: exit statuses in a
// pipeline.
func init() {
	scriptCmds["pipeline"] = pipeline
}

// pipeline [-int] [-in FILE] CMD ARGS... ['|' CMD ARGS...]...: runs the
// stages as a shell pipeline does, in a process group of their own, with
// the test as the stage before the first and after the last. Once data
// flows (the first stage has taken the first half of FILE, or else the last
// has written a byte) and every stage is stuck on a full pipe or an empty
// one, -int sends SIGINT to the group, as Ctrl-C does. Then the test's own
// stages quit: it closes both its ends. Prints "NAME STATUS" a stage, in
// order; the stages' stderr goes to stderr.
func pipeline(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: pipeline [-int] [-in FILE] CMD ARGS... ['|' CMD ARGS...]...")
	}
	interrupt, input := false, ""
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-int":
			interrupt, args = true, args[1:]
		case "-in":
			if len(args) < 2 {
				ts.Fatalf("-in needs a FILE")
			}
			input, args = args[1], args[2:]
		default:
			ts.Fatalf("unknown option %s", args[0])
		}
	}
	var stages [][]string
	for start := 0; start <= len(args); {
		end := start
		for end < len(args) && args[end] != "|" {
			end++
		}
		if end == start {
			ts.Fatalf("empty stage")
		}
		stages = append(stages, args[start:end])
		start = end + 1
	}

	env := os.Environ()
	for _, name := range []string{"PATH", "HOME", "TMPDIR", metacache.EnvDir} {
		env = append(env, name+"="+ts.Getenv(name))
	}
	cmds := make([]*exec.Cmd, len(stages))
	stderrs := make([]bytes.Buffer, len(stages))
	for i, st := range stages {
		path, err := exec.LookPath(st[0])
		if err != nil {
			// LookPath uses the process's PATH; the tools are on the script's.
			path = findTool(ts, st[0])
		}
		c := exec.Command(path, st[1:]...)
		c.Args[0] = st[0]
		c.Dir, c.Env, c.Stderr = ts.MkAbs("."), env, &stderrs[i]
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmds[i] = c
	}
	var closers []io.Closer
	for i := 1; i < len(cmds); i++ {
		r, w, err := os.Pipe()
		ts.Check(err)
		cmds[i-1].Stdout, cmds[i].Stdin = w, r
		closers = append(closers, r, w)
	}
	feed, feedW, err := os.Pipe()
	ts.Check(err)
	drain, drainW, err := os.Pipe()
	ts.Check(err)
	cmds[0].Stdin, cmds[len(cmds)-1].Stdout = feed, drainW

	for i, c := range cmds {
		if i > 0 {
			c.SysProcAttr.Pgid = cmds[0].Process.Pid
		}
		ts.Check(c.Start())
	}
	// Only the stages hold the pipes between them now.
	for _, c := range append(closers, feed, drainW) {
		c.Close()
	}

	flowing := make(chan struct{})
	var once sync.Once
	if input != "" {
		data := []byte(ts.ReadFile(input))
		go func() {
			feedW.Write(data[:len(data)/2])
			once.Do(func() { close(flowing) })
		}()
	} else {
		go func() {
			if _, err := drain.Read(make([]byte, 1)); err == nil {
				once.Do(func() { close(flowing) })
			}
		}()
	}
	select {
	case <-flowing:
	case <-time.After(time.Minute):
		ts.Fatalf("no data flowed through the pipeline in a minute")
	}
	// Let the stages fill the pipes and block.
	time.Sleep(300 * time.Millisecond)
	if interrupt {
		ts.Check(syscall.Kill(-cmds[0].Process.Pid, syscall.SIGINT))
		// Ctrl-C reaches the stages before the test's own stages die of it.
		time.Sleep(500 * time.Millisecond)
	}
	feedW.Close()
	drain.Close()

	for i, c := range cmds {
		err := waitFor(c, time.Minute)
		fmt.Fprintf(ts.Stdout(), "%s %s\n", stages[i][0], status(err))
		ts.Stderr().Write(stderrs[i].Bytes())
	}
}

func findTool(ts *testscript.TestScript, name string) string {
	for _, dir := range strings.Split(ts.Getenv("PATH"), string(os.PathListSeparator)) {
		if st, err := os.Stat(dir + "/" + name); err == nil && !st.IsDir() {
			return dir + "/" + name
		}
	}
	ts.Fatalf("%s not found", name)
	return ""
}

// waitFor waits for c, killing it after d.
func waitFor(c *exec.Cmd, d time.Duration) error {
	t := time.AfterFunc(d, func() { c.Process.Kill() })
	defer t.Stop()
	return c.Wait()
}

// status says how a process ended: its exit code, or the signal that
// killed it.
func status(err error) string {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		if err != nil {
			return err.Error()
		}
		return "0"
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprint(exit.ExitCode())
}
