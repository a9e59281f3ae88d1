package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// raw is one hand-made tar record, for archives archive/tar would not write.
type raw struct {
	name string
	typ  byte
	body string
	link string
	pax  map[string]string // written as a PAX header before it
	gnu  bool              // GNU magic (old GNU sparse headers need it)
	size int64             // header size if not len(body)
}

func rawBlock(name string, typ byte, size int64, link string, gnu bool) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:], "0000644\x000000000\x000000000\x00")
	if size < 0o77777777777 {
		copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	} else { // base-256
		b[124] = 0x80
		for i := 135; i > 124; i-- {
			b[i] = byte(size)
			size >>= 8
		}
	}
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[157:257], link)
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	setChecksum(b)
	return b
}

func padded(s string) []byte {
	b := []byte(s)
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

func rawTar(ents ...raw) []byte {
	var out []byte
	for _, e := range ents {
		if len(e.name) > 100 || len(e.link) > 100 {
			if e.pax == nil {
				e.pax = map[string]string{}
			}
			e.pax["path"] = e.name
			if e.link != "" {
				e.pax["linkpath"] = e.link
			}
		}
		if len(e.pax) > 0 {
			keys := make([]string, 0, len(e.pax))
			for k := range e.pax {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var recs string
			for _, k := range keys {
				recs += paxRecord(k, e.pax[k])
			}
			out = append(out, rawBlock("PaxHeader", 'x', int64(len(recs)), "", false)...)
			out = append(out, padded(recs)...)
		}
		size := e.size
		if size == 0 {
			size = int64(len(e.body))
		}
		out = append(out, rawBlock(e.name, e.typ, size, e.link, e.gnu)...)
		out = append(out, padded(e.body)...)
	}
	return append(out, make([]byte, 1024)...)
}

// snapshot describes a directory tree (names, types, symlink targets,
// contents) to tell whether it changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p, err)
			return nil
		}
		fmt.Fprintf(&b, "%s %v", p, fi.Mode())
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		} else if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %q", data)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

