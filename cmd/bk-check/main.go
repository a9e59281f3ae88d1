// Command bk-check: see man/bk-check.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/check"
)

func main() { os.Exit(check.Main(os.Args, cli.OSStdio())) }
