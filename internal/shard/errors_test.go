package shard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
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
	for _, o := range []SplitOptions{{K: 0, N: 2}, {K: 3, N: 2}, {K: 1, N: 257}, {K: 2, N: 3, BlockSize: 100}, {K: 2, N: 3, BlockSize: 32 << 20}} {
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

// Issue "Trust", item 7: an empty input is refused before anything is
// written, unless asked for.
func TestSplitRefusesEmpty(t *testing.T) {
	var out bytes.Buffer
	if _, _, err := SplitStream(context.Background(), bytes.NewReader(nil), &out, SplitOptions{K: 2, N: 3}); !errors.Is(err, ErrEmpty) || out.Len() != 0 {
		t.Fatalf("empty stream: err %v, %d bytes written", err, out.Len())
	}
	ws := []io.Writer{&out, &out, &out}
	if _, _, err := Split(context.Background(), bytes.NewReader(nil), ws, SplitOptions{K: 2, N: 3}); !errors.Is(err, ErrEmpty) || out.Len() != 0 {
		t.Fatalf("empty files: err %v, %d bytes written", err, out.Len())
	}
	if _, tr, err := SplitStream(context.Background(), bytes.NewReader(nil), &out, SplitOptions{K: 2, N: 3, AllowEmpty: true}); err != nil || tr.Length != 0 || out.Len() == 0 {
		t.Fatalf("allowed: err %v", err)
	}
}

// Item 18: a stripe that needs more than MaxStripeMemory is refused, with
// a block size that fits; the largest sets at the default block size pass.
func TestSplitMemoryCap(t *testing.T) {
	_, _, err := SplitStream(context.Background(), bytes.NewReader([]byte("x")), io.Discard, SplitOptions{K: 255, N: 256, BlockSize: 16 << 20})
	if err == nil || !strings.Contains(err.Error(), "256 shares of 16777216-byte blocks need 4098 MiB for one stripe, above the limit of 256 MiB; blocks of 524288 bytes fit") {
		t.Fatalf("err = %v", err)
	}
	if bs := FittingBlockSize(256); (SetInfo{N: 256, BlockSize: bs}).StripeMemory() > MaxStripeMemory || (SetInfo{N: 256, BlockSize: 2 * bs}).StripeMemory() <= MaxStripeMemory {
		t.Fatalf("FittingBlockSize(256) = %d", bs)
	}
	for _, o := range []SplitOptions{{K: 255, N: 256}, {K: 4, N: 6, BlockSize: MaxBlockSize}} {
		if _, _, err := SplitStream(context.Background(), bytes.NewReader([]byte("x")), io.Discard, o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
