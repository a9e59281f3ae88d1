package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/blake3"
	"github.com/bk-backup/bk/internal/rsdelta"
)

// diffBlocks is a delta from old to new by 1 KiB blocks: a block of new
// that old has at the same offset is copied from there, one old has
// elsewhere from there, any other is a literal, as bk-pack's chunks would
// make it, adjacent commands merged.
func diffBlocks(old, new []byte) []byte {
	const bs = 1 << 10
	at := map[string]int{}
	for off := 0; off+bs <= len(old); off += bs {
		if _, ok := at[string(old[off:off+bs])]; !ok {
			at[string(old[off:off+bs])] = off
		}
	}
	d := rsdelta.AppendMagic(nil)
	var lit []byte
	cpOff, cpLen := -1, 0
	flush := func() {
		if cpLen > 0 {
			d = rsdelta.AppendCopy(d, int64(cpOff), int64(cpLen))
			cpOff, cpLen = -1, 0
		}
		if len(lit) > 0 {
			d = append(rsdelta.AppendLiteral(d, int64(len(lit))), lit...)
			lit = nil
		}
	}
	for off := 0; off < len(new); off += bs {
		b := new[off:min(off+bs, len(new))]
		from, ok := -1, false
		if off+len(b) <= len(old) && bytes.Equal(old[off:off+len(b)], b) {
			from, ok = off, true
		} else if len(b) == bs {
			from, ok = at[string(b)]
		}
		switch {
		case ok && cpLen > 0 && cpOff+cpLen == from:
			cpLen += len(b)
		case ok:
			flush()
			cpOff, cpLen = from, len(b)
		default:
			if cpLen > 0 {
				flush()
			}
			lit = append(lit, b...)
		}
	}
	flush()
	return rsdelta.AppendEnd(d)
}

// fileArchive is an archive of one file; with old, the file is stored as
// a delta from old.
func fileArchive(t testing.TB, name string, old, content []byte) []byte {
	t.Helper()
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}
	if old != nil {
		h.Name += DeltaSuffix
		h.PAXRecords = map[string]string{
			deltaRecord:   "1",
			deltaBaseSize: fmt.Sprint(len(old)), deltaBaseHash: fmt.Sprintf("%x", blake3.Sum256(old)),
			deltaSize: fmt.Sprint(len(content)), deltaHash: fmt.Sprintf("%x", blake3.Sum256(content)),
		}
		content = diffBlocks(old, content)
	}
	h.Size = int64(len(content))
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	return b.Bytes()
}

// edit changes a file as people do: parts overwritten (which a delta
// keeps in place), bytes inserted or cut (which move the rest), whole
// blocks of zeros written, the end cut or grown.
func edit(rng *rand.Rand, b []byte) []byte {
	b = bytes.Clone(b)
	noise := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	for range 1 + rng.IntN(3) {
		off := rng.IntN(len(b))
		n := 1 + rng.IntN(6<<10)
		switch rng.IntN(8) {
		case 0:
			b = append(b[:off:off], append(noise(n), b[off:]...)...)
		case 1:
			b = append(b[:off:off], b[min(off+n, len(b)):]...)
		case 2:
			off &^= holeBlock - 1
			copy(b[off:], make([]byte, 2*holeBlock))
		case 3:
			b = b[:max(off, 1)]
		case 4:
			b = append(b, noise(n)...)
		default:
			copy(b[off:], noise(n))
		}
	}
	return b
}

// TestChainPatchProperty restores random chains of random edits of a
// file, each level a delta of the one before, and compares what every
// prefix of the chain restores with the file of that level: however each
// delta is applied (in place or into a new file), the chain must give the
// bytes the level-by-level result has.
func TestChainPatchProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 99))
		levels := [][]byte{randBytes(64<<10+rng.IntN(4096), seed)}
		archives := [][]byte{fileArchive(t, "f", nil, levels[0])}
		for range 8 {
			prev := levels[len(levels)-1]
			next := edit(rng, prev)
			levels = append(levels, next)
			archives = append(archives, fileArchive(t, "f", prev, next))
		}
		for _, k := range []int{1, 2 + rng.IntN(6), len(levels) - 1} {
			dir := filepath.Join(t.TempDir(), "out")
			if _, err := ExtractChain(context.Background(), membersOf(archives[:k+1]...), dir, RestoreOptions{}); err != nil {
				t.Fatalf("seed %d, %d levels: %v", seed, k, err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(got, levels[k]) {
				t.Fatalf("seed %d, %d levels: restored %d bytes unlike the %d of that level", seed, k, len(got), len(levels[k]))
			}
		}
	}
}

// A delta of a file with another name (a hard link) makes a file of its
// own, as it always did: patching it in place would change the other name.
func TestPatchLeavesHardLinkAlone(t *testing.T) {
	t.Parallel()
	old := randBytes(32<<10, 3)
	next := bytes.Clone(old)
	copy(next[5000:], "edited in place")
	var full bytes.Buffer
	tw := tar.NewWriter(&full)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(old)), Format: tar.FormatPAX})
	tw.Write(old)
	tw.WriteHeader(&tar.Header{Name: "g", Typeflag: tar.TypeLink, Linkname: "f", Mode: 0o644, Format: tar.FormatPAX})
	tw.Close()
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := ExtractChain(context.Background(), membersOf(full.Bytes(), fileArchive(t, "f", old, next)), dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.ReadFile(filepath.Join(dir, "f"))
	g, _ := os.ReadFile(filepath.Join(dir, "g"))
	if !bytes.Equal(f, next) || !bytes.Equal(g, old) {
		t.Fatalf("f is the new version: %v; g the old one: %v", bytes.Equal(f, next), bytes.Equal(g, old))
	}
}

