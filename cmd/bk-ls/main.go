// Command bk-ls: see man/bk-ls.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/ls"
)

func main() { os.Exit(ls.Main(os.Args, cli.OSStdio())) }
