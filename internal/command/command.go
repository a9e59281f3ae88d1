// Package command lists bk's tools, so the man page generator and the tests
// cover every one of them without keeping lists of their own.
package command

import (
	"bk/internal/cli"
	"bk/internal/command/join"
	"bk/internal/command/keygen"
	"bk/internal/command/pack"
	"bk/internal/command/push"
	"bk/internal/command/restore"
	"bk/internal/command/split"
)

// Command is one tool: its definition and its entry point.
type Command struct {
	Tool func() cli.Tool
	Main func(args []string, stdio cli.Stdio) int
}

// All returns every bk tool, in the order of the pipeline.
func All() []Command {
	return []Command{
		{pack.Tool, pack.Main},
		{split.Tool, split.Main},
		{push.Tool, push.Main},
		{join.Tool, join.Main},
		{restore.Tool, restore.Main},
		{keygen.Tool, keygen.Main},
	}
}
