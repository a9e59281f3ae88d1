// Command bk-push: see man/bk-push.1.
package main

import (
	"os"

	"bk/internal/cli"
	"bk/internal/command/push"
)

func main() { os.Exit(push.Main(os.Args, cli.OSStdio())) }
