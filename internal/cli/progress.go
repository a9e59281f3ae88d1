package cli

import (
	"io"

	"github.com/schollz/progressbar/v3"
)

// Progress counts bytes on stderr; a nil *Progress does nothing, so callers
// need no checks.
type Progress struct{ bar *progressbar.ProgressBar }

// NewProgress returns a byte counter with a bar when the env wants progress
// (total -1 when unknown), else nil.
func (e *Env) NewProgress(total int64, description string) *Progress {
	if !e.ShowProgress {
		return nil
	}
	return &Progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(e.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(200e6),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)}
}

// Add counts n more bytes.
func (p *Progress) Add(n int) {
	if p != nil {
		_ = p.bar.Add(n)
	}
}

// Done clears the bar.
func (p *Progress) Done() {
	if p != nil {
		_ = p.bar.Finish()
	}
}

// Writer counts what passes through w.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return io.MultiWriter(w, p.bar)
}

// Reader counts what is read through r.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return io.TeeReader(r, p.bar)
}
