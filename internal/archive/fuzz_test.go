package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "d/e"), 0o755)
	os.WriteFile(filepath.Join(dir, "d/f"), []byte("content"), 0o644)
	os.Link(filepath.Join(dir, "d/f"), filepath.Join(dir, "d/e/h"))
	os.Symlink("../f", filepath.Join(dir, "d/e/s"))
	var buf bytes.Buffer
	if _, err := Pack(context.Background(), &buf, []string{filepath.Join(dir, "d")}, PackOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	file := func(name, body string) raw { return raw{name: name, typ: '0', body: body} }
	for _, seed := range [][]byte{
		rawTar(file("/abs", "x")),
		rawTar(file("../up", "x")),
		rawTar(raw{name: "l", typ: '2', link: "../outside"}, file("l/x", "x")),
		rawTar(raw{name: "l", typ: '2', link: "/"}, raw{name: "l/", typ: '5'}, file("l/x", "x")),
		rawTar(file("f", "x"), raw{name: "h", typ: '1', link: "../outside/secret"}),
		rawTar(raw{name: "h", typ: '1', link: "f"}, file("f", "x")),
		rawTar(raw{name: "sp", typ: 'S', gnu: true}),
		rawTar(raw{name: "sp", typ: '0', body: "hello", pax: map[string]string{"GNU.sparse.size": "5", "GNU.sparse.map": "0,5"}}),
		rawTar(raw{name: "c", typ: '3'}),
		rawTar(raw{name: "big", typ: '0', size: 1 << 60}),
		rawTar(raw{name: "x/", typ: '5'}, file("x", "y")),
		rawTar(file("a", "1"), file("a", "2"), raw{name: "a", typ: '2', link: "a"}),
		rawTar(raw{name: "p", typ: '0', body: "x", pax: map[string]string{"SCHILY.xattr.user.a": "v", "mtime": "1.5"}}),
		rawTar(raw{name: "./", typ: '5'}, file("./x", "y")),
		rawTar(raw{name: "GNUSparseFile.0/sp", typ: '0', body: string(padded("2\n0\n2\n8192\n3\n")) + "hiend",
			pax: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sp", "GNU.sparse.realsize": "9000"}}),
		rawTar(file("f", "x"), raw{name: "g", typ: 'g', body: paxRecord(damagedPath, "f") + paxRecord(damagedReason, "read error")}),
	} {
		f.Add(seed)
	}
}

// FuzzExtract: whatever the stream, Extract does not panic, writes nothing
// outside the target directory, and leaves nothing behind when it fails.
func FuzzExtract(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		out, outside := filepath.Join(base, "out"), filepath.Join(base, "outside")
		os.Mkdir(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
		before := snapshot(t, outside)
		_, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{})
		if after := snapshot(t, outside); after != before {
			t.Fatalf("outside changed:\n%s", after)
		}
		ents, _ := os.ReadDir(base)
		if err != nil {
			if len(ents) != 1 {
				t.Fatalf("failed (%v) and left %v", err, ents)
			}
			return
		}
		if len(ents) > 2 {
			t.Fatalf("wrote beside the target: %v", ents)
		}
		staged, _ := filepath.Glob(filepath.Join(out, stagingPrefix+"*"))
		if len(staged) > 0 && !strings.Contains(string(data), stagingPrefix) {
			t.Fatalf("staging left: %v", staged)
		}
	})
}

// FuzzList: List and Check do not panic, and a stream Check accepts, List
// accepts too.
func FuzzList(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errList := List(context.Background(), bytes.NewReader(data), io.Discard, nil, nil)
		_, errCheck := Check(context.Background(), bytes.NewReader(data), nil, nil)
		if errCheck == nil && errList != nil {
			t.Fatalf("Check accepts, List says %v", errList)
		}
	})
}
