// Command bk-keygen: see man/bk-keygen.1.
package main

import (
	"os"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/keygen"
)

func main() { os.Exit(keygen.Main(os.Args, cli.OSStdio())) }
