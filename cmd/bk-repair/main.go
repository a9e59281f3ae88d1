// Command bk-repair: see man/bk-repair.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/repair"
)

func main() { os.Exit(repair.Main(os.Args, cli.OSStdio())) }
