package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"pgregory.net/rapid"
)

// memSource is a share held in memory.
type memSource struct {
	name string
	b    []byte
}

func (m *memSource) Name() string { return m.name }

func (m *memSource) Open(_ context.Context, offset int64) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.b[min(offset, int64(len(m.b))):])), nil
}

// fataler is what the helpers need of a *testing.T or a *rapid.T.
type fataler interface{ Fatal(args ...any) }

// splitMem splits data into N shares in memory.
func splitMem(t fataler, data []byte, opts SplitOptions) (SetInfo, [][]byte) {
	bufs := make([]*bytes.Buffer, opts.N)
	ws := make([]io.Writer, opts.N)
	for i := range bufs {
		bufs[i] = new(bytes.Buffer)
		ws[i] = bufs[i]
	}
	opts.AllowEmpty = true
	info, _, err := Split(context.Background(), bytes.NewReader(data), ws, opts)
	if err != nil {
		t.Fatal(err)
	}
	shares := make([][]byte, opts.N)
	for i, b := range bufs {
		shares[i] = b.Bytes()
	}
	return info, shares
}

// streamOf builds the share stream of complete shares, the way bk-split
// orders its frames.
func streamOf(t fataler, info SetInfo, shares [][]byte) []byte {
	var b bytes.Buffer
	sw, err := NewStreamWriter(&b, info)
	if err != nil {
		t.Fatal(err)
	}
	hdr := Header{SetInfo: info}.Size()
	for i, s := range shares {
		_ = sw.WriteFrame(i, s[:hdr])
	}
	units := (len(shares[0]) - hdr - TrailerSize) / info.RecordSize()
	for u := range units {
		for i, s := range shares {
			off := hdr + u*info.RecordSize()
			_ = sw.WriteFrame(i, s[off:off+info.RecordSize()])
		}
	}
	for i, s := range shares {
		_ = sw.WriteFrame(i, s[len(s)-TrailerSize:])
	}
	_ = sw.Close()
	return b.Bytes()
}

// TestPropertyJoin: up to N-K shares lost or damaged in any stripe still
// rebuild the exact stream, from share files and from a share stream; one
// more damaged block in a stripe fails cleanly with a verified prefix.
func TestPropertyJoin(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.IntRange(1, 5).Draw(t, "k")
		n := rapid.IntRange(k+1, k+4).Draw(t, "n")
		bs := rapid.SampledFrom([]int{64, 128, 192}).Draw(t, "blocksize")
		size := rapid.IntRange(0, 5000).Draw(t, "size")
		data := randBytes(rapid.Uint64().Draw(t, "seed"), size)
		info, shares := splitMem(t, data, SplitOptions{K: k, N: n, BlockSize: bs})
		hdr := Header{SetInfo: info}.Size()
		stripes := int(stripesFor(int64(size), info))

		perm := rapid.Permutation(rangeN(n)).Draw(t, "order")
		lost := rapid.IntRange(0, n-k).Draw(t, "lost")
		present := perm[lost:]
		unit := func(s int) (int, int) {
			if s == stripes {
				return hdr + s*info.RecordSize(), TrailerSize
			}
			return hdr + s*info.RecordSize(), info.RecordSize()
		}
		damaged := make([][]byte, n)
		for i := range shares {
			damaged[i] = bytes.Clone(shares[i])
		}
		for s := 0; s <= stripes; s++ {
			hit := rapid.IntRange(0, n-k-lost).Draw(t, fmt.Sprintf("hit%d", s))
			for _, i := range rapid.Permutation(present).Draw(t, fmt.Sprintf("which%d", s))[:hit] {
				off, length := unit(s)
				damaged[i][off+rapid.IntRange(0, length-1).Draw(t, "at")] ^= byte(rapid.IntRange(1, 255).Draw(t, "x"))
			}
		}
		var sources []Source
		for _, i := range present {
			sources = append(sources, &memSource{fmt.Sprintf("m%d", i), damaged[i]})
		}
		var out bytes.Buffer
		if _, err := Join(context.Background(), sources, &out, JoinOptions{}); err != nil {
			t.Fatalf("join: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("join: output differs")
		}
		if lost == 0 {
			out.Reset()
			if _, err := JoinStream(context.Background(), bytes.NewReader(streamOf(t, info, damaged)), &out, JoinOptions{}); err != nil {
				t.Fatalf("join stream: %v", err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("join stream: output differs")
			}
		}

		if stripes == 0 {
			return
		}
		// One block too many damaged in one stripe.
		s := rapid.IntRange(0, stripes-1).Draw(t, "failstripe")
		sources = sources[:0]
		for x, i := range present {
			b := bytes.Clone(shares[i])
			if x <= n-k-lost {
				off, _ := unit(s)
				b[off+rapid.IntRange(0, bs-1).Draw(t, "failat")] ^= 1
			}
			sources = append(sources, &memSource{fmt.Sprintf("m%d", i), b})
		}
		out.Reset()
		if _, err := Join(context.Background(), sources, &out, JoinOptions{}); err == nil {
			t.Fatal("join succeeded with K-1 good blocks in a stripe")
		}
		if !bytes.HasPrefix(data, out.Bytes()) || out.Len() > s*int(info.StripeSize()) || out.Len()%int(info.StripeSize()) != 0 {
			t.Fatalf("failed join wrote %d bytes: not whole stripes before stripe %d", out.Len(), s)
		}
	})
}

func rangeN(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}
