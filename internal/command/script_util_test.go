package command_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

type errUnknownCond string

func (e errUnknownCond) Error() string { return "unknown condition " + string(e) }

func init() {
	scriptConds["root"] = func() (bool, error) { return os.Geteuid() == 0, nil }
	// mkrand FILE SIZE [SEED]: SIZE pseudo-random bytes, the same for a seed.
	scriptCmds["mkrand"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 2 || len(args) > 3 {
			ts.Fatalf("usage: mkrand FILE SIZE [SEED]")
		}
		size := atoi(ts, args[1])
		seed := uint64(1)
		if len(args) == 3 {
			seed = uint64(atoi(ts, args[2]))
		}
		rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
		buf := make([]byte, size)
		_, _ = rng.Read(buf)
		ts.Check(os.WriteFile(ts.MkAbs(args[0]), buf, 0o644))
	}
	// flipbyte FILE OFFSET: invert every bit of one byte (negative OFFSET
	// counts from the end).
	scriptCmds["flipbyte"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: flipbyte FILE OFFSET")
		}
		path := ts.MkAbs(args[0])
		data, err := os.ReadFile(path)
		ts.Check(err)
		off := atoi(ts, args[1])
		if off < 0 {
			off += len(data)
		}
		if off < 0 || off >= len(data) {
			ts.Fatalf("offset %s outside %s (%d bytes)", args[1], args[0], len(data))
		}
		data[off] ^= 0xff
		ts.Check(os.WriteFile(path, data, 0o644))
	}
	// splice FILE OFFSET DELETE INSERT SEED: replace DELETE bytes at OFFSET
	// by INSERT pseudo-random bytes (an overwrite, an insertion, a cut).
	scriptCmds["splice"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 5 {
			ts.Fatalf("usage: splice FILE OFFSET DELETE INSERT SEED")
		}
		path := ts.MkAbs(args[0])
		b, err := os.ReadFile(path)
		ts.Check(err)
		off, del, ins, seed := atoi(ts, args[1]), atoi(ts, args[2]), atoi(ts, args[3]), atoi(ts, args[4])
		if off+del > len(b) {
			ts.Fatalf("splice: %s has %d bytes", args[0], len(b))
		}
		rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 's'})
		mid := make([]byte, ins)
		_, _ = rng.Read(mid)
		out := append(append(append([]byte{}, b[:off]...), mid...), b[off+del:]...)
		ts.Check(os.WriteFile(path, out, 0o644))
	}
	// truncfile FILE SIZE: cut FILE to SIZE bytes (negative: drop that many).
	scriptCmds["truncfile"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: truncfile FILE SIZE")
		}
		path := ts.MkAbs(args[0])
		st, err := os.Stat(path)
		ts.Check(err)
		size := int64(atoi(ts, args[1]))
		if size < 0 {
			size += st.Size()
		}
		ts.Check(os.Truncate(path, size))
	}
}

func atoi(ts *testscript.TestScript, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		ts.Fatalf("%v", fmt.Errorf("not a number: %q", s))
	}
	return n
}
