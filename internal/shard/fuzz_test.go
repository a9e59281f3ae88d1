package shard

import (
	"bytes"
	"context"
	"io"
	"testing"
)

func fuzzSeeds(f *testing.F) (stream []byte, shares [][]byte) {
	data := randBytes(1, 700)
	info, shares := splitMem(f, data, SplitOptions{K: 2, N: 3, BlockSize: 64, Label: "seed"})
	return streamOf(f, info, shares), shares
}

// FuzzStreamReader: any input parses without panic, and a stream that
// parses to its end re-encodes to the same bytes.
func FuzzStreamReader(f *testing.F) {
	stream, _ := fuzzSeeds(f)
	f.Add(stream)
	f.Add(stream[:len(stream)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, err := NewStreamReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b bytes.Buffer
		sw, err := newStreamWriter(&b, sr.hdr)
		if err != nil {
			t.Fatal(err)
		}
		for {
			index, p, err := sr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			if err := sw.WriteFrame(index, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), data) {
			t.Fatalf("re-encoded stream differs:\n%x\n%x", b.Bytes(), data)
		}
		_, _ = sr.Trailer()
	})
}

// FuzzShareFile: a share file's header and trailer parse without panic and
// re-encode to the same bytes; its records are raw bytes in between.
func FuzzShareFile(f *testing.F) {
	_, shares := fuzzSeeds(f)
	for _, s := range shares {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if enc := h.Marshal(); !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", enc, data[:len(enc)])
		}
		rest := data[h.Size():]
		if len(rest) < TrailerSize || (len(rest)-TrailerSize)%h.RecordSize() != 0 {
			return
		}
		tb := rest[len(rest)-TrailerSize:]
		tr, err := ParseTrailer(tb, h.SetInfo)
		if err != nil {
			return
		}
		if enc := tr.Marshal(h.SetID); !bytes.Equal(enc, tb) {
			t.Fatalf("re-encoded trailer differs:\n%x\n%x", enc, tb)
		}
		if _, err := ReadTrailer(bytes.NewReader(data), int64(len(data)), h); err != nil && tr.Stripes == int64(len(rest)-TrailerSize)/int64(h.RecordSize()) {
			t.Fatalf("ReadTrailer: %v", err)
		}
	})
}

// FuzzJoin: joining any share stream, or any share file with two good
// shares of its set, never panics, and whatever it writes is whole stripes.
func FuzzJoin(f *testing.F) {
	stream, shares := fuzzSeeds(f)
	f.Add(stream, shares[0])
	f.Fuzz(func(t *testing.T, stream, share []byte) {
		_, _ = JoinStream(context.Background(), bytes.NewReader(stream), io.Discard, JoinOptions{})
		_, _ = Join(context.Background(), []Source{&memSource{"fuzz", share}, &memSource{"s1", shares[1]}, &memSource{"s2", shares[2]}}, io.Discard, JoinOptions{})
	})
}