func TestRefusals(t *testing.T) {
	type tc struct {
		name  string
		tar   func(outside string) []byte
		setup func(t *testing.T, out, outside string)
		opts  RestoreOptions
		want  string // in the error: the entry named
		lists bool   // List shows it all the same
	}
	file := func(name, body string) raw { return raw{name: name, typ: '0', body: body} }
	cases := []tc{
		{name: "absolute", want: "/abs", tar: func(o string) []byte { return rawTar(file(o+"/abs", "pwned")) }},
		{name: "dotdot", want: `"../outside/x"`, tar: func(string) []byte { return rawTar(file("ok", "1"), file("../outside/x", "pwned")) }},
		{name: "dotdot inside", want: `"a/../../outside/x"`, tar: func(string) []byte { return rawTar(file("a/../../outside/x", "pwned")) }},
		{name: "dotdot long pax name", want: "../outside/" + strings.Repeat("y", 120), tar: func(string) []byte {
			return rawTar(file("../outside/"+strings.Repeat("y", 120), "pwned"))
		}},
		{name: "symlink then write through", want: `"l/x"`, tar: func(string) []byte {
			return rawTar(raw{name: "l", typ: '2', link: "../outside"}, file("l/x", "pwned"))
		}},
		{name: "absolute symlink then write through", want: `"d/l/x"`, tar: func(o string) []byte {
			return rawTar(raw{name: "d/", typ: '5'}, raw{name: "d/l", typ: '2', link: o}, file("d/l/x", "pwned"))
		}},
		{name: "symlink then hard link through", want: `"l/h"`, tar: func(string) []byte {
			return rawTar(file("f", "x"), raw{name: "l", typ: '2', link: "../outside"}, raw{name: "l/h", typ: '1', link: "f"})
		}},
		{name: "hard link outside", want: `"h"`, tar: func(string) []byte {
			return rawTar(raw{name: "h", typ: '1', link: "../outside/secret"})
		}},
		{name: "hard link absolute", want: `"h"`, tar: func(o string) []byte {
			return rawTar(raw{name: "h", typ: '1', link: o + "/secret"})
		}},
		{name: "hard link before its target", want: `"h"`, tar: func(string) []byte {
			return rawTar(raw{name: "h", typ: '1', link: "later"}, file("later", "x"))
		}},
		{name: "hard link to a symlink", want: `"h"`, tar: func(o string) []byte {
			return rawTar(raw{name: "s", typ: '2', link: o + "/secret"}, raw{name: "h", typ: '1', link: "s"})
		}},
		{name: "old GNU sparse", want: `"sp"`, tar: func(string) []byte {
			return rawTar(raw{name: "sp", typ: 'S', gnu: true})
		}},
		{name: "PAX GNU sparse 0.1", want: `"sp"`, tar: func(string) []byte {
			return rawTar(raw{name: "sp", typ: '0', body: "hello",
				pax: map[string]string{"GNU.sparse.size": "5", "GNU.sparse.map": "0,5", "GNU.sparse.numblocks": "1"}})
		}},
		{name: "char device", lists: true, want: `"dev/null"`, tar: func(string) []byte { return rawTar(raw{name: "dev/null", typ: '3'}) }},
		{name: "block device", lists: true, want: `"sda"`, tar: func(string) []byte { return rawTar(raw{name: "sda", typ: '4'}) }},
		{name: "fifo", lists: true, want: `"fifo"`, tar: func(string) []byte { return rawTar(raw{name: "fifo", typ: '6'}) }},
		{name: "unknown type", want: `"dump"`, tar: func(string) []byte { return rawTar(raw{name: "dump", typ: 'D'}) }},
		{name: "absurd size", want: `"big"`, tar: func(string) []byte { return rawTar(raw{name: "big", typ: '0', size: 1 << 60}) }},
		{name: "file named dot", want: `"."`, tar: func(string) []byte { return rawTar(file(".", "x")) }},
		{name: "file replaces archived directory", want: `"x"`, tar: func(string) []byte {
			return rawTar(raw{name: "x/", typ: '5'}, file("x/y", "1"), file("x", "2"))
		}},
		{name: "not empty", want: "not empty", tar: func(string) []byte { return rawTar(file("f", "1")) },
			setup: func(t *testing.T, out, _ string) { os.WriteFile(filepath.Join(out, "keep"), []byte("mine"), 0o644) }},
		{name: "existing symlink to outside", want: "evil", opts: RestoreOptions{Overwrite: true},
			tar:   func(string) []byte { return rawTar(file("evil/x", "pwned")) },
			setup: func(t *testing.T, out, outside string) { os.Symlink(outside, filepath.Join(out, "evil")) }},
		{name: "existing symlink to outside, nested", want: "a/evil", opts: RestoreOptions{Overwrite: true},
			tar: func(string) []byte { return rawTar(raw{name: "a/", typ: '5'}, file("a/evil/x", "pwned")) },
			setup: func(t *testing.T, out, outside string) {
				os.Mkdir(filepath.Join(out, "a"), 0o755)
				os.Symlink(outside, filepath.Join(out, "a/evil"))
			}},
		{name: "file over existing directory", want: `"d"`, opts: RestoreOptions{Overwrite: true},
			tar: func(string) []byte { return rawTar(file("a", "new"), file("d", "x")) },
			setup: func(t *testing.T, out, _ string) {
				os.WriteFile(filepath.Join(out, "a"), []byte("old"), 0o644)
				os.MkdirAll(filepath.Join(out, "d/sub"), 0o755)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			out, outside := filepath.Join(base, "out"), filepath.Join(base, "outside")
			os.Mkdir(out, 0o755)
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
			if c.setup != nil {
				c.setup(t, out, outside)
			}
			before := snapshot(t, base)
			data := c.tar(outside)
			_, err := Extract(context.Background(), bytes.NewReader(data), out, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Extract: got error %v, want one naming %s", err, c.want)
			}
			t.Log(err)
			if after := snapshot(t, base); after != before {
				t.Errorf("tree changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if c.setup == nil {
				if _, err := Check(context.Background(), bytes.NewReader(data), nil, nil); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("Check: got error %v, want one naming %s", err, c.want)
				}
				if _, err := List(context.Background(), bytes.NewReader(data), io.Discard, nil, nil); (err == nil) != c.lists {
					t.Errorf("List: %v", err)
				}
			}
		})
	}
}

