package seek

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/blake3"
	"github.com/bk-backup/bk/internal/index"
	"github.com/bk-backup/bk/internal/rsdelta"
	"github.com/bk-backup/bk/internal/seal"
)

// The archives of these tests are made here, entry by entry, as bk-pack
// lays them out (tar in seekable zstd, a catalogue entry at each header),
// unencrypted: the age layer has tests of its own, and hand-made entries
// let a test hold what bk-pack would never write (a hostile archive).

var mtime = time.Date(2026, 11, 1, 2, 30, 0, 0, time.UTC)

// member is one entry to write: its header and content.
type member struct {
	h    *tar.Header
	body []byte
}

func file(name string, body []byte) member {
	return member{&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o640, Size: int64(len(body)), ModTime: mtime, Format: tar.FormatPAX}, body}
}

func dir(name string) member {
	return member{&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}, nil}
}

// dumpdir is an incremental backup's directory: listed holds its content
// as GNU.dumpdir names it ("Ya" stored here, "Nb" unchanged, "Dc" a
// directory); a name it lacks was deleted.
func dumpdir(name string, listed ...string) member {
	m := dir(name)
	m.h.PAXRecords = map[string]string{"GNU.dumpdir": strings.Join(listed, "\x00") + "\x00\x00"}
	return m
}

func symlink(name, target string) member {
	return member{&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mtime, Format: tar.FormatPAX}, nil}
}

func hardlink(name, target string) member {
	return member{&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o640, ModTime: mtime, Format: tar.FormatPAX}, nil}
}

// delta is the entry of name changed from base to result: a librsync
// delta copying the bytes the two share at both ends, the rest literally.
func delta(name string, base, result []byte) member {
	head := 0
	for head < len(base) && head < len(result) && base[head] == result[head] {
		head++
	}
	tail := 0
	for tail < len(base)-head && tail < len(result)-head && base[len(base)-1-tail] == result[len(result)-1-tail] {
		tail++
	}
	d := rsdelta.AppendMagic(nil)
	if head > 0 {
		d = rsdelta.AppendCopy(d, 0, int64(head))
	}
	if lit := result[head : len(result)-tail]; len(lit) > 0 {
		d = append(rsdelta.AppendLiteral(d, int64(len(lit))), lit...)
	}
	if tail > 0 {
		d = rsdelta.AppendCopy(d, int64(len(base)-tail), int64(tail))
	}
	d = rsdelta.AppendEnd(d)
	sum := func(b []byte) string { s := blake3.Sum256(b); return hex.EncodeToString(s[:]) }
	m := file(name+archive.DeltaSuffix, d)
	m.h.PAXRecords = map[string]string{
		"BK.delta": "1", "BK.delta.base.size": strconv.Itoa(len(base)), "BK.delta.base.blake3": sum(base),
		"BK.delta.size": strconv.Itoa(len(result)), "BK.delta.blake3": sum(result),
	}
	return m
}

// pack writes the members as an archive with a seek table and catalogue.
func pack(t *testing.T, members ...member) []byte {
	t.Helper()
	var out bytes.Buffer
	sw, err := seal.CompressSeekable(&out, 1)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := index.NewWriter(sw)
	if err != nil {
		t.Fatal(err)
	}
	cw := &archive.CountWriter{W: sw}
	tw := tar.NewWriter(cw)
	for _, m := range members {
		check(t, tw.Flush())
		check(t, cat.Add(m.h, cw.N))
		check(t, tw.WriteHeader(m.h))
		_, err := tw.Write(m.body)
		check(t, err)
	}
	check(t, tw.Flush())
	check(t, cat.End(cw.N))
	check(t, tw.Close())
	check(t, sw.Finish(cat.Trailer))
	return out.Bytes()
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// countingReaderAt counts the bytes read of an archive.
type countingReaderAt struct {
	r    io.ReaderAt
	read atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

// open opens archives as a chain, the full one first.
func open(t *testing.T, archives ...[]byte) ([]*Archive, []*countingReaderAt) {
	t.Helper()
	var chain []*Archive
	var counters []*countingReaderAt
	for i, b := range archives {
		c := &countingReaderAt{r: bytes.NewReader(b)}
		a, err := Open("a"+strconv.Itoa(i), c, int64(len(b)), seal.Keys{})
		check(t, err)
		t.Cleanup(a.Close)
		chain = append(chain, a)
		counters = append(counters, c)
	}
	return chain, counters
}

// restore restores patterns from the chain into a new folder, returned.
func restore(t *testing.T, chain []*Archive, patterns ...string) (string, archive.RestoreStats, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "r")
	var warnings []string
	stats, err := Restore(context.Background(), chain, dir, archive.RestoreOptions{Patterns: patterns,
		Warn: func(f string, a ...any) { warnings = append(warnings, f) }})
	if err == nil && len(warnings) > 0 {
		t.Logf("warnings: %q", warnings)
	}
	return dir, stats, err
}

func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not the %d stored", path, len(got), len(want))
	}
	st, err := os.Lstat(path)
	check(t, err)
	if st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mtime) {
		t.Fatalf("%s: mode %v, mtime %v; stored 0640, %v", path, st.Mode(), st.ModTime(), mtime)
	}
}

func wantAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: there (%v), not expected", path, err)
	}
}

func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// planned lists what plan picks from each archive.
func planned(t *testing.T, chain []*Archive, patterns ...string) [][]string {
	t.Helper()
	match, err := archive.Matcher(patterns)
	check(t, err)
	p, err := plan(context.Background(), chain, match)
	check(t, err)
	out := make([][]string, len(p.entries))
	for i, es := range p.entries {
		out[i] = []string{}
		for _, e := range es {
			out[i] = append(out[i], e.Name)
		}
	}
	return out
}

// One file of an archive whose other content spans several zstd frames
// is restored from the frames that hold it: a fraction of the archive is
// read.
func TestRestoreReadsOnlyTheFramesOfTheSelection(t *testing.T) {
	t.Parallel()
	big, small := random(3*seal.ChunkSize, 1), random(3000, 2)
	b := pack(t, dir("d"), file("d/big", big), file("d/small", small))
	chain, counters := open(t, b)
	opened := counters[0].read.Load()

	r, stats, err := restore(t, chain, "d/small")
	check(t, err)
	wantFile(t, filepath.Join(r, "d/small"), small)
	wantAbsent(t, filepath.Join(r, "d/big"))
	if stats.Files != 1 || stats.Bytes != int64(len(small)) {
		t.Fatalf("stats %+v: want 1 file of %d bytes", stats, len(small))
	}
	// The last frame holds the small file and the big file's last bytes:
	// the frames of big before are not read.
	if read := counters[0].read.Load() - opened; read > 64<<10 {
		t.Fatalf("restoring %d bytes read %d of the %d-byte archive", len(small), read, len(b))
	}
}

