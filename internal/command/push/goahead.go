package push

import (
	"bufio"
	"errors"
	"fmt"
	"os"

	"github.com/bk-backup/bk/internal/manifest"
)

// ErrNoGoAhead means the process that started bk-push with --go-ahead-fd
// did not let it commit: another stage of the pipeline failed.
var ErrNoGoAhead = errors.New("no go-ahead on --go-ahead-fd (another stage of the job failed): nothing was stored")

// openGoAhead opens the inherited descriptor fd for reading.
func openGoAhead(fd int) (*os.File, error) {
	f := os.NewFile(uintptr(fd), fmt.Sprintf("fd %d", fd))
	if f == nil {
		return nil, errors.New("not an open descriptor")
	}
	if _, err := f.Stat(); err != nil {
		return nil, errors.New("not an open descriptor")
	}
	return f, nil
}

// waitGoAhead blocks until the first line of f arrives; only "go" lets
// the backup be committed.
func waitGoAhead(f *os.File) error {
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil || line != "go\n" {
		return ErrNoGoAhead
	}
	return nil
}

// chain runs each step in turn, stopping at the first error.
func chain(steps []func(*manifest.Manifest) error) func(*manifest.Manifest) error {
	if len(steps) == 0 {
		return nil
	}
	return func(m *manifest.Manifest) error {
		for _, step := range steps {
			if err := step(m); err != nil {
				return err
			}
		}
		return nil
	}
}
