package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/bk-backup/bk/internal/shard/sharetest"
)

// memSource is a share held in memory.
type memSource struct {
	name string
	b    []byte
}

func (m *memSource) Name() string { return m.name }

// Open gives a reader that can read at an offset, as a file's, so that
// the shares not needed for their blocks are read for their checksums only.
func (m *memSource) Open(_ context.Context, offset int64) (io.ReadCloser, error) {
	r := bytes.NewReader(m.b)
	_, err := r.Seek(offset, io.SeekStart)
	return seekCloser{r}, err
}

type seekCloser struct{ *bytes.Reader }

func (seekCloser) Close() error { return nil }

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

// TestPropertyDishonest (issue "Trust", "It must show"): any group of
// hosts alters its shares consistently, together: blocks (each colluder's
// record naming the forged checksums), lies in their records about honest
// blocks, and trailers (a length of the same stripe count, resealed). With
// fewer than K such hosts and K honest shares reachable, the exact stream
// comes out; with K or more, the exact stream or a failure that wrote only
// whole stripes of it; never other bytes.
func TestPropertyDishonest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.IntRange(1, 4).Draw(t, "k")
		n := rapid.IntRange(k+1, k+4).Draw(t, "n")
		bs := rapid.SampledFrom([]int{64, 128}).Draw(t, "blocksize")
		size := rapid.IntRange(0, 3000).Draw(t, "size")
		data := randBytes(rapid.Uint64().Draw(t, "seed"), size)
		info, shares := splitMem(t, data, SplitOptions{K: k, N: n, BlockSize: bs})
		perm := rapid.Permutation(rangeN(n)).Draw(t, "order")
		forgers := perm[:rapid.IntRange(0, n-k).Draw(t, "forgers")]
		honest := perm[len(forgers):]
		reachable := append(slices.Clone(forgers), honest[:len(honest)-rapid.IntRange(0, len(honest)-k).Draw(t, "lost")]...)

		altered := forge(t, info, shares, size, forgers, honest)

		check := func(how string, out []byte, err error) {
			switch {
			case err == nil && !bytes.Equal(out, data):
				t.Fatalf("%s: %d forgers of K=%d: wrote %d other bytes with success", how, len(forgers), k, len(out))
			case err != nil && len(forgers) < k:
				t.Fatalf("%s: %d forgers of K=%d stopped the restore: %v", how, len(forgers), k, err)
			case err != nil && (!bytes.HasPrefix(data, out) || len(out)%int(info.StripeSize()) != 0):
				t.Fatalf("%s: failed join wrote %d bytes: not whole stripes of the stream", how, len(out))
			}
		}
		var sources []Source
		for _, i := range reachable {
			sources = append(sources, &memSource{fmt.Sprintf("m%d", i), altered[i]})
		}
		var out bytes.Buffer
		_, err := Join(context.Background(), sources, &out, JoinOptions{})
		check("files", out.Bytes(), err)
		if len(reachable) == n {
			out.Reset()
			_, err := JoinStream(context.Background(), bytes.NewReader(streamOf(t, info, altered)), &out, JoinOptions{})
			check("stream", out.Bytes(), err)
		}
	})
}

// forge has the hosts of forgers alter their shares consistently and
// together, as drawn: blocks (each colluder's record naming the forged
// checksums), lies in their records about honest blocks, and trailers (a
// length of the same stripe count, resealed). It returns the shares, the
// forgers' altered.
func forge(t *rapid.T, info SetInfo, shares [][]byte, size int, forgers, honest []int) [][]byte {
	forged := make([]*sharetest.Share, len(forgers))
	for x, i := range forgers {
		var err error
		if forged[x], err = sharetest.Parse(bytes.Clone(shares[i])); err != nil {
			t.Fatal(err)
		}
	}
	stripes := stripesFor(int64(size), info)
	if len(forged) > 0 {
		for s := range stripes {
			for _, f := range forged {
				if rapid.Bool().Draw(t, fmt.Sprintf("alter %d/%d", s, f.Index)) {
					f.Flip(s, rapid.IntRange(0, info.BlockSize-1).Draw(t, "at"))
					sum := f.Rehash(s)
					for _, g := range forged {
						copy(g.Checksum(s, f.Index), sum[:])
					}
				}
			}
			if rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("lie %d", s)) == 0 {
				lie := honest[rapid.IntRange(0, len(honest)-1).Draw(t, "about")]
				for _, g := range forged {
					g.Checksum(s, lie)[0] ^= 0x5a
				}
			}
		}
		delta := int64(0)
		if stripes > 0 {
			room := stripes*info.StripeSize() - int64(size) // zeros after the stream in its last stripe
			delta = rapid.Int64Range(-min(int64(size)-(stripes-1)*info.StripeSize()-1, 8), min(room, 8)).Draw(t, "delta")
		}
		for _, f := range forged {
			f.SetLength(int64(size) + delta)
		}
	}
	altered := slices.Clone(shares)
	for _, f := range forged {
		altered[f.Index] = f.Data
	}
	return altered
}
