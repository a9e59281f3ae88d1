package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Messages writes the tool's lines to stderr: "bk-x: error: …",
// "bk-x: warning: …", "bk-x: hint: …" and plain notes, which -q silences.
// It is safe for concurrent use, so parallel workers can warn.
type Messages struct {
	Tool  string
	W     io.Writer
	Quiet bool

	mu       sync.Mutex
	warnings int
}

func (m *Messages) line(kind, format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	m.mu.Lock()
	defer m.mu.Unlock()
	if kind == "" {
		fmt.Fprintf(m.W, "%s: %s\n", m.Tool, msg)
		return
	}
	fmt.Fprintf(m.W, "%s: %s: %s\n", m.Tool, kind, msg)
}

// Errorf prints an error line.
func (m *Messages) Errorf(format string, args ...any) { m.line("error", format, args...) }

// Warnf prints a warning line. Warnings are shown even with -q: they say
// something went wrong. An error among args that carries a hint (WithHint)
// has its hint printed on the next line.
func (m *Messages) Warnf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.warnings++
	fmt.Fprintf(m.W, "%s: warning: %s\n", m.Tool, msg)
	for _, a := range args {
		var hinted *HintError
		if err, ok := a.(error); ok && errors.As(err, &hinted) {
			fmt.Fprintf(m.W, "%s: hint: %s\n", m.Tool, hinted.Hint)
		}
	}
}

// Hintf prints a hint line.
func (m *Messages) Hintf(format string, args ...any) { m.line("hint", format, args...) }

// Notef prints an informational line unless quiet.
func (m *Messages) Notef(format string, args ...any) {
	if !m.Quiet {
		m.line("", format, args...)
	}
}

// Warnings counts the warnings printed so far.
func (m *Messages) Warnings() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.warnings
}

// Report prints err the way the tool's exit code reads it: a degraded
// finish is a warning, anything else an error, followed by a hint.
func (m *Messages) Report(err error) {
	if err == nil || errors.Is(err, errInterrupted) {
		if err != nil {
			m.Errorf("interrupted")
		}
		return
	}
	var degraded *DegradedError
	if errors.As(err, &degraded) {
		m.Warnf("%s", degraded.Msg)
	} else {
		m.Errorf("%s", err)
	}
	// One hint: the error's own, else, for a usage error, the help.
	var hinted *HintError
	var usage *UsageError
	switch {
	case errors.As(err, &hinted):
		m.Hintf("%s", hinted.Hint)
	case errors.As(err, &usage):
		m.Hintf("see '%s --help'", m.Tool)
	}
}
