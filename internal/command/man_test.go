package command_test

import (
	"os"
	"path/filepath"
	"strings"
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

// Every tool's EXIT STATUS is a table of the codes README promises: 0, 1,
// 2 and 130 at least.
func TestManPagesExitStatusTables(t *testing.T) {
	for _, c := range command.All() {
		tool := c.Tool()
		page := cli.ManPage(tool, cli.ManDate)
		_, exits, ok := strings.Cut(page, ".SH EXIT STATUS\n.TS\n")
		if !ok {
			t.Errorf("%s: EXIT STATUS is not a table", tool.Name)
			continue
		}
		if strings.Contains(page, `\fIVALUE\fR`) {
			t.Errorf("%s: a flag does not name its value (a word in backticks in its usage)", tool.Name)
		}
		exits, _, _ = strings.Cut(exits, ".TE\n")
		for _, code := range []string{"0", "1", "2", "130"} {
			if !strings.Contains(exits, "\n"+code+"|T{\n") {
				t.Errorf("%s: EXIT STATUS lacks %s:\n%s", tool.Name, code, exits)
			}
		}
	}
}
