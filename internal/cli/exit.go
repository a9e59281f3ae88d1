package cli

import (
	"errors"
	"fmt"
)

// Exit codes, the same in every tool.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitDegraded    = 3 // finished, but some files were skipped or fewer than n shares stored
	ExitInterrupted = 130
)

// UsageError marks a mistake in the command line, or in a file it names
// (a hosts file): exit 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// AsUsage marks err as a usage error; nil stays nil.
func AsUsage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// HintError carries a line that tells the user how to fix the error.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint attaches a hint line to err; nil stays nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

// DegradedError means the job finished but not completely: exit 3.
// Its message is printed as a warning, not an error.
type DegradedError struct{ Msg string }

func (e *DegradedError) Error() string { return e.Msg }

// Degradedf returns a DegradedError.
func Degradedf(format string, args ...any) error {
	return &DegradedError{Msg: fmt.Sprintf(format, args...)}
}

// ExitCode maps an error returned by a tool's action to its exit code.
func ExitCode(err error) int {
	var usage *UsageError
	var degraded *DegradedError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &degraded):
		return ExitDegraded
	}
	return ExitFailed
}
