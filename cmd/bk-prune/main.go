// Command bk-prune: see man/bk-prune.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/prune"
)

func main() { os.Exit(prune.Main(os.Args, cli.OSStdio())) }
