package command_test

import (
	"bytes"
	"encoding/binary"
	"os"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/zeebo/blake3"

	"github.com/bk-backup/bk/internal/shard"
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
		f.data[f.h.Offset(int64(atoi(ts, args[1])))+7] ^= 0xff
		f.save(ts)
	}
	// forgeshare FILE STRIPE: alter the block of STRIPE and recompute the
	// share's own checksum of it and its trailer, the way a dishonest host
	// would, so that the share agrees with itself.
	scriptCmds["forgeshare"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: forgeshare FILE STRIPE")
		}
		f := loadShare(ts, args[0])
		f.forge(int64(atoi(ts, args[1])))
		f.save(ts)
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

type scriptShare struct {
	path string
	h    shard.Header
	data []byte
}

func loadShare(ts *testscript.TestScript, name string) *scriptShare {
	path := ts.MkAbs(name)
	data, err := os.ReadFile(path)
	ts.Check(err)
	h, err := shard.ReadHeader(bytes.NewReader(data))
	ts.Check(err)
	return &scriptShare{path: path, h: h, data: data}
}

func (f *scriptShare) save(ts *testscript.TestScript) { ts.Check(os.WriteFile(f.path, f.data, 0o644)) }

// forge follows section 3 of docs/FORMAT.md: the share's checksum of its own
// block, then the trailer's stream hash and checksum.
func (f *scriptShare) forge(s int64) {
	bs := int64(f.h.BlockSize)
	off := f.h.Offset(s)
	f.data[off] ^= 0xff
	sum := shard.BlockHash(f.h.SetID, s, f.h.Index, f.data[off:off+bs])
	copy(f.data[off+bs+int64(f.h.Index*shard.HashSize):], sum[:])
	tr := f.data[len(f.data)-shard.TrailerSize:]
	stream := blake3.New()
	for st := range int64(binary.BigEndian.Uint64(tr[24:])) {
		rec := f.h.Offset(st) + bs
		stream.Write(f.data[rec : rec+int64(f.h.K*shard.HashSize)])
	}
	stream.Write(tr[32:40])
	copy(tr[40:72], stream.Sum(nil))
	check := blake3.Sum256(tr[:72])
	copy(tr[72:], check[:])
}
