package command_test

import (
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/archive/archivetest"
)

func init() {
	// cmptree [-noxattrs] [-noroot] DIR1 DIR2: the two trees are the same:
	// names, types, contents, mode bits, mtimes (ns where both have them,
	// directories and symlinks too), symlink targets, hard-link groups and
	// extended attributes. -noroot skips the mode and mtime of DIR1 and DIR2
	// themselves. With !, the trees must differ.
	scriptCmds["cmptree"] = func(ts *testscript.TestScript, neg bool, args []string) {
		var opt archivetest.Options
		for len(args) > 0 && strings.HasPrefix(args[0], "-") {
			switch args[0] {
			case "-noxattrs":
				opt.NoXattrs = true
			case "-noroot":
				opt.NoRoot = true
			default:
				ts.Fatalf("usage: cmptree [-noxattrs] [-noroot] DIR1 DIR2")
			}
			args = args[1:]
		}
		if len(args) != 2 {
			ts.Fatalf("usage: cmptree [-noxattrs] [-noroot] DIR1 DIR2")
		}
		diffs := archivetest.Compare(ts.MkAbs(args[0]), ts.MkAbs(args[1]), opt)
		switch {
		case neg && len(diffs) == 0:
			ts.Fatalf("%s and %s are the same", args[0], args[1])
		case !neg && len(diffs) > 0:
			for _, d := range diffs {
				ts.Logf("%s", d)
			}
			ts.Fatalf("%s and %s differ", args[0], args[1])
		}
	}
}
