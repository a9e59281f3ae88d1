package seal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// PassphraseEnv is the environment variable LoadPassphrase reads.
const PassphraseEnv = "BK_PASSPHRASE"

// ErrNoPassphrase is returned by LoadPassphrase when there is no file, no
// variable and no way to ask.
var ErrNoPassphrase = errors.New("a passphrase is needed and there is no way to ask for it")

// LoadPassphrase finds the passphrase, in this order: the first line of
// file (--passphrase-file; its line end stripped), $BK_PASSPHRASE, then ask
// (the terminal); errors from ask are returned as they are. An empty
// passphrase is an error wherever it comes from.
func LoadPassphrase(file string, getenv func(string) string, ask func() ([]byte, error)) ([]byte, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	if p := getenv(PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	if ask == nil {
		return nil, ErrNoPassphrase
	}
	p, err := ask()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

func readPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(f, 64<<10), 64<<10).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("passphrase file %s: first line is empty", path)
	}
	return line, nil
}
