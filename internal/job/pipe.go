package job

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// StageResult is how one stage of a pipeline ended.
type StageResult struct {
	Name     string   `json:"name"`
	Args     []string `json:"args"`
	Exit     int      `json:"exit"`              // as the job counts it: 0, 1, 2, 3 or 130
	Status   string   `json:"status"`            // what the process said: "exit 4", "killed by signal 9"…
	Seconds  float64  `json:"seconds"`           // from start to exit
	BytesIn  int64    `json:"bytes_in"`          // -1: not read from a pipe (bk-pack reads files)
	BytesOut int64    `json:"bytes_out"`         // bk-push's: the manifest it printed
	Skipped  int      `json:"skipped,omitempty"` // entries bk-pack could not read
}

// Failed reports whether the stage's exit fails the job.
func (r StageResult) Failed() bool { return r.Exit != 0 && r.Exit != 3 }

// skippedLine is bk-pack's closing warning when it skipped entries.
var skippedLine = regexp.MustCompile(`(\d+) entr(?:y|ies) could not be read and skipped`)

// pipeline is a set of stages started and joined by pipes through this
// process, which counts the bytes passing between them.
type pipeline struct {
	stages  []Stage
	cmds    []*exec.Cmd
	results []StageResult
	started []time.Time
	done    []chan struct{}
	relays  sync.WaitGroup
	out     bytes.Buffer // the last stage's stdout
	goAhead *os.File     // write end of the last stage's go-ahead descriptor
	skipped atomic.Int64
	stderr  io.Writer
}

// goAheadFD is the descriptor bk-push reads the go-ahead from: the first
// after stdin, stdout and stderr.
const goAheadFD = 3

// start starts every stage. With goAhead, the last stage gets the read end
// of a pipe as descriptor 3 and "--go-ahead-fd 3" after its program name.
func start(stages []Stage, goAhead bool, stderr io.Writer) (*pipeline, error) {
	p := &pipeline{stages: stages, stderr: stderr, results: make([]StageResult, len(stages))}
	for i, s := range stages {
		p.results[i] = StageResult{Name: s.Name, Args: s.Args, BytesIn: -1}
	}
	var toClose []*os.File
	defer func() {
		for _, f := range toClose {
			f.Close()
		}
	}()
	var prevRead *os.File // our end of the previous stage's stdout
	for i, s := range stages {
		args := s.Args
		last := i == len(stages)-1
		if last && goAhead {
			args = withGoAhead(args)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = WorkDir
		cmd.Stderr = stderr
		if i == 0 {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			cmd.Stderr = w
			toClose = append(toClose, w)
			p.relays.Add(1)
			go p.scanPackMessages(r)
		}
		if prevRead != nil {
			inR, inW, err := os.Pipe()
			if err != nil {
				p.abort()
				return nil, err
			}
			cmd.Stdin = inR
			toClose = append(toClose, inR)
			p.relays.Add(1)
			go p.relay(inW, prevRead, i)
			prevRead = nil
		}
		if last {
			cmd.Stdout = &p.out
		} else {
			outR, outW, err := os.Pipe()
			if err != nil {
				p.abort()
				return nil, err
			}
			cmd.Stdout = outW
			toClose = append(toClose, outW)
			prevRead = outR
		}
		if last && goAhead {
			r, w, err := os.Pipe()
			if err != nil {
				p.abort()
				return nil, err
			}
			cmd.ExtraFiles = []*os.File{r}
			toClose = append(toClose, r)
			p.goAhead = w
		}
		p.results[i].Args = args
		if err := cmd.Start(); err != nil {
			if prevRead != nil {
				prevRead.Close()
			}
			p.abort()
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		p.cmds = append(p.cmds, cmd)
		p.started = append(p.started, time.Now())
		done := make(chan struct{})
		p.done = append(p.done, done)
		go func(i int) {
			err := cmd.Wait()
			p.results[i].Seconds = time.Since(p.started[i]).Seconds()
			p.results[i].Exit, p.results[i].Status = exitOf(err)
			close(done)
		}(i)
	}
	return p, nil
}

// withGoAhead puts --go-ahead-fd after bk-push, past any nice or ionice.
func withGoAhead(args []string) []string {
	for i, a := range args {
		if a == "bk-push" {
			out := append([]string{}, args[:i+1]...)
			out = append(out, "--go-ahead-fd", strconv.Itoa(goAheadFD))
			return append(out, args[i+1:]...)
		}
	}
	return args
}

// relay copies the stream from one stage to the next (stage i), counting
// it. When stage i stops reading, closing src gives the stage before it
// the broken pipe a shell pipeline would.
func (p *pipeline) relay(dst, src *os.File, i int) {
	defer p.relays.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				p.count(i, int64(n), false)
				return
			}
			p.count(i, int64(n), true)
		}
		if err != nil {
			return
		}
	}
}

