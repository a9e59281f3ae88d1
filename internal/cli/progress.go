package cli

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/bk-backup/bk/internal/units"
)

// Progress shows how far a tool has got on stderr: a bar on a terminal,
// and into a file (with --progress) a line every few seconds, never
// carriage-return frames. It shows nothing in the first second, so the
// rate it shows is measured, not the burst of the first buffer. A nil
// *Progress does nothing, so callers need no checks.
type Progress struct {
	count       atomic.Int64
	total       int64 // -1 when unknown
	description string
	msg         *Messages
	bar         *progressbar.ProgressBar // on a terminal
	shown       bool                     // the bar was drawn
	stop        chan struct{}
	stopped     sync.WaitGroup
}

// Intervals of progress: a terminal is redrawn often; a log file gets a
// line now and then. Variables, for tests.
var (
	progressDelay   = time.Second
	progressRedraw  = 200 * time.Millisecond
	progressLogging = 5 * time.Second
)

// NewProgress returns a byte counter that shows itself when the env wants
// progress, else nil. total is what the tool really knows it will count,
// -1 when it does not.
func (e *Env) NewProgress(total int64, description string) *Progress {
	if !e.ShowProgress {
		return nil
	}
	p := &Progress{total: total, description: description, msg: e.Msg, stop: make(chan struct{})}
	every, first := progressLogging, progressLogging
	if IsTerminal(e.Stderr) {
		// The bar shows our figures in its description: its own rate and
		// times count from its first frame, a second into the run.
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(e.Stderr),
			progressbar.OptionSetRenderBlankState(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSpinnerType(14),
		)
		every, first = progressRedraw, progressDelay
	}
	p.stopped.Add(1)
	go p.show(first, every)
	return p
}

func (p *Progress) show(first, every time.Duration) {
	defer p.stopped.Done()
	start := time.Now()
	windowStart, windowCount, rate := start, int64(0), 0.0
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			n := p.count.Load()
			// The rate over the last second or more, not since the last frame.
			if d := now.Sub(windowStart); d >= time.Second {
				rate = float64(n-windowCount) / d.Seconds()
				windowStart, windowCount = now, n
			}
			line := p.line(n, now.Sub(start), rate)
			if p.bar != nil {
				// The bar is cleared by Done, not finished: a finished bar
				// stays on the screen.
				if p.total > 0 {
					n = min(n, p.total-1)
				}
				_ = p.bar.Set64(n)
				p.bar.Describe(p.msg.Tool + ": " + line)
				p.shown = true
			} else {
				p.msg.Notef("%s", line)
			}
			t.Reset(every)
		}
	}
}

// line says how far the tool is: "splitting: 1.5G of 4G (37%) in 2m5s,
// 12.5M/s".
func (p *Progress) line(n int64, elapsed time.Duration, rate float64) string {
	done := units.Bytes(n).String()
	if p.total > 0 {
		done += fmt.Sprintf(" of %s (%d%%)", units.Bytes(p.total), n*100/p.total)
	}
	return fmt.Sprintf("%s: %s in %s, %s/s", p.description, done, units.FormatDuration(elapsed.Truncate(time.Second)), units.Bytes(int64(rate)))
}

// Add counts n more bytes.
func (p *Progress) Add(n int) {
	if p != nil {
		p.count.Add(int64(n))
	}
}

// Done stops the display and clears the bar. It is safe to call twice.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	select {
	case <-p.stop:
		return
	default:
		close(p.stop)
	}
	p.stopped.Wait()
	if p.shown {
		_ = p.bar.Clear()
	}
}

// Writer counts what passes through w.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return io.MultiWriter(w, counter{p})
}

// Reader counts what is read through r.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return io.TeeReader(r, counter{p})
}

// counter counts what is written to it.
type counter struct{ p *Progress }

func (c counter) Write(b []byte) (int, error) {
	c.p.Add(len(b))
	return len(b), nil
}