// inPlace takes a delta that leaves kept bytes where they are, and no
// other: one that moves them, writes a whole block of zeros (a new file
// would leave a hole there), makes another size or has more after its
// end.
func TestInPlace(t *testing.T) {
	t.Parallel()
	lit := func(d []byte, b []byte) []byte { return append(rsdelta.AppendLiteral(d, int64(len(b))), b...) }
	noise := randBytes(3*holeBlock, 4)
	withZeros := bytes.Clone(noise)
	clear(withZeros[holeBlock-100 : 2*holeBlock])
	m := rsdelta.AppendMagic
	for _, tc := range []struct {
		name  string
		delta []byte
		size  int64
		want  bool
	}{
		{"kept in place", rsdelta.AppendEnd(rsdelta.AppendCopy(lit(m(nil), noise[:100]), 100, 9000)), 9100, true},
		{"zeros not a whole block", rsdelta.AppendEnd(lit(rsdelta.AppendCopy(m(nil), 0, 100), withZeros[:holeBlock*2-200])), holeBlock*2 - 100, true},
		{"moved", rsdelta.AppendEnd(rsdelta.AppendCopy(lit(m(nil), noise[:100]), 0, 9000)), 9100, false},
		{"a block of zeros", rsdelta.AppendEnd(lit(m(nil), withZeros)), 3 * holeBlock, false},
		{"another size", rsdelta.AppendEnd(rsdelta.AppendCopy(m(nil), 0, 9000)), 9001, false},
		{"more after the end", append(rsdelta.AppendEnd(rsdelta.AppendCopy(m(nil), 0, 9000)), 0), 9000, false},
		{"cut short", rsdelta.AppendCopy(m(nil), 0, 9000), 9000, false},
	} {
		spool, err := os.CreateTemp(t.TempDir(), "spool")
		if err != nil {
			t.Fatal(err)
		}
		spool.Write(tc.delta)
		x := &extractor{}
		if got := x.inPlace(spool, int64(len(tc.delta)), &deltaInfo{baseSize: 10000, size: tc.size}); got != tc.want {
			t.Errorf("%s: inPlace %v, want %v", tc.name, got, tc.want)
		}
		spool.Close()
	}
}

// corruptLiteral flips a byte of the first place needle (a delta's
// literal) stands in an archive: a level whose delta makes other bytes
// than its BLAKE3 names.
func corruptLiteral(t *testing.T, archive, needle []byte) []byte {
	t.Helper()
	i := bytes.Index(archive, needle)
	if i < 0 {
		t.Fatal("the literal is not in the archive")
	}
	out := bytes.Clone(archive)
	out[i] ^= 0xff
	return out
}

// editAt is b with noise written at off.
func editAt(b []byte, off int, seed uint64) []byte {
	out := bytes.Clone(b)
	copy(out[off:], randBytes(100, seed))
	return out
}

// A delta applied in place is checked when the file is next read: a
// corrupt level whose bytes later levels keep fails the restore at the
// end of the chain, naming the file and the backups whose deltas made
// it, and nothing is restored; one whose bytes an entry replaces fails
// there, naming its own backup.
func TestInPlaceCheckWaits(t *testing.T) {
	t.Parallel()
	l0 := randBytes(64<<10, 7)
	l1 := editAt(l0, 10000, 8)
	l2 := editAt(l1, 40000, 9)
	full := fileArchive(t, "f", nil, l0)
	bad := corruptLiteral(t, fileArchive(t, "f", l0, l1), randBytes(100, 8)[:16])
	for _, tc := range []struct {
		name  string
		chain [][]byte
		want  string
	}{
		{"kept by the next delta", [][]byte{full, bad, fileArchive(t, "f", l1, l2)},
			`backups b1 to b2: f: the file their deltas made does not match the BLAKE3 the last one gives`},
		{"replaced by an entry", [][]byte{full, bad, fileArchive(t, "f", nil, l2)},
			`backup b1: f: the file the delta made does not match its BLAKE3`},
		{"the last level", [][]byte{full, bad},
			`backup b1: f: the file the delta made does not match its BLAKE3`},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		_, err := ExtractChain(context.Background(), membersOf(tc.chain...), dir, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: the target was left behind", tc.name)
		}
	}
}

// Past maxUnchecked files patched in place, each is checked as it is
// patched, a corrupt one failing there; the others restore.
func TestInPlaceChecksPastTheBound(t *testing.T) {
	t.Parallel()
	var full, inc, want [][]byte
	for i := range maxUnchecked + 2 {
		old := randBytes(8<<10, uint64(i))
		next := editAt(old, 3000, uint64(1000+i))
		name := fmt.Sprintf("f%03d", i)
		full = append(full, fileArchive(t, name, nil, old))
		inc = append(inc, fileArchive(t, name, old, next))
		want = append(want, next)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := ExtractChain(context.Background(), membersOf(concatTars(t, full), concatTars(t, inc)), dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if got, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%03d", i))); !bytes.Equal(got, w) {
			t.Fatalf("f%03d: other bytes restored", i)
		}
	}
	last := len(inc) - 1
	inc[last] = corruptLiteral(t, inc[last], randBytes(100, uint64(1000+last))[:16])
	dir = filepath.Join(t.TempDir(), "out")
	_, err := ExtractChain(context.Background(), membersOf(concatTars(t, full), concatTars(t, inc)), dir, RestoreOptions{})
	if want := fmt.Sprintf(`backup b1: f%03d: the file the delta made does not match its BLAKE3`, last); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// concatTars is one archive of the entries of archives.
func concatTars(t *testing.T, archives [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, a := range archives {
		copyEntries(t, tw, a, func(*tar.Header) {})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
