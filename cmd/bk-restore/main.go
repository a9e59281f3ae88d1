// Command bk-restore: see man/bk-restore.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/restore"
)

func main() { os.Exit(restore.Main(os.Args, cli.OSStdio())) }
