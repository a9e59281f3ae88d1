package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// IsTerminal reports whether w is a terminal.
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// isPipe reports whether w is a pipe or a socket: the next stage of a
// pipeline.
func isPipe(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}

// RefuseTerminal returns a usage error when w, about to receive binary
// data, is a terminal: nobody wants ciphertext in their scrollback. option
// is how the tool writes to a file instead, e.g. "-o FILE".
func RefuseTerminal(w io.Writer, what, option string) error {
	if IsTerminal(w) {
		return WithHint(Usagef("refusing to write %s to a terminal", what),
			"redirect stdout to a file or a pipe, or use "+option)
	}
	return nil
}

// RefuseTerminalInput returns a usage error when r, where data should come
// from, is a terminal: typing is not what the tool expects, and it would
// wait for it silently. hint says where the data should come from.
func RefuseTerminalInput(r io.Reader, what, hint string) error {
	if IsTerminal(r) {
		return WithHint(Usagef("refusing to read %s from a terminal", what), hint)
	}
	return nil
}

// ErrNoTerminal means a secret was needed but there is no terminal to ask on.
var ErrNoTerminal = errors.New("no terminal to read a passphrase from")

// ReadSecret asks for a secret on the controlling terminal, not stdin, which
// carries data. With confirm it asks twice and compares.
func ReadSecret(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, ErrNoTerminal
	}
	defer tty.Close()
	ask := func(p string) ([]byte, error) {
		fmt.Fprint(tty, p)
		defer fmt.Fprintln(tty)
		return term.ReadPassword(int(tty.Fd()))
	}
	first, err := ask(prompt)
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := ask("Confirm passphrase: ")
		if err != nil {
			return nil, err
		}
		if string(again) != string(first) {
			return nil, errors.New("passphrases didn't match")
		}
	}
	return first, nil
}
