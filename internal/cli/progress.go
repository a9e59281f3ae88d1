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
	every := progressLogging
	first := progressLogging
	if IsTerminal(e.Stderr) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(e.Stderr),
			progressbar.OptionSetDescription(e.Msg.Tool+": "+description),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetRenderBlankState(false),
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
	start, last, lastCount := time.Now(), time.Now(), int64(0)
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			n := p.count.Load()
			if p.bar != nil {
				_ = p.bar.Set64(n)
				p.shown = true
			} else {
				p.logLine(n, now.Sub(start), float64(n-lastCount)/now.Sub(last).Seconds())
			}
			last, lastCount = now, n
			t.Reset(every)
		}
	}
}

// logLine says how far the tool is, for a log: "bk-split: splitting: 1.5G
// of 4G (37%) in 2m5s, 12.5M/s", the rate since the last line.
func (p *Progress) logLine(n int64, elapsed time.Duration, rate float64) {
	done := units.Bytes(n).String()
	if p.total > 0 {
		done += fmt.Sprintf(" of %s (%d%%)", units.Bytes(p.total), n*100/p.total)
	}
	p.msg.Notef("%s: %s in %s, %s/s", p.description, done, units.FormatDuration(elapsed.Truncate(time.Second)), units.Bytes(int64(rate)))
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
