// Command bk-split: see man/bk-split.1.
package main

import (
	"os"

	"bk/internal/cli"
	"bk/internal/command/split"
)

func main() { os.Exit(split.Main(os.Args, cli.OSStdio())) }
