// Command bk-push: see man/bk-push.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/push"
)

func main() { os.Exit(push.Main(os.Args, cli.OSStdio())) }
