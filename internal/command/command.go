// Package command lists bk's tools, so the man page generator and the tests
// cover every one of them without keeping lists of their own.
package command

import (
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/backup"
	"github.com/bk-backup/bk/internal/command/check"
	"github.com/bk-backup/bk/internal/command/find"
	"github.com/bk-backup/bk/internal/command/join"
	"github.com/bk-backup/bk/internal/command/keygen"
	"github.com/bk-backup/bk/internal/command/ls"
	"github.com/bk-backup/bk/internal/command/pack"
	"github.com/bk-backup/bk/internal/command/prune"
	"github.com/bk-backup/bk/internal/command/push"
	"github.com/bk-backup/bk/internal/command/repair"
	"github.com/bk-backup/bk/internal/command/restore"
	"github.com/bk-backup/bk/internal/command/split"
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
		{find.Tool, find.Main},
		{keygen.Tool, keygen.Main},
		{ls.Tool, ls.Main},
		{check.Tool, check.Main},
		{repair.Tool, repair.Main},
		{prune.Tool, prune.Main},
		{backup.Tool, backup.Main},
	}
}
