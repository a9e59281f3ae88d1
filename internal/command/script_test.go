package command_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command"
	"github.com/bk-backup/bk/internal/metacache"
	"github.com/bk-backup/bk/internal/seal"
	"github.com/bk-backup/bk/internal/sshtest"
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
	if _, isTool := tools[filepath.Base(os.Args[0])]; !isTool {
		sshtest.MoreParallel(scriptsParallel)
	}
	seal.WeakenPassphrasesForTests(10)
	testscript.Main(m, tools)
}

// noCache turns the tools' cache off (the default one would be under
// $HOME, which root can make even as /no-home): a script that tests it
// sets $BK_CACHE_DIR to a folder of its own.
func noCache(e *testscript.Env) error {
	e.Setenv(metacache.EnvDir, metacache.Off)
	return nil
}

// scriptsParallel is how many scripts run at once unless -test.parallel
// says otherwise. The scripts spend most of their time waiting on pipes,
// ssh logins and child processes rather than computing, so more than
// GOMAXPROCS of them at once keep two cores busy.
const scriptsParallel = 6

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		Cmds:                scriptCmds,
		Setup:               noCache,
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			if f, ok := scriptConds[cond]; ok {
				return f()
			}
			return false, errUnknownCond(cond)
		},
	})
}
