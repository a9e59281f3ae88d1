package state

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/archive"
)

// recorder is an archive.Index that stores everything and records the order
// of the listings.
type recorder struct {
	dirs []string
	tops []int
}

func (r *recorder) Tops(tops []archive.Child) ([]bool, error) { return all(len(tops)), nil }
func (r *recorder) List(top int, dir string, children []archive.Child) ([]bool, error) {
	r.dirs = append(r.dirs, dir)
	r.tops = append(r.tops, top)
	return all(len(children)), nil
}
func (r *recorder) Unstored(string) {}

func all(n int) []bool {
	b := make([]bool, n)
	for i := range b {
		b[i] = true
	}
	return b
}

// The index is merged against the walk by compareWalk: it must order
// directories exactly as Pack lists them, names with bytes below and above
// "/" included.
func TestCompareWalkFollowsPack(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b", "a-b/c", "a.b", "a0", "a/b/c", "a/b-", "a/b.x/y", "A", "a b", "!x"} {
		if err := os.MkdirAll(filepath.Join(root, "t", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "u", "v"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, top := range [][]string{{"t", "u"}, {"."}} {
		rec := &recorder{}
		t.Chdir(filepath.Join(root))
		if top[0] == "." {
			t.Chdir(filepath.Join(root, "t"))
		}
		if _, err := archive.Pack(context.Background(), io.Discard, top, archive.PackOptions{Index: rec}); err != nil {
			t.Fatal(err)
		}
		if len(rec.dirs) < 10 {
			t.Fatalf("%v: only %d directories listed: %q", top, len(rec.dirs), rec.dirs)
		}
		for i := 1; i < len(rec.dirs); i++ {
			if c := compareWalk(top, rec.tops[i-1], rec.dirs[i-1], rec.tops[i], rec.dirs[i]); c >= 0 {
				t.Errorf("%v: %q (top %d) listed before %q (top %d), but compareWalk says %d", top, rec.dirs[i-1], rec.tops[i-1], rec.dirs[i], rec.tops[i], c)
			}
			if c := compareWalk(top, rec.tops[i], rec.dirs[i], rec.tops[i-1], rec.dirs[i-1]); c <= 0 {
				t.Errorf("%v: compareWalk is not antisymmetric on %q, %q", top, rec.dirs[i], rec.dirs[i-1])
			}
		}
	}
}