// A symlink of the archive is stored as it is, whatever it points to, and
// never followed; an existing symlink is replaced, not written through.
func TestSymlinksNotFollowed(t *testing.T) {
	base := t.TempDir()
	out, outside := filepath.Join(base, "out"), filepath.Join(base, "outside")
	os.Mkdir(out, 0o755)
	os.Mkdir(outside, 0o755)
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	os.Symlink(secret, filepath.Join(out, "f"))
	os.Symlink(outside, filepath.Join(out, "d"))
	data := rawTar(raw{name: "f", typ: '0', body: "new"}, raw{name: "d/", typ: '5'}, raw{name: "d/x", typ: '0', body: "x"},
		raw{name: "up", typ: '2', link: "../../outside/secret"}, raw{name: "abs", typ: '2', link: secret})
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Errorf("secret is now %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside holds %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "d/x")); string(b) != "x" {
		t.Errorf("d/x is %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(out, "up")); l != "../../outside/secret" {
		t.Errorf("up -> %q", l)
	}
}

func TestDevicesAllowed(t *testing.T) {
	out := t.TempDir()
	data := rawTar(raw{name: "fifo", typ: '6'})
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{Devices: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(out, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}
}

type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

var errBoom = errors.New("boom: authentication failed")

func TestBrokenStreams(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mkTree(t, src)
	data, _ := pack(t, []string{src}, PackOptions{Warn: func(string, ...any) {}})
	n := len(data)
	type tc struct {
		name string
		r    io.Reader
		want string
	}
	var cases []tc
	for _, cut := range []int{0, 1, 511, 512, 1536, 3000, n / 2, n - 1024 - 512, n - 1024, n - 512, n - 1} {
		cases = append(cases, tc{fmt.Sprintf("cut at %d", cut), bytes.NewReader(data[:cut]), "truncated"})
		cases = append(cases, tc{fmt.Sprintf("error at %d", cut), &failingReader{bytes.NewReader(data), cut, errBoom}, "boom"})
	}
	garbage := append(append([]byte{}, data...), make([]byte, 9000)...)
	garbage = append(garbage, 'x')
	cases = append(cases,
		tc{"trailing garbage", bytes.NewReader(garbage), "after the end"},
		tc{"trailing archive", bytes.NewReader(append(append([]byte{}, data...), data...)), "after the end"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := Extract(context.Background(), c.r, out, RestoreOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was left behind", out)
			}
		})
	}
	// Zero padding after the end marker is fine.
	padded := append(append([]byte{}, data...), make([]byte, 10240)...)
	if _, err := Check(context.Background(), bytes.NewReader(padded), nil, nil); err != nil {
		t.Error(err)
	}
	// An existing target directory stays as it was.
	out := t.TempDir()
	before := snapshot(t, out)
	if _, err := Extract(context.Background(), bytes.NewReader(data[:n/2]), out, RestoreOptions{}); err == nil {
		t.Fatal("truncated stream accepted")
	}
	if after := snapshot(t, out); after != before {
		t.Errorf("target changed:\n%s", after)
	}
}

// endless is a stream of zero bytes that never ends, counting what was read.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.n += int64(len(p))
	return len(p), nil
}

// A PAX header or GNU long name claiming to be huge is read only up to
// archive/tar's 1 MiB limit: memory stays bounded on hostile input.
func TestHugeMetaHeaders(t *testing.T) {
	for _, typ := range []byte{'x', 'L', 'K'} {
		src := &endless{}
		r := io.MultiReader(bytes.NewReader(rawBlock("meta", typ, 1<<40, "", typ != 'x')), src)
		_, err := Check(context.Background(), r, nil, nil)
		if err == nil {
			t.Fatalf("%c: accepted", typ)
		}
		if src.n > 2<<20 {
			t.Errorf("%c: read %d bytes before refusing (%v)", typ, src.n, err)
		}
	}
}

// An entry met twice (tar appends) replaces the earlier one, whatever it
// was but a directory; a directory met twice is merged.
func TestAppendedEntriesReplace(t *testing.T) {
	file := func(name, body string) raw { return raw{name: name, typ: '0', body: body} }
	data := rawTar(
		file("f", "old"), file("f", "new"),
		raw{name: "s", typ: '2', link: "elsewhere"}, file("s", "file now"),
		file("l", "was a file"), raw{name: "l", typ: '2', link: "f"},
		file("d", "was a file"), raw{name: "d/", typ: '5'}, file("d/in", "1"),
		raw{name: "d/", typ: '5'}, file("d/in2", "2"),
		file("h", "was a file"), raw{name: "h", typ: '1', link: "f"},
	)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(snapshot(t, out), out, "")
	want := ` drwxr-xr-x
/d drw-r--r--
/d/in -rw-r--r-- "1"
/d/in2 -rw-r--r-- "2"
/f -rw-r--r-- "new"
/h -rw-r--r-- "new"
/l Lrwxrwxrwx -> f
/s -rw-r--r-- "file now"
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
