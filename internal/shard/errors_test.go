package shard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

var errBroken = errors.New("broken writer")

// failingWriter fails once n bytes have been written.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errBroken
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSplitWriteErrorStops(t *testing.T) {
	data := randBytes(4, 1<<20)
	for _, n := range []int{0, 100, 50_000, 500_000} {
		_, _, err := SplitStream(context.Background(), bytes.NewReader(data), &failingWriter{n}, SplitOptions{K: 2, N: 3, BlockSize: 4096})
		if !errors.Is(err, errBroken) {
			t.Errorf("writer failing after %d bytes: err = %v", n, err)
		}
	}
}

func TestSplitReadErrorStops(t *testing.T) {
	r := io.MultiReader(bytes.NewReader(randBytes(5, 100_000)), iotestErrReader{})
	if _, _, err := SplitStream(context.Background(), r, io.Discard, SplitOptions{K: 2, N: 3, BlockSize: 4096}); !errors.Is(err, errBroken) {
		t.Fatalf("err = %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBroken }

func TestSplitCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := SplitStream(ctx, &zeros{1 << 30}, io.Discard, SplitOptions{K: 2, N: 3}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestSplitRefusesBadParameters(t *testing.T) {
	for _, o := range []SplitOptions{{K: 0, N: 2}, {K: 2, N: 2}, {K: 1, N: 257}, {K: 2, N: 3, BlockSize: 100}, {K: 2, N: 3, BlockSize: 32 << 20}} {
		if _, _, err := SplitStream(context.Background(), bytes.NewReader(nil), io.Discard, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, _, err := Split(context.Background(), bytes.NewReader(nil), []io.Writer{io.Discard}, SplitOptions{K: 1, N: 2}); err == nil {
		t.Error("1 writer for 2 shares accepted")
	}
}

func TestJoinWriteErrorStops(t *testing.T) {
	data := randBytes(6, 1<<20)
	info, shares := splitMem(t, data, SplitOptions{K: 2, N: 3, BlockSize: 4096})
	var sources []Source
	for i, s := range shares {
		sources = append(sources, &memSource{string(rune('a' + i)), s})
	}
	if _, err := Join(context.Background(), sources, &failingWriter{10_000}, JoinOptions{}); !errors.Is(err, errBroken) {
		t.Fatalf("join: err = %v", err)
	}
	if _, err := JoinStream(context.Background(), bytes.NewReader(streamOf(t, info, shares)), &failingWriter{10_000}, JoinOptions{}); !errors.Is(err, errBroken) {
		t.Fatalf("join stream: err = %v", err)
	}
}

func TestJoinCanceled(t *testing.T) {
	data := randBytes(7, 1<<20)
	_, shares := splitMem(t, data, SplitOptions{K: 2, N: 3, BlockSize: 4096})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Join(ctx, []Source{&memSource{"a", shares[0]}, &memSource{"b", shares[1]}}, io.Discard, JoinOptions{}); err == nil {
		t.Fatal("canceled join succeeded")
	}
}

func TestHeaderAndTrailerForListing(t *testing.T) {
	data := randBytes(8, 10_000)
	info, shares := splitMem(t, data, SplitOptions{K: 3, N: 4, BlockSize: 640, Label: "nightly /home"})
	h, err := ReadHeader(bytes.NewReader(shares[2]))
	if err != nil {
		t.Fatal(err)
	}
	if h.SetInfo != info || h.Index != 2 || h.Label != "nightly /home" {
		t.Fatalf("header %+v, want %+v index 2", h, info)
	}
	tr, err := ReadTrailer(bytes.NewReader(shares[2]), int64(len(shares[2])), h)
	if err != nil || tr.Length != 10_000 || tr.Stripes != 6 {
		t.Fatalf("trailer %+v, %v", tr, err)
	}
	if _, err := ReadTrailer(bytes.NewReader(shares[2]), int64(len(shares[2])-1), h); err == nil {
		t.Fatal("trailer of a truncated share accepted")
	}
	sr, err := NewStreamReader(bytes.NewReader(streamOf(t, info, shares)))
	if err != nil || sr.Info() != info {
		t.Fatalf("stream info %+v, %v", sr.Info(), err)
	}
	if _, err := sr.Trailer(); err == nil {
		t.Fatal("trailer known before the end")
	}
	frames := make([]int, info.N)
	for {
		i, _, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		frames[i]++
	}
	if got, err := sr.Trailer(); err != nil || got != tr {
		t.Fatalf("stream trailer %+v, %v; want %+v", got, err, tr)
	}
	for i, n := range frames {
		if n != 1+6+1 {
			t.Fatalf("share %d: %d frames", i, n)
		}
	}
}
