// Command bk-restore: see man/bk-restore.1.
package main

import (
	"os"

	"bk/internal/cli"
	"bk/internal/command/restore"
)

func main() { os.Exit(restore.Main(os.Args, cli.OSStdio())) }
