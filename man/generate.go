//go:build ignore

// Generate writes man/bk-*.1 from each tool's definition: go run man/generate.go
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command"
)

func main() {
	for _, c := range command.All() {
		t := c.Tool()
		path := filepath.Join("man", t.Name+".1")
		if err := os.WriteFile(path, []byte(cli.ManPage(t, cli.ManDate)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
