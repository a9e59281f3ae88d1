// Command bk-split: see man/bk-split.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/split"
)

func main() { os.Exit(split.Main(os.Args, cli.OSStdio())) }
