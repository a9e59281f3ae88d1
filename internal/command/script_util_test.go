package command_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/blake3"
)

type errUnknownCond string

func (e errUnknownCond) Error() string { return "unknown condition " + string(e) }

func init() {
	scriptConds["root"] = func() (bool, error) { return os.Geteuid() == 0, nil }
	// mkrand [-text] FILE SIZE [SEED]: SIZE pseudo-random bytes, the same
	// for a seed; with -text, of 16 letters, so that zstd halves them (a
	// large file cheap to compress that still has content-defined chunks).
	// Written as generated, so a large file costs no memory.
	scriptCmds["mkrand"] = func(ts *testscript.TestScript, neg bool, args []string) {
		text := len(args) > 0 && args[0] == "-text"
		if text {
			args = args[1:]
		}
		if neg || len(args) < 2 || len(args) > 3 {
			ts.Fatalf("usage: mkrand [-text] FILE SIZE [SEED]")
		}
		size := atoi(ts, args[1])
		seed := uint64(1)
		if len(args) == 3 {
			seed = uint64(atoi(ts, args[2]))
		}
		var r io.Reader = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
		if text {
			r = letters{r}
		}
		f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		ts.Check(err)
		_, err = io.CopyBuffer(f, io.LimitReader(r, int64(size)), make([]byte, 1<<20))
		ts.Check(err)
		ts.Check(f.Close())
	}
	// b3 FILE: the file's BLAKE3-256 in hex, on stdout (to compare a large
	// file with a hash kept of it, not a copy).
	scriptCmds["b3"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: b3 FILE")
		}
		f, err := os.Open(ts.MkAbs(args[0]))
		ts.Check(err)
		defer f.Close()
		h := blake3.New()
		_, err = io.CopyBuffer(h, f, make([]byte, 1<<20))
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "%x\n", h.Sum(nil))
	}
	// nextsecond: waits for the clock's next whole second and 50 ms more
	// (file times come from a coarser clock, a few ms behind). Backup IDs
	// and the state's rule for files changed during a walk have whole
	// seconds: what follows falls in a later second than anything before,
	// after half of a "sleep 1.1" on average.
	scriptCmds["nextsecond"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 0 {
			ts.Fatalf("usage: nextsecond")
		}
		now := time.Now()
		time.Sleep(now.Truncate(time.Second).Add(time.Second + 50*time.Millisecond).Sub(now))
	}
	// large: BK_TEST_LARGE=1 asks for the tests at full size, which make
	// test runs as a step of their own.
	scriptConds["large"] = func() (bool, error) { return os.Getenv("BK_TEST_LARGE") == "1", nil }
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
	// by INSERT pseudo-random bytes (an overwrite, an insertion, a cut), in
	// place (the same inode, as an application's write), a MiB at a time.
	scriptCmds["splice"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 5 {
			ts.Fatalf("usage: splice FILE OFFSET DELETE INSERT SEED")
		}
		f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_RDWR, 0)
		ts.Check(err)
		defer f.Close()
		st, err := f.Stat()
		ts.Check(err)
		off, del, ins, seed := int64(atoi(ts, args[1])), int64(atoi(ts, args[2])), int64(atoi(ts, args[3])), atoi(ts, args[4])
		size := st.Size()
		if off+del > size {
			ts.Fatalf("splice: %s has %d bytes", args[0], size)
		}
		// Move the tail to its new place: from its end when it moves right,
		// from its start when it moves left.
		shift, tail, buf := ins-del, off+del, make([]byte, 1<<20)
		move := func(start, end int64) {
			b := buf[:end-start]
			_, err := f.ReadAt(b, start)
			ts.Check(err)
			_, err = f.WriteAt(b, start+shift)
			ts.Check(err)
		}
		switch {
		case shift > 0:
			for end := size; end > tail; end = max(tail, end-int64(len(buf))) {
				move(max(tail, end-int64(len(buf))), end)
			}
		case shift < 0:
			for start := tail; start < size; start = min(size, start+int64(len(buf))) {
				move(start, min(size, start+int64(len(buf))))
			}
			ts.Check(f.Truncate(size + shift))
		}
		rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 's'})
		_, err = io.CopyBuffer(io.NewOffsetWriter(f, off), io.LimitReader(rng, ins), buf)
		ts.Check(err)
		ts.Check(f.Close())
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

// letters maps the bytes of r to 16 letters.
type letters struct{ r io.Reader }

func (l letters) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		p[i] = 'a' + c&15
	}
	return n, err
}

func atoi(ts *testscript.TestScript, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		ts.Fatalf("%v", fmt.Errorf("not a number: %q", s))
	}
	return n
}
