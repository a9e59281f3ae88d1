package index

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/seal"
)

// packTree packs a small tree (files in two chunks of the catalogue,
// a symlink, a hard link, a file bigger than a zstd frame) into a
// seekable zstd stream with its catalogue, as bk-pack does.
func packTree(t *testing.T, files, perChunk int) (stream []byte, tarStream []byte) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range files {
		sub := filepath.Join(src, "d"+string(rune('a'+i%3)))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%03d.txt", i)), bytes.Repeat([]byte{byte(i)}, 100+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, seal.ChunkSize+12345)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("big", filepath.Join(src, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "big"), filepath.Join(src, "hard")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sw, err := seal.CompressSeekable(&buf, 3)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(sw)
	if err != nil {
		t.Fatal(err)
	}
	w.perChunk = perChunk
	var plain bytes.Buffer
	opts := archive.PackOptions{Entry: func(h *tar.Header, off int64) error {
		if h == nil {
			return w.End(off)
		}
		return w.Add(h, off)
	}}
	_, err = archive.Pack(context.Background(), io.MultiWriter(sw, &plain), []string{src}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Finish(w.Trailer); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), plain.Bytes()
}

func TestCatalogueMatchesTarStream(t *testing.T) {
	t.Parallel()
	stream, plain := packTree(t, 40, 30)
	r := bytes.NewReader(stream)
	st, err := seal.ReadSeekTable(r, int64(len(stream)))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := seal.NewFrameReader(r, st)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	if fr.Size() != int64(len(plain)) {
		t.Fatalf("frames hold %d bytes of data, the tar stream has %d", fr.Size(), len(plain))
	}
	c, err := Open(r, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Chunks) != 2 {
		t.Errorf("%d chunks, want 2", len(c.Chunks))
	}
	// Every entry of the tar stream, in order, at its offset, and nothing
	// between them.
	tr := tar.NewReader(bytes.NewReader(plain))
	next := int64(0)
	n := int64(0)
	err = c.Each(func(e *Entry) error {
		h, err := tr.Next()
		if err != nil {
			return err
		}
		if e.Offset != next {
			t.Errorf("%s at %d, want %d", e.Name, e.Offset, next)
		}
		next = e.Offset + e.Length
		if want := filepath.Clean(h.Name); e.Name != want || e.Type != h.Typeflag || e.Size != h.Size || e.Link != h.Linkname ||
			!e.ModTime.Equal(h.ModTime) || e.Mode != h.Mode || e.Uid != h.Uid || e.Gname != h.Gname {
			t.Errorf("entry %+v, tar header %+v", e, h)
		}
		// The entry read alone at its offset is the same.
		one := tar.NewReader(io.NewSectionReader(fr, e.Offset, e.Length))
		h1, err := one.Next()
		if err != nil || h1.Name != h.Name {
			t.Errorf("%s read at its offset: %v, %v", e.Name, h1, err)
		}
		a, _ := io.ReadAll(tr)
		b, _ := io.ReadAll(one)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: content read at its offset differs", e.Name)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != c.Entries || next != c.End || c.End != int64(len(plain))-1024 {
		t.Errorf("%d entries (index: %d), ending at %d (index: %d, tar: %d)", n, c.Entries, next, c.End, len(plain)-1024)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("tar stream has entries after the catalogue's: %v", err)
	}

	// The real zstd reads the stream as the tar stream.
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not on PATH (CI installs it)")
	}
	cmd := exec.Command("zstd", "-d", "-q")
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, plain) {
		t.Errorf("zstd -d: %v, %d bytes, want the %d of the tar stream", err, len(out), len(plain))
	}
}

func TestDamagedCatalogueFailsLoudly(t *testing.T) {
	t.Parallel()
	stream, _ := packTree(t, 20, 8)
	open := func(b []byte) error {
		r := bytes.NewReader(b)
		st, err := seal.ReadSeekTable(r, int64(len(b)))
		if err != nil {
			return err
		}
		c, err := Open(r, st)
		if err != nil {
			return err
		}
		return c.Each(func(*Entry) error { return nil })
	}
	if err := open(stream); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(stream)
	st, _ := seal.ReadSeekTable(r, int64(len(stream)))
	c, _ := Open(r, st)
	chunkAt := st.Offsets[c.Chunks[0].Frame]
	indexAt := st.Offsets[len(st.Frames)-1]
	for _, tc := range []struct {
		name string
		at   int64
		want string
	}{
		{"chunk payload", chunkAt + 20, "catalogue chunk 0"},
		{"chunk tag", chunkAt + 9, "catalogue chunk 0: not a chunk"},
		{"index count", indexAt + 13, "damaged"},
		{"seek table entry", int64(len(stream)) - 20, "damaged"},
		{"seek table footer", int64(len(stream)) - 1, "no seek table"},
	} {
		b := bytes.Clone(stream)
		b[tc.at] ^= 0x41
		err := open(b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s damaged: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if err := open(stream[:len(stream)-5]); !errors.Is(err, seal.ErrNoSeekTable) {
		t.Errorf("cut short: %v", err)
	}
}
