package push

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestInput: a file and a pipe are read whole and to their end, in reads
// of any size, with raw reads of what is ready and plain ones that wait
// for the rest; what is not a file, as it is.
func TestInput(t *testing.T) {
	t.Parallel()
	want := bytes.Repeat([]byte("share stream "), 100000)
	name := filepath.Join(t.TempDir(), "stream")
	if err := os.WriteFile(name, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := input(f)
	if got := readAll(t, in); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the file's %d", len(got), len(want))
	}
	if fs := in.(*fileStream); fs.plain.Load() {
		t.Fatal("a file was read with plain reads only")
	}
	_ = f.Close()
	if _, err := in.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read of a closed file succeeded")
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		// In pieces, with pauses: some reads find the pipe empty.
		for p := want; len(p) > 0; p = p[min(len(p), 70000):] {
			time.Sleep(time.Millisecond)
			if _, err := w.Write(p[:min(len(p), 70000)]); err != nil {
				break
			}
		}
		_ = w.Close()
	}()
	if got := readAll(t, input(r)); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written to the pipe", len(got), len(want))
	}
	if _, ok := input(r).(io.ReaderAt); ok {
		t.Fatal("a pipe can be read at any offset")
	}
	br := bytes.NewReader(want)
	if in := input(br); in != io.Reader(br) {
		t.Fatalf("input(bytes.Reader) = %T, want it as it is", in)
	}
}

// readAll reads in to its end, in reads of growing sizes.
func readAll(t *testing.T, in io.Reader) []byte {
	t.Helper()
	var got []byte
	for size := 1; ; size = min(size*3+1, 1<<20) {
		p := make([]byte, size)
		n, err := in.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestInputAt: a stream in a file, from where the file's offset stood,
// read at offsets by several readers at once.
func TestInputAt(t *testing.T) {
	t.Parallel()
	file := bytes.Repeat([]byte("0123456789abcdef"), 50000)
	name := filepath.Join(t.TempDir(), "stream")
	if err := os.WriteFile(name, file, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const base = 1000
	if _, err := f.Seek(base, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	want := file[base:]
	at, ok := input(f).(io.ReaderAt)
	if !ok {
		t.Fatal("a file cannot be read at offsets")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for off := g * 7; off < len(want); off += 65536 + g {
				p := make([]byte, min(100000, len(want)-off))
				if n, err := at.ReadAt(p, int64(off)); n != len(p) || err != nil && err != io.EOF {
					t.Errorf("ReadAt at %d: %d bytes, %v", off, n, err)
					return
				}
				if !bytes.Equal(p, want[off:off+len(p)]) {
					t.Errorf("ReadAt at %d: not the stream's bytes there", off)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, err := at.ReadAt(make([]byte, 10), int64(len(want))-4); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt over the end: %d bytes, %v; want 4, EOF", n, err)
	}
	// Reads at offsets leave Read where the file stood.
	if got := readAll(t, at.(io.Reader)); !bytes.Equal(got, want) {
		t.Fatalf("Read after ReadAt: %d bytes, want the stream's %d", len(got), len(want))
	}
}
