// Command bk-backup: see man/bk-backup.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/backup"
)

func main() { os.Exit(backup.Main(os.Args, cli.OSStdio())) }
