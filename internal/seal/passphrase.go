package seal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bk-backup/bk/internal/cli"
)

// PassphraseEnv is the environment variable LoadPassphrase reads.
const PassphraseEnv = "BK_PASSPHRASE"

// LoadPassphrase finds the passphrase, in this order: the first line of
// file (--passphrase-file; its line end stripped), $BK_PASSPHRASE, then ask
// (the terminal). An empty passphrase is an error wherever it comes from.
func LoadPassphrase(file string, getenv func(string) string, ask func() ([]byte, error)) ([]byte, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	if p := getenv(PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	hint := "give --passphrase-file FILE or set " + PassphraseEnv
	if ask == nil {
		return nil, cli.WithHint(errors.New("a passphrase is needed and there is no way to ask for it"), hint)
	}
	p, err := ask()
	if errors.Is(err, cli.ErrNoTerminal) {
		return nil, cli.WithHint(err, hint)
	}
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
