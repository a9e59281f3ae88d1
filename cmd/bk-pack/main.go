// Command bk-pack: see man/bk-pack.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/pack"
)

func main() { os.Exit(pack.Main(os.Args, cli.OSStdio())) }
