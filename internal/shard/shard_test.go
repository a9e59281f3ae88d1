package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// splitFiles splits data into N share files in a temp folder.
func splitFiles(t testing.TB, data []byte, opts SplitOptions) (SetInfo, []string) {
	t.Helper()
	dir := t.TempDir()
	var files []*os.File
	var ws []io.Writer
	var paths []string
	for i := range opts.N {
		p := filepath.Join(dir, fmt.Sprintf("share-%d.bks", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		ws = append(ws, f)
		paths = append(paths, p)
	}
	opts.AllowEmpty = true
	info, _, err := Split(context.Background(), bytes.NewReader(data), ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return info, paths
}

func sources(paths []string) []Source {
	var s []Source
	for _, p := range paths {
		s = append(s, FileSource(p))
	}
	return s
}

func TestRoundTripStream(t *testing.T) {
	for _, size := range []int{0, 1, 63, 64, 1000, 4096, 100_000} {
		for _, kn := range [][2]int{{1, 1}, {3, 3}, {1, 2}, {2, 3}, {3, 5}, {4, 6}, {10, 14}} {
			data := randBytes(uint64(size), size)
			var stream bytes.Buffer
			_, tr, err := SplitStream(context.Background(), bytes.NewReader(data), &stream,
				SplitOptions{K: kn[0], N: kn[1], BlockSize: 128, AllowEmpty: true})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Length != int64(size) {
				t.Fatalf("trailer length %d, want %d", tr.Length, size)
			}
			var out bytes.Buffer
			rep, err := JoinStream(context.Background(), &stream, &out, JoinOptions{Warn: t.Logf})
			if err != nil {
				t.Fatalf("size %d %v: %v", size, kn, err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("size %d %v: output differs", size, kn)
			}
			if len(rep.Missing)+len(rep.Damaged) != 0 {
				t.Fatalf("size %d %v: report %+v", size, kn, rep)
			}
		}
	}
}

func TestRoundTripFiles(t *testing.T) {
	data := randBytes(7, 50_000)
	_, paths := splitFiles(t, data, SplitOptions{K: 3, N: 5, BlockSize: 256})
	for a := range 5 {
		for b := a + 1; b < 5; b++ {
			var srcs []string
			for i, p := range paths {
				if i != a && i != b {
					srcs = append(srcs, p)
				}
			}
			var out bytes.Buffer
			rep, err := Join(context.Background(), sources(srcs), &out, JoinOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("without %d,%d: output differs", a, b)
			}
			if len(rep.Missing) != 2 {
				t.Fatalf("without %d,%d: missing %v", a, b, rep.Missing)
			}
		}
	}
}

// A set split again with its own ID gives its shares back byte for byte.
func TestSplitAgainSameShares(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	split := func(id [16]byte) ([]*bytes.Buffer, SetInfo) {
		bufs := make([]*bytes.Buffer, 3)
		ws := make([]io.Writer, 3)
		for i := range bufs {
			bufs[i] = &bytes.Buffer{}
			ws[i] = bufs[i]
		}
		info, _, err := Split(context.Background(), bytes.NewReader(data), ws, SplitOptions{K: 2, N: 3, BlockSize: 1024, Label: "x", SetID: id})
		if err != nil {
			t.Fatal(err)
		}
		return bufs, info
	}
	first, info := split([16]byte{})
	again, info2 := split(info.SetID)
	if info2 != info {
		t.Fatalf("set %+v, split again %+v", info, info2)
	}
	for i := range first {
		if !bytes.Equal(first[i].Bytes(), again[i].Bytes()) {
			t.Errorf("share %d differs when split again with its set ID", i)
		}
	}
}

// A reader over the stream in a file takes one share, skipping the
// others' payloads, and ends, fails and agrees on the trailer as the
// reader of the whole stream does.
func TestStreamReaderAtTakesOneShare(t *testing.T) {
	data := randBytes(11, 100_000)
	var stream bytes.Buffer
	info, _, err := SplitStream(context.Background(), bytes.NewReader(data), &stream, SplitOptions{K: 2, N: 3, BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	b := stream.Bytes()
	whole := map[int][]byte{}
	sr, err := NewStreamReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for {
		i, p, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		whole[i] = append(whole[i], p...)
	}
	want, err := sr.Trailer()
	if err != nil {
		t.Fatal(err)
	}
	for share := range info.N {
		ra := &countingReaderAt{r: bytes.NewReader(b)}
		got, tr, err := oneShare(ra, share)
		if err != nil {
			t.Fatalf("share %d: %v", share, err)
		}
		if !bytes.Equal(got, whole[share]) {
			t.Fatalf("share %d: %d bytes differ from the %d the stream holds", share, len(got), len(whole[share]))
		}
		if tr != want {
			t.Fatalf("share %d: trailer %+v, want %+v", share, tr, want)
		}
		// The share, the frame headers and the trailers: not the others.
		if limit := int64(len(got) + len(b)/50); ra.n > limit {
			t.Fatalf("share %d: read %d bytes of a %d-byte stream for a %d-byte share", share, ra.n, len(b), len(got))
		}
		// NextAt reads no payload but the trailers, and says where each is.
		ra = &countingReaderAt{r: bytes.NewReader(b)}
		got, tr, err = oneShareAt(ra, share, b)
		if err != nil || !bytes.Equal(got, whole[share]) || tr != want {
			t.Fatalf("share %d at offsets: %d bytes (of %d), trailer %+v (want %+v), %v", share, len(got), len(whole[share]), tr, want, err)
		}
		if limit := int64(len(b) / 50); ra.n > limit {
			t.Fatalf("share %d at offsets: read %d bytes of a %d-byte stream", share, ra.n, len(b))
		}
	}
	// Cut inside a payload that is skipped, and after the last trailer.
	hdr := Header{SetInfo: info}.Size()
	for _, cut := range []int{hdr + info.N*(frameHeaderSize+hdr) + 2*(frameHeaderSize+info.RecordSize()) + 100, len(b) - 3} {
		if _, _, err := oneShare(bytes.NewReader(b[:cut]), 0); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: got %v, want ErrTruncated", cut, len(b), err)
		}
		if _, _, err := oneShareAt(bytes.NewReader(b[:cut]), 0, b); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d, at offsets: got %v, want ErrTruncated", cut, len(b), err)
		}
	}
}

// oneShare reads share from the stream r holds.
func oneShare(r io.ReaderAt, share int) ([]byte, Trailer, error) {
	sr, err := NewStreamReaderAt(r)
	if err != nil {
		return nil, Trailer{}, err
	}
	var got []byte
	for {
		i, p, err := sr.NextInto(func(index, length int) []byte {
			if index != share {
				return nil
			}
			return make([]byte, length)
		})
		if err == io.EOF {
			tr, err := sr.Trailer()
			return got, tr, err
		}
		if err != nil {
			return nil, Trailer{}, err
		}
		if i == share {
			got = append(got, p...)
		} else if p != nil && len(p) != TrailerSize {
			return nil, Trailer{}, fmt.Errorf("frame of share %d read, not skipped", i)
		}
	}
}

// oneShareAt is oneShare by NextAt, the share's payloads taken from
// stream at the offsets it gives.
func oneShareAt(r io.ReaderAt, share int, stream []byte) ([]byte, Trailer, error) {
	sr, err := NewStreamReaderAt(r)
	if err != nil {
		return nil, Trailer{}, err
	}
	var got []byte
	for {
		i, length, off, p, err := sr.NextAt()
		if err == io.EOF {
			tr, err := sr.Trailer()
			return got, tr, err
		}
		if err != nil {
			return nil, Trailer{}, err
		}
		if (p != nil) != (length == TrailerSize) || p != nil && !bytes.Equal(p, stream[off:off+int64(length)]) {
			return nil, Trailer{}, fmt.Errorf("frame of share %d at %d: payload %d bytes", i, off, len(p))
		}
		if i == share {
			got = append(got, stream[off:off+int64(length)]...)
		}
	}
}

type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}
