// Command bk-pack: see man/bk-pack.1.
package main

import (
	"os"

	"bk/internal/cli"
	"bk/internal/command/pack"
)

func main() { os.Exit(pack.Main(os.Args, cli.OSStdio())) }
