// Command bk-find: see man/bk-find.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/find"
)

func main() { os.Exit(find.Main(os.Args, cli.OSStdio())) }
