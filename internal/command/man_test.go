package command_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command"
)

// The man pages are generated from the tools' definitions; this keeps the
// committed pages from drifting from the help text.
func TestManPagesUpToDate(t *testing.T) {
	for _, c := range command.All() {
		tool := c.Tool()
		path := filepath.Join("..", "..", "man", tool.Name+".1")
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != cli.ManPage(tool, cli.ManDate) {
			t.Errorf("%s is stale: run 'make man'", path)
		}
	}
}
