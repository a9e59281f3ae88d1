package command_test

import (
	"bytes"
	"os"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/shard/sharetest"
)

// Testscript commands for the shares of bk-split and bk-join.
func init() {
	// flipblock FILE STRIPE: invert a byte in the block of STRIPE of the
	// share FILE, leaving its checksums as they are (bit rot).
	scriptCmds["flipblock"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: flipblock FILE STRIPE")
		}
		f := loadShare(ts, args[0])
		f.Flip(int64(atoi(ts, args[1])), 7)
		ts.Check(f.Save())
	}
	// forgeshare FILE STRIPE: alter the block of STRIPE and recompute the
	// share's own checksum of it and its trailer, the way a dishonest host
	// would, so that the share agrees with itself.
	scriptCmds["forgeshare"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: forgeshare FILE STRIPE")
		}
		f := loadShare(ts, args[0])
		f.Forge(int64(atoi(ts, args[1])))
		ts.Check(f.Save())
	}
	// isprefix FILE WHOLE UNIT: FILE is a prefix of WHOLE, a multiple of
	// UNIT bytes long (whole stripes).
	scriptCmds["isprefix"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: isprefix FILE WHOLE UNIT")
		}
		part, whole := readFile(ts, args[0]), readFile(ts, args[1])
		if !bytes.HasPrefix(whole, part) || len(part)%atoi(ts, args[2]) != 0 {
			ts.Fatalf("%s (%d bytes) is not a prefix of %s in whole units of %s", args[0], len(part), args[1], args[2])
		}
	}
}

func readFile(ts *testscript.TestScript, name string) []byte {
	if name == "stdout" {
		return []byte(ts.ReadFile("stdout"))
	}
	data, err := os.ReadFile(ts.MkAbs(name))
	ts.Check(err)
	return data
}

func loadShare(ts *testscript.TestScript, name string) *sharetest.Share {
	f, err := sharetest.Load(ts.MkAbs(name))
	ts.Check(err)
	return f
}
