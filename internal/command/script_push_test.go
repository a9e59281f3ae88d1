package command_test

import (
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	// nfiles DIR N [GLOB]: DIR holds exactly N entries matching GLOB
	// (default *), hidden ones (temp files) included.
	scriptCmds["nfiles"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 2 || len(args) > 3 {
			ts.Fatalf("usage: nfiles DIR N [GLOB]")
		}
		glob := "*"
		if len(args) == 3 {
			glob = args[2]
		}
		entries, err := os.ReadDir(ts.MkAbs(args[0]))
		ts.Check(err)
		var names []string
		for _, e := range entries {
			if ok, _ := filepath.Match(glob, e.Name()); ok {
				names = append(names, e.Name())
			}
		}
		if len(names) != atoi(ts, args[1]) {
			ts.Fatalf("%s holds %d entries matching %s, want %s: %v", args[0], len(names), glob, args[1], names)
		}
	}
}
