// Command bk-join: see man/bk-join.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/join"
)

func main() { os.Exit(join.Main(os.Args, cli.OSStdio())) }