var countMu sync.Mutex

func (p *pipeline) count(i int, n int64, delivered bool) {
	countMu.Lock()
	defer countMu.Unlock()
	p.results[i-1].BytesOut += n
	if delivered {
		if p.results[i].BytesIn < 0 {
			p.results[i].BytesIn = 0
		}
		p.results[i].BytesIn += n
	}
}

// scanPackMessages passes bk-pack's stderr on and notes how many entries it
// skipped.
func (p *pipeline) scanPackMessages(r *os.File) {
	defer p.relays.Done()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := skippedLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			p.skipped.Store(n)
		}
		fmt.Fprintln(p.stderr, line)
	}
	_, _ = io.Copy(io.Discard, r)
}

// abort ends the stages started so far, after a failed start.
func (p *pipeline) abort() {
	for _, c := range p.cmds {
		_ = c.Process.Kill()
	}
	for _, d := range p.done {
		<-d
	}
	if p.goAhead != nil {
		p.goAhead.Close()
	}
}

// interrupt passes an interrupt on to every stage still running.
func (p *pipeline) interrupt() {
	for i, c := range p.cmds {
		select {
		case <-p.done[i]:
		default:
			_ = c.Process.Signal(os.Interrupt)
		}
	}
}

// wait waits for every stage. With a go-ahead, the last stage gets it once
// every other stage has exited 0 or 3 and ok() still holds; else its
// descriptor closes unread and it commits nothing.
func (p *pipeline) wait(ctx context.Context, ok func() bool) []StageResult {
	stop := context.AfterFunc(ctx, p.interrupt)
	defer stop()
	last := len(p.cmds) - 1
	for i := range last {
		<-p.done[i]
	}
	if p.goAhead != nil {
		good := ok() && ctx.Err() == nil
		for _, r := range p.results[:last] {
			good = good && !r.Failed()
		}
		if good {
			// An error means bk-push is gone already; its exit says why.
			_, _ = p.goAhead.Write([]byte("go\n"))
		}
		p.goAhead.Close()
	}
	<-p.done[last]
	p.relays.Wait()
	p.results[0].Skipped = int(p.skipped.Load())
	p.results[last].BytesOut = int64(p.out.Len())
	if ctx.Err() != nil {
		for i := range p.results {
			if p.results[i].Failed() {
				p.results[i].Exit = 130
			}
		}
	}
	return p.results
}

// exitOf turns a stage's end into the job's exit codes: 0, 3, and the
// failures 1, 2 and 130 as they are; any other code, or a signal other
// than SIGINT, fails as 1.
func exitOf(err error) (code int, status string) {
	if err == nil {
		return 0, "exit 0"
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 1, err.Error()
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if ws.Signal() == syscall.SIGINT {
			return 130, "interrupted"
		}
		return 1, "killed by signal " + ws.Signal().String()
	}
	code = ee.ExitCode()
	status = "exit " + strconv.Itoa(code)
	switch code {
	case 1, 2, 3, 130:
		return code, status
	}
	return 1, status
}

// Combine gives a pipeline's exit: the first failing stage's (1, 2 or
// 130), else 3 if any stage said 3, else 0.
func Combine(results []StageResult) int {
	code := 0
	for _, r := range results {
		if r.Failed() {
			return r.Exit
		}
		if r.Exit == 3 {
			code = 3
		}
	}
	return code
}
