package rsdelta

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sample builds an old file, a new one made of copies of it and literals
// of every command width, and the delta between them.
func sample() (old, new, delta []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	old = make([]byte, 300_000)
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	delta = AppendMagic(nil)
	lit := func(n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		delta = append(AppendLiteral(delta, int64(n)), b...)
		new = append(new, b...)
	}
	cp := func(off, n int) {
		delta = AppendCopy(delta, int64(off), int64(n))
		new = append(new, old[off:off+n]...)
	}
	lit(1)
	lit(64)
	cp(0, 10)
	lit(65)
	cp(200, 300)
	lit(70_000)
	cp(70_000, 200_000)
	cp(299_999, 1)
	return old, new, AppendEnd(delta)
}

func TestApply(t *testing.T) {
	t.Parallel()
	old, want, delta := sample()
	var out bytes.Buffer
	n, err := Apply(&out, bytes.NewReader(old), int64(len(old)), bufio.NewReader(bytes.NewReader(delta)), int64(len(want)), make([]byte, 4096))
	if err != nil || n != int64(len(want)) || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("Apply: n %d of %d, err %v, equal %v", n, len(want), err, bytes.Equal(out.Bytes(), want))
	}
}

func TestApplyRefuses(t *testing.T) {
	t.Parallel()
	old, want, delta := sample()
	for _, tc := range []struct {
		name, want string
		delta      []byte
		limit      int64
	}{
		{"bad magic", "not a librsync delta", append([]byte("rs\x016"), delta[4:]...), 1 << 30},
		{"cut short", "cut short", delta[:len(delta)-1], 1 << 30},
		{"cut in a literal", "cut short in a literal", delta[:100], 1 << 30},
		{"too long", "more than the", delta, int64(len(want)) - 1},
		{"copy beyond", "of an old file of 300000 bytes", AppendEnd(AppendCopy(AppendMagic(nil), 299_000, 1001)), 1 << 30},
		{"unknown command", "unknown delta command 0x55", append(AppendMagic(nil), 0x55), 1 << 30},
	} {
		_, err := Apply(&bytes.Buffer{}, bytes.NewReader(old), int64(len(old)), bufio.NewReader(bytes.NewReader(tc.delta)), tc.limit, make([]byte, 4096))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestRdiff checks the format against librsync itself: rdiff applies our
// delta, and Apply applies rdiff's.
func TestRdiff(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("rdiff"); err != nil {
		t.Skip("rdiff is not installed")
	}
	old, want, delta := sample()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for name, b := range map[string][]byte{"old": old, "delta": delta, "want": want} {
		if err := os.WriteFile(p(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("rdiff", "patch", p("old"), p("delta"), p("new")).CombinedOutput(); err != nil {
		t.Fatalf("rdiff patch: %v: %s", err, out)
	}
	if got, _ := os.ReadFile(p("new")); !bytes.Equal(got, want) {
		t.Fatal("rdiff patch made other bytes")
	}
	cmd := exec.Command("sh", "-c", "rdiff signature old sig && rdiff delta sig want rdelta")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rdiff delta: %v: %s", err, out)
	}
	rdelta, err := os.ReadFile(p("rdelta"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Apply(&out, bytes.NewReader(old), int64(len(old)), bufio.NewReader(bytes.NewReader(rdelta)), int64(len(want)), make([]byte, 4096)); err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("Apply of rdiff's delta: %v", err)
	}
}
