package command_test

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command"
)

// scriptCmds and scriptConds hold the custom testscript commands and
// conditions; files named script_*_test.go add to them in init.
var (
	scriptCmds  = map[string]func(ts *testscript.TestScript, neg bool, args []string){}
	scriptConds = map[string]func() (bool, error){}
)

func tool(main func([]string, cli.Stdio) int) func() {
	return func() { os.Exit(main(os.Args, cli.OSStdio())) }
}

func TestMain(m *testing.M) {
	tools := map[string]func(){}
	for _, c := range command.All() {
		tools[c.Tool().Name] = tool(c.Main)
	}
	testscript.Main(m, tools)
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		Cmds:                scriptCmds,
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			if f, ok := scriptConds[cond]; ok {
				return f()
			}
			return false, errUnknownCond(cond)
		},
	})
}
