// Command bk-join: see man/bk-join.1.
package main

import (
	"os"

	"bk/internal/cli"
	"bk/internal/command/join"
)

func main() { os.Exit(join.Main(os.Args, cli.OSStdio())) }
