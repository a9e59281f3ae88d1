package push

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
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
	if nr := in.(*nowaitReader); nr.plain {
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