// With a chain, each path comes from the newest archive that holds it as
// of the last one; older versions are not read; what a later archive's
// directory no longer lists is not restored.
func TestChainNewestVersionAndDeletions(t *testing.T) {
	t.Parallel()
	a0, a1, b0 := []byte("a, night 0"), []byte("a, night 1"), []byte("b, night 0")
	full := pack(t, dir("d"), file("d/a", a0), file("d/b", b0))
	inc1 := pack(t, dumpdir("d", "Ya", "Nb"), file("d/a", a1))
	inc2 := pack(t, dumpdir("d", "Na")) // b deleted
	chain, _ := open(t, full, inc1, inc2)

	// As of the full backup, and of night 1: both, each at its version.
	r, _, err := restore(t, chain[:1], "d")
	check(t, err)
	wantFile(t, filepath.Join(r, "d/a"), a0)
	wantFile(t, filepath.Join(r, "d/b"), b0)
	r, _, err = restore(t, chain[:2], "d/a", "d/b")
	check(t, err)
	wantFile(t, filepath.Join(r, "d/a"), a1)
	wantFile(t, filepath.Join(r, "d/b"), b0)

	// As of night 2: a from night 1, b gone, whether asked for by its
	// directory or by a glob.
	for _, patterns := range [][]string{{"d"}, {"d/*"}} {
		r, _, err = restore(t, chain, patterns...)
		check(t, err)
		wantFile(t, filepath.Join(r, "d/a"), a1)
		wantAbsent(t, filepath.Join(r, "d/b"))
	}
	// The full backup's a is not read: only the directories that record
	// deletions are, from every archive (the full backup's records none).
	got := planned(t, chain, "d/a")
	want := [][]string{{}, {"d", "d/a"}, {"d"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("plan for d/a: %q, want %q", got, want)
	}
}

// A large file's deltas apply to its newest whole version in order; a
// whole version after a delta makes the entries before it unread; a delta
// that meets another version than its base is refused, nothing restored.
func TestChainDeltas(t *testing.T) {
	t.Parallel()
	v0 := random(20000, 3)
	v1 := slices.Concat(v0[:5000], []byte("night 1 wrote this"), v0[5000:])
	v2 := slices.Concat(v1[:15000], []byte("and night 2 this"), v1[15100:])
	v3 := random(1000, 4)
	full := pack(t, file("big", v0))
	inc1 := pack(t, delta("big", v0, v1))
	inc2 := pack(t, delta("big", v1, v2))
	inc3 := pack(t, file("big", v3))
	chain, _ := open(t, full, inc1, inc2, inc3)

	r, _, err := restore(t, chain[:3], "big")
	check(t, err)
	wantFile(t, filepath.Join(r, "big"), v2)
	if got, want := planned(t, chain[:3], "big"), [][]string{{"big"}, {"big.bk-delta"}, {"big.bk-delta"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("plan: %q, want %q", got, want)
	}

	r, _, err = restore(t, chain, "big")
	check(t, err)
	wantFile(t, filepath.Join(r, "big"), v3)
	if got, want := planned(t, chain, "big"), [][]string{{}, {}, {}, {"big"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("plan with a whole version last: %q, want %q", got, want)
	}

	// Night 1 left out: night 2's delta meets night 0's version.
	skipped := []*Archive{chain[0], chain[2]}
	r, _, err = restore(t, skipped, "big")
	if err == nil || !strings.Contains(err.Error(), "a delta of a 20018-byte version of big") {
		t.Fatalf("a delta on the wrong base: err = %v", err)
	}
	wantAbsent(t, r)
}

// An entry under a symlink of its archive is refused, as a full restore
// refuses it, and nothing is written where the symlink points.
func TestEntryUnderArchiveSymlinkRefused(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	for _, target := range []string{outside, "../../" + filepath.Base(outside)} {
		b := pack(t, dir("d"), symlink("d/link", target), file("d/link/x", []byte("x")))
		chain, _ := open(t, b)
		for _, pattern := range []string{"d/link/x", "d"} {
			r, _, err := restore(t, chain, pattern)
			if err == nil || !strings.Contains(err.Error(), `would write through the symlink "d/link"`) {
				t.Fatalf("symlink to %s, pattern %s: err = %v", target, pattern, err)
			}
			wantAbsent(t, r)
			wantAbsent(t, filepath.Join(outside, "x"))
		}
	}
}

// A symlink of an earlier archive of the chain, with an entry under it in
// a later one: restored with it selected, the entry is refused by the
// folder the restore writes in (it never follows a symlink out); with the
// symlink left out, the entry lands in a folder inside the target. Either
// way nothing is written where the symlink points.
func TestEntryUnderSymlinkOfEarlierArchive(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	full := pack(t, dir("d"), symlink("d/link", outside))
	inc := pack(t, dumpdir("d", "Ylink"), file("d/link/x", []byte("x")))
	chain, _ := open(t, full, inc)
	if _, _, err := restore(t, chain, "d"); err == nil || !strings.Contains(err.Error(), "would write through d/link, which an earlier backup of the chain left there") {
		t.Fatalf("an entry under the symlink of the full backup: err = %v", err)
	}
	wantAbsent(t, filepath.Join(outside, "x"))
	r, _, err := restore(t, chain, "d/link/x")
	check(t, err)
	if st, err := os.Lstat(filepath.Join(r, "d/link")); err != nil || !st.IsDir() {
		t.Fatalf("d/link: %v, %v: want a folder inside the target", st, err)
	}
	wantAbsent(t, filepath.Join(outside, "x"))
}

// A hard link whose target the patterns leave out pulls the target in:
// both restored, linked, the target's bytes and metadata exact. Its
// newest version comes with it, and its deletion is kept.
func TestHardLinkPullsItsTargetIn(t *testing.T) {
	t.Parallel()
	body := []byte("one file, two names")
	// A target whose name reads as a glob is pulled in alone.
	full := pack(t, dir("a"), file("a/t*[1]", body), file("a/tx1", []byte("tx1")), dir("b"), hardlink("b/l", "a/t*[1]"), file("b/other", []byte("o")))
	chain, _ := open(t, full)
	r, stats, err := restore(t, chain, "b/l")
	check(t, err)
	wantFile(t, filepath.Join(r, "b/l"), body)
	wantFile(t, filepath.Join(r, "a/t*[1]"), body)
	wantAbsent(t, filepath.Join(r, "b/other"))
	wantAbsent(t, filepath.Join(r, "a/tx1"))
	l, err := os.Stat(filepath.Join(r, "b/l"))
	check(t, err)
	tgt, err := os.Stat(filepath.Join(r, "a/t*[1]"))
	check(t, err)
	if !os.SameFile(l, tgt) {
		t.Fatal("b/l and its target restored as two files, not linked")
	}
	if stats.Skipped != 0 || stats.Links != 1 {
		t.Fatalf("stats %+v: want the link made, nothing skipped", stats)
	}

	full = pack(t, dir("a"), file("a/t", body), dir("b"), hardlink("b/l", "a/t"), file("b/other", []byte("o")))

	// Night 1 replaced a/t by a new file (b/l keeps the old one); night 2
	// deleted it. Restored as of each, a/t is that night's.
	newer := []byte("a/t, a new file")
	inc1 := pack(t, dumpdir("a", "Yt"), file("a/t", newer), dumpdir("b", "Nl", "Nother"))
	inc2 := pack(t, dumpdir("a"), dumpdir("b", "Nl", "Nother"))
	chain, _ = open(t, full, inc1, inc2)
	r, _, err = restore(t, chain[:2], "b/l")
	check(t, err)
	wantFile(t, filepath.Join(r, "b/l"), body)
	wantFile(t, filepath.Join(r, "a/t"), newer)
	r, _, err = restore(t, chain, "b/l")
	check(t, err)
	wantFile(t, filepath.Join(r, "b/l"), body)
	wantAbsent(t, filepath.Join(r, "a/t"))
}

// An archive that cannot be read in pieces says why.
func TestOpenSaysWhyNotSeekable(t *testing.T) {
	t.Parallel()
	var plainTar bytes.Buffer
	tw := tar.NewWriter(&plainTar)
	check(t, tw.WriteHeader(file("f", nil).h))
	check(t, tw.Close())
	var noTable bytes.Buffer
	zw, err := seal.Compress(&noTable, 1)
	check(t, err)
	_, err = zw.Write(plainTar.Bytes())
	check(t, err)
	check(t, zw.Close())
	var noCatalogue bytes.Buffer
	sw, err := seal.CompressSeekable(&noCatalogue, 1)
	check(t, err)
	_, err = sw.Write(plainTar.Bytes())
	check(t, err)
	check(t, sw.Finish(nil))

	for _, c := range []struct {
		name string
		b    []byte
		why  string
	}{
		{"tar", plainTar.Bytes(), "not a binary age or zstd stream"},
		{"armored", []byte("-----BEGIN AGE ENCRYPTED FILE-----\n"), "not a binary age or zstd stream"},
		{"zstd", noTable.Bytes(), "no seek table"},
		{"seekable zstd", noCatalogue.Bytes(), "no catalogue"},
	} {
		_, err := Open(c.name, bytes.NewReader(c.b), int64(len(c.b)), seal.Keys{})
		var ns *NotSeekableError
		if !errors.As(err, &ns) || !strings.Contains(ns.Why, c.why) || !strings.HasPrefix(err.Error(), c.name+": ") {
			t.Errorf("%s: err = %v, want a NotSeekableError saying %q", c.name, err, c.why)
		}
	}
}

// A catalogue that does not describe its archive fails the restore, saying
// so, with nothing restored.
func TestCatalogueThatLiesIsCaught(t *testing.T) {
	t.Parallel()
	b := pack(t, file("a", []byte("aaaa")), file("b", []byte("bbbb")))
	chain, _ := open(t, b)
	a := chain[0]
	entries := planned(t, chain, "b")
	if !slices.Equal(entries[0], []string{"b"}) {
		t.Fatalf("plan: %q", entries)
	}
	// The entry read is not the one the catalogue names.
	var e index.Entry
	check(t, a.Catalogue.Each(func(x *index.Entry) error {
		if x.Name == "b" {
			e = *x
		}
		return nil
	}))
	e.Name = "a"
	p := &pieces{a: a, entries: []index.Entry{e}}
	if _, err := io.ReadAll(p); err == nil || !strings.Contains(err.Error(), `is "b", not "a" as it says`) {
		t.Fatalf("a catalogue naming the wrong entry: err = %v", err)
	}
	e.Offset += 512 // b's content, read as a header
	e.Length -= 512
	p = &pieces{a: a, entries: []index.Entry{e}}
	if _, err := io.ReadAll(p); err == nil || !strings.Contains(err.Error(), "no tar entry at byte") {
		t.Fatalf("a catalogue pointing inside an entry: err = %v", err)
	}
	e.Length = a.Catalogue.End
	e.Name = "b"
	p = &pieces{a: a, entries: []index.Entry{e}}
	if _, err := io.ReadAll(p); err == nil || !strings.Contains(err.Error(), "runs past the end") {
		t.Fatalf("an entry running past the end: err = %v", err)
	}
}

// members is the chain of archives as whole streams, as bk-join gives it.
func members(t *testing.T, archives [][]byte) archive.Members {
	i := 0
	return func() (string, io.Reader, error) {
		if i == len(archives) {
			return "", nil, io.EOF
		}
		r, _, err := seal.Open(bytes.NewReader(archives[i]), seal.Keys{})
		check(t, err)
		t.Cleanup(func() { r.Close() })
		i++
		return "a" + strconv.Itoa(i-1), r, nil
	}
}

// Listed from the catalogues, a chain gives the tree a listing of the
// whole archives gives: the newest version of each path, a delta's file at
// its size after it, deletions applied; a pattern that matches nothing
// fails both alike.
func TestListFromCataloguesAsFromWholeArchives(t *testing.T) {
	t.Parallel()
	v0 := random(20000, 3)
	v1 := slices.Concat(v0[:5000], []byte("night 1 wrote this"), v0[5000:])
	archives := [][]byte{
		pack(t, dir("d"), file("d/a", []byte("a0")), file("d/b", []byte("b0")), file("big", v0), dir("e"), file("e/x", []byte("x")), hardlink("e/l", "e/x"), symlink("e/s", "../d")),
		pack(t, dumpdir("d", "Ya", "Nb"), file("d/a", []byte("a, night 1")), delta("big", v0, v1), dumpdir("e", "Nx", "Nl", "Ns")),
		pack(t, dumpdir("d", "Na"), dumpdir("e", "Nl")), // b, x and s deleted
	}
	chain, _ := open(t, archives...)
	for _, patterns := range [][]string{nil, {"d"}, {"big", "e/*"}} {
		var got, want bytes.Buffer
		gs, err := List(context.Background(), chain, &got, patterns)
		check(t, err)
		ws, err := archive.ListChain(context.Background(), members(t, archives), &want, patterns, nil)
		check(t, err)
		if got.String() != want.String() || gs != ws {
			t.Fatalf("patterns %q: from the catalogues (%+v):\n%s\nfrom the archives (%+v):\n%s", patterns, gs, got.String(), ws, want.String())
		}
	}
	var got bytes.Buffer
	_, err := List(context.Background(), chain, &got, nil)
	check(t, err)
	for _, want := range []string{" 10 .* d/a\n", " 20018 .* big\n", " e/l link to e/x\n"} {
		if !regexp.MustCompile(want).MatchString(got.String()) {
			t.Errorf("listing lacks %q:\n%s", want, got.String())
		}
	}
	if strings.Contains(got.String(), "d/b") || strings.Contains(got.String(), "e/s") || strings.Contains(got.String(), "bk-delta") {
		t.Errorf("listing shows what was deleted, or a delta:\n%s", got.String())
	}
	if _, err := List(context.Background(), chain, io.Discard, []string{"nothing"}); !errors.Is(err, archive.ErrNotInArchive) {
		t.Errorf("a pattern that matches nothing: err = %v", err)
	}
}
