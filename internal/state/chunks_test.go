package state

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/archive"
)

// The chunk lists of a run read back as kept, carry over to the next run,
// and are not used when damaged or another backup's.
func TestChunksFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	a := &archive.FileChunks{Size: 7, Hash: [32]byte{1}, Chunks: []archive.ChunkRef{{Len: 3, Hash: [32]byte{2}}, {Len: 4, Hash: [32]byte{3}}}}
	b := &archive.FileChunks{Size: 1, Hash: [32]byte{4}, Chunks: []archive.ChunkRef{{Len: 1, Hash: [32]byte{5}}}}
	c, err := createChunks(p("one"), "pack1")
	if err != nil {
		t.Fatal(err)
	}
	c.keep("dir/a", a)
	c.keep("b", b)
	if err := c.finish(); err != nil {
		t.Fatal(err)
	}

	// The next run carries a over, unchanged, and keeps a new b.
	c2, err := createChunks(p("two"), "pack2")
	if err != nil {
		t.Fatal(err)
	}
	c2.openOld(p("one"), "pack1")
	if c2.Missing != "" || !reflect.DeepEqual(c2.base("dir/a"), a) || !reflect.DeepEqual(c2.base("b"), b) || c2.base("c") != nil {
		t.Fatalf("read back: %q, %+v, %+v", c2.Missing, c2.base("dir/a"), c2.base("b"))
	}
	c2.carry("dir/a")
	c2.keep("b", a)
	if err := c2.finish(); err != nil {
		t.Fatal(err)
	}
	c3 := &chunkStore{}
	c3.openOld(p("two"), "pack2")
	if c3.Missing != "" || !reflect.DeepEqual(c3.base("dir/a"), a) || !reflect.DeepEqual(c3.base("b"), a) {
		t.Fatalf("carried: %q, %+v, %+v", c3.Missing, c3.base("dir/a"), c3.base("b"))
	}

	// DeltasMissing: silent when the lists are there, a note for a state
	// older than chunk lists, a warning when they are damaged.
	tr := &Tracker{old: &indexReader{}, chunks: c3}
	if why, warn := tr.DeltasMissing(); why != "" || warn {
		t.Errorf("lists there: %q, warn %v", why, warn)
	}
	tr.chunks = &chunkStore{}
	tr.chunks.openOld(p("none"), "pack2")
	if why, warn := tr.DeltasMissing(); !strings.Contains(why, "has no chunk lists (a state of an older bk)") || warn {
		t.Errorf("no lists: %q, warn %v", why, warn)
	}

	for _, tc := range []struct {
		name, pack, want string
		damage           func([]byte) []byte
	}{
		{"other backup", "pack9", "belong to another backup", nil},
		{"flipped byte", "pack2", "checksum mismatch", func(b []byte) []byte { b[len(b)-40] ^= 1; return b }},
		{"cut short", "pack2", "cut short", func(b []byte) []byte { return b[:len(b)-33] }},
		{"version", "pack2", "not a version 1", func(b []byte) []byte { return []byte(strings.Replace(string(b), " 1\n", " 2\n", 1)) }},
	} {
		data, _ := os.ReadFile(p("two"))
		if tc.damage != nil {
			data = tc.damage(data)
		}
		os.WriteFile(p("bad"), data, 0o600)
		c := &chunkStore{}
		c.openOld(p("bad"), tc.pack)
		tr.chunks = c
		if why, warn := tr.DeltasMissing(); !strings.Contains(why, tc.want) || !warn || c.base("dir/a") != nil {
			t.Errorf("%s: %q (warn %v), want %q", tc.name, why, warn, tc.want)
		}
	}
}
