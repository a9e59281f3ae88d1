package tarread

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// reader is what both readers offer.
type reader interface {
	Next() (*tar.Header, error)
	io.Reader
}

// step is one Next and the read of its content.
type step struct {
	h       *tar.Header
	err     string
	data    []byte
	readErr string
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// steps reads every entry of tr, up to the first error other than an
// insecure path (which leaves the reader usable).
func steps(tr reader) []step {
	var out []step
	for range 10000 {
		h, err := tr.Next()
		s := step{h: h, err: errText(err)}
		if err != nil && !errors.Is(err, ErrInsecurePath) {
			return append(out, s)
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		s.data, s.readErr = data, errText(err)
		out = append(out, s)
		if err != nil {
			return out
		}
	}
	return out
}

// sameAsArchiveTar fails the test when this package reads b otherwise than
// archive/tar does: other headers (every field, Format included), other
// content, or other errors at other places.
func sameAsArchiveTar(t *testing.T, b []byte) {
	t.Helper()
	want := steps(tar.NewReader(bytes.NewReader(b)))
	got := steps(NewReader(bytes.NewReader(b)))
	if len(got) != len(want) {
		t.Fatalf("%d entries, archive/tar reads %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !reflect.DeepEqual(g.h, w.h) || g.err != w.err || !bytes.Equal(g.data, w.data) || g.readErr != w.readErr {
			t.Fatalf("entry %d: got %+v (%q), content %q (%q)\narchive/tar: %+v (%q), content %q (%q)",
				i, g.h, g.err, g.data, g.readErr, w.h, w.err, w.data, w.readErr)
		}
	}
}

// seeds are archive/tar's own test archives (every format and oddity it
// reads), when the Go tree is there, and archives written here.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "archive", "tar", "testdata", "*.tar"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 123456789)
	for _, h := range []*tar.Header{
		{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime.Truncate(time.Second)},
		{Name: "dir/file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: mtime, Format: tar.FormatPAX, Uname: "alice", Gname: "staff"},
		{Name: "dir/ünïcode", Typeflag: tar.TypeReg, Size: 5, ModTime: mtime, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}},
		{Name: "dir/" + string(bytes.Repeat([]byte("long"), 80)), Typeflag: tar.TypeReg, Size: 5, ModTime: mtime},
		{Name: "dir/gnu", Typeflag: tar.TypeReg, Size: 5, Uid: 1 << 30, ModTime: mtime.Truncate(time.Second), Format: tar.FormatGNU},
		{Name: "dir/link", Typeflag: tar.TypeSymlink, Linkname: "file", ModTime: mtime},
		{Name: "../escape", Typeflag: tar.TypeReg, Size: 5, ModTime: mtime},
		{Name: "big", Typeflag: tar.TypeReg, Size: 5, Uid: 07777777, Gid: 1 << 21, ModTime: time.Unix(1<<34, 0)},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hello"))
		}
	}
	tw.Close()
	out = append(out, buf.Bytes())
	return out
}

func TestSameAsArchiveTar(t *testing.T) {
	t.Parallel()
	all := seeds(t)
	if len(all) < 10 {
		t.Logf("archive/tar's test archives not found under GOROOT: %d archives", len(all))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, b := range all {
		sameAsArchiveTar(t, b)
		// The same with a byte of the first header set high: a header
		// whose checksum is off, or (checksum made again) that is not
		// ASCII, or whose checksum matches only as signed bytes.
		for j := range 30 {
			c := bytes.Clone(b)
			if len(c) < blockSize {
				break
			}
			c[rng.IntN(blockSize)] |= 0x80
			if j%3 > 0 {
				blk := (*block)(c[:blockSize])
				u, s := blk.computeChecksum()
				if j%3 == 2 {
					u = s
				}
				copy(c[148:156], fmt.Sprintf("%06o\x00 ", u))
			}
			t.Run(fmt.Sprint(i), func(t *testing.T) { sameAsArchiveTar(t, c) })
		}
	}
}

func FuzzSameAsArchiveTar(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsArchiveTar(t, b) })
}

// The word-at-a-time checks against archive/tar's byte-at-a-time code, on
// blocks with few and many high bytes.
func TestBlockChecks(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		var b block
		for j := range b {
			b[j] = byte(rng.IntN(0x80))
		}
		for range i % 5 {
			b[rng.IntN(blockSize)] |= 0x80
		}
		if i%7 == 0 {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		}
		if i == 1 {
			b = block{}
		}
		if i == 2 {
			for j := range b {
				b[j] = 0xFF
			}
		}
		var wantU, wantS int64
		ascii := true
		for j, c := range b {
			ascii = ascii && c < 0x80
			if 148 <= j && j < 156 {
				c = ' '
			}
			wantU += int64(c)
			wantS += int64(int8(c))
		}
		if u, s := b.computeChecksum(); u != wantU || s != wantS {
			t.Fatalf("block %d: checksums %d, %d; want %d, %d", i, u, s, wantU, wantS)
		}
		if asciiBlock(&b) != ascii {
			t.Fatalf("block %d: asciiBlock %v, want %v", i, !ascii, ascii)
		}
	}
}

func TestParseOctal(t *testing.T) {
	t.Parallel()
	ref := func(b []byte) (int64, bool) {
		b = bytes.Trim(b, " \x00")
		if len(b) == 0 {
			return 0, true
		}
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		x, err := strconv.ParseUint(string(b), 8, 64)
		return int64(x), err == nil
	}
	cases := []string{"", " ", "\x00\x00", "0000644\x00", " 644 ", "0", "17777777777 ", "777777777777777777777",
		"1777777777777777777777", "2000000000000000000000", "7777777777777777777777", "12 34", "12\x0034", "8", "-1", "+1", "0x10", "１"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for j := range b {
			b[j] = " \x0001234567789x-"[rng.IntN(15)]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		var p parser
		got := p.parseOctal([]byte(c))
		want, ok := ref([]byte(c))
		if got != want || (p.err == nil) != ok {
			t.Fatalf("parseOctal(%q) = %d, %v; want %d, ok %v", c, got, p.err, want, ok)
		}
	}
}
