package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bk-backup/bk/internal/archive/archivetest"
)

// allocated is the space a file takes on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// mkSparse makes a file of size bytes with data at the given offsets and
// holes elsewhere, and reports whether the file system made holes.
func mkSparse(t *testing.T, path string, size int64, data map[int64]string) bool {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, s := range data {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	return allocated(t, path) < size
}

// Issue 8 item 16: a file with holes is packed from its data regions only
// (found with SEEK_DATA/SEEK_HOLE) as a GNU sparse 1.0 entry, and restored
// with its holes, by bk and by GNU tar.
func TestSparseRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	const size = 16 << 20
	cases := map[string]map[int64]string{
		"hole-at-end":   {0: "head", 1 << 20: "middle"},
		"data-at-end":   {8 << 20: "x", size - 3: "end"},
		"all-hole":      {},
		"unaligned-end": {4096: strings.Repeat("y", 10000)},
	}
	for name, data := range cases {
		if !mkSparse(t, filepath.Join(src, name), size, data) {
			t.Skip("the file system makes no holes")
		}
	}
	t.Chdir(filepath.Dir(src))
	archive, st := pack(t, []string{"src"}, PackOptions{})
	if st.Files != int64(len(cases)) || st.Bytes != size*int64(len(cases)) {
		t.Errorf("stats %+v", st)
	}
	if len(archive) > 1<<20 {
		t.Errorf("archive of %d sparse files is %d bytes: holes were stored", len(cases), len(archive))
	}
	if !bytes.Contains(archive, []byte("GNU.sparse.major=1")) {
		t.Error("no GNU sparse 1.0 records")
	}

	var list bytes.Buffer
	if _, err := List(context.Background(), bytes.NewReader(archive), &list, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list.String(), " 16777216 ") || strings.Contains(list.String(), "GNUSparseFile") {
		t.Errorf("listing:\n%s", list.String())
	}

	out := t.TempDir()
	if _, err := Extract(context.Background(), bytes.NewReader(archive), out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	gnu := t.TempDir()
	cmd := exec.Command("tar", "-x", "-f", "-", "-C", gnu)
	cmd.Stdin = bytes.NewReader(archive)
	if outb, err := cmd.CombinedOutput(); err != nil || len(outb) > 0 {
		t.Fatalf("GNU tar: %v %s", err, outb)
	}
	for _, dir := range []string{out, gnu} {
		sameTree(t, "src", filepath.Join(dir, "src"), archivetest.Options{})
		for name := range cases {
			if a := allocated(t, filepath.Join(dir, "src", name)); a > 1<<20 {
				t.Errorf("%s: %s restored with %d bytes allocated", dir, name, a)
			}
		}
	}
}

// Runs of zeros in a file stored whole are restored as holes too, in whole
// 4 KiB blocks, whatever the sizes of the reads; the content is exact.
func TestHoleWriter(t *testing.T) {
	content := make([]byte, 1<<20+123)
	copy(content[5000:], "data in the second block")
	copy(content[600<<10:], "more")
	content[len(content)-1] = 1
	for _, chunk := range []int{1, 100, 4096, 5000, 1 << 20, len(content)} {
		path := filepath.Join(t.TempDir(), "f")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := &holeWriter{f: f}
		for p := content; len(p) > 0; {
			n := min(chunk, len(p))
			if _, err := w.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, content) {
			t.Fatalf("chunk %d: content differs", chunk)
		}
		if a := allocated(t, path); a > 64<<10 {
			t.Errorf("chunk %d: %d bytes allocated for 3 blocks of data", chunk, a)
		}
	}
	// A file that ends in zeros still has its full size.
	path := filepath.Join(t.TempDir(), "z")
	f, _ := os.Create(path)
	w := &holeWriter{f: f}
	io.Copy(w, bytes.NewReader(make([]byte, 10000)))
	w.Close()
	f.Close()
	if fi, _ := os.Stat(path); fi.Size() != 10000 {
		t.Errorf("size %d", fi.Size())
	}
}

// writeAll, the whole content at once, makes the same file as Write and
// Close: the same bytes, size and holes, for content with and without
// blocks of zeros, ending in zeros or not.
func TestHoleWriterWriteAll(t *testing.T) {
	dataBlock := bytes.Repeat([]byte{7}, holeBlock)
	zeros := make([]byte, 3*holeBlock)
	cases := map[string][]byte{
		"empty":           {},
		"small":           []byte("hello"),
		"zeros only":      make([]byte, 100),
		"data, zero tail": append(append([]byte{}, dataBlock...), make([]byte, 100)...),
		"data blocks":     bytes.Repeat(dataBlock, 5),
		"a hole inside":   append(append(append([]byte{}, dataBlock...), zeros...), "end"...),
		"ends in a hole":  append(append([]byte{}, dataBlock...), zeros...),
	}
	for name, content := range cases {
		var files [2]string
		for i := range files {
			files[i] = filepath.Join(t.TempDir(), "f")
			f, err := os.Create(files[i])
			if err != nil {
				t.Fatal(err)
			}
			w := &holeWriter{f: f}
			if i == 0 {
				_, err = w.Write(content)
				if err == nil {
					err = w.Close()
				}
			} else {
				err = w.writeAll(content)
			}
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		got, _ := os.ReadFile(files[1])
		if !bytes.Equal(got, content) {
			t.Errorf("%s: writeAll made %d bytes, not the content", name, len(got))
		}
		if a, b := allocated(t, files[0]), allocated(t, files[1]); a != b {
			t.Errorf("%s: %d bytes allocated, not %d", name, b, a)
		}
	}
}

// A GNU sparse 1.0 entry written by hand from docs/FORMAT.md: a map of two
// regions (and the final empty one of a file ending in a hole), then data.
func TestSparseFromFormatDoc(t *testing.T) {
	mp := padded("3\n0\n2\n8192\n3\n20000\n0\n")
	data := rawTar(raw{name: "GNUSparseFile.0/sp", typ: '0', body: string(mp) + "hi" + "end",
		pax: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sp", "GNU.sparse.realsize": "20000"}})
	out := t.TempDir()
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 20000)
	copy(want, "hi")
	copy(want[8192:], "end")
	if got, _ := os.ReadFile(filepath.Join(out, "sp")); !bytes.Equal(got, want) {
		t.Errorf("restored %d bytes, not the file the map describes", len(got))
	}
}

// A read error in a data region of a sparse file marks it damaged, with
// the offset in the file where reading stopped, as for any other file.
func TestSparseReadErrorMarksDamaged(t *testing.T) {
	t.Chdir(t.TempDir())
	os.Mkdir("src", 0o755)
	data := strings.Repeat("d", 300<<10)
	if !mkSparse(t, "src/sp", 8<<20, map[int64]string{4 << 20: data}) {
		t.Skip("the file system makes no holes")
	}
	failReads(t, "src/sp", 100<<10)
	var warnings []string
	_, st := pack(t, []string{"src"}, PackOptions{Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }})
	want := fmt.Sprintf("src/sp: read error after %d of %d bytes: input/output error; stored with zeros for the rest, marked damaged", 4<<20+100<<10, 8<<20)
	if st.Damaged != 1 || len(warnings) != 1 || warnings[0] != want {
		t.Errorf("stats %+v, warnings %q", st, warnings)
	}
}
