// Command bk-keygen: see man/bk-keygen.1.
package main

import (
	"os"

	"bk/internal/cli"
	"bk/internal/command/keygen"
)

func main() { os.Exit(keygen.Main(os.Args, cli.OSStdio())) }
