package shard

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// regen joins the shares of paths and regenerates those of want.
func regen(t *testing.T, paths []string, want ...int) (map[int][]byte, error) {
	t.Helper()
	bufs := map[int]*bytes.Buffer{}
	ws := map[int]io.Writer{}
	for _, i := range want {
		bufs[i] = new(bytes.Buffer)
		ws[i] = bufs[i]
	}
	_, err := Join(context.Background(), sources(paths), io.Discard, JoinOptions{Regenerate: ws})
	out := map[int][]byte{}
	for i, b := range bufs {
		out[i] = b.Bytes()
	}
	return out, err
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A lost share, data or parity, comes back byte for byte from any K of
// the others, whether their blocks or only their checksums are read, and
// around a damaged block; an empty stream's too.
func TestRegenerate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		size, k, n int
		lost       []int
		damage     int // a share whose block 1 is flipped, or -1
	}{
		{5000, 2, 3, []int{1}, -1},
		{5000, 2, 3, []int{2}, -1},
		{0, 2, 3, []int{0}, -1},
		{4000, 2, 5, []int{0, 4}, -1}, // shares 2 and 3 read for their checksums
		{3000, 3, 5, []int{3}, 0},
		{3000, 3, 6, []int{1, 5}, 0}, // data blocks 0 and 1 decoded: 1 into its record
	} {
		data, paths := setup(t, c.size, c.k, c.n)
		if c.damage >= 0 {
			s := load(t, paths[c.damage])
			s.Flip(1, 7)
			save(t, s)
		}
		var kept []string
		for i, p := range paths {
			if !slices.Contains(c.lost, i) {
				kept = append(kept, p)
			}
		}
		got, err := regen(t, kept, c.lost...)
		if err != nil {
			t.Fatalf("%d bytes k=%d n=%d, shares %v lost: %v", len(data), c.k, c.n, c.lost, err)
		}
		for _, i := range c.lost {
			if want := mustRead(t, paths[i]); !bytes.Equal(got[i], want) {
				t.Errorf("%d bytes k=%d n=%d: share %d regenerated is %d bytes unlike the %d split", len(data), c.k, c.n, i, len(got[i]), len(want))
			}
		}
	}
}

// The records the shares read hold are not copied: a checksum that all of
// them forge, of a parity block not read (share 3's, in a join that reads
// the blocks of shares 0 and 1 only), does not make it into the share
// regenerated, which is the original all the same.
func TestRegenerateForgedRecords(t *testing.T) {
	t.Parallel()
	_, paths := setup(t, 3000, 2, 5)
	for _, i := range []int{0, 1, 2, 3} {
		s := load(t, paths[i])
		for st := range s.Stripes() {
			copy(s.Checksum(st, 3), bytes.Repeat([]byte{0xee}, HashSize))
		}
		save(t, s)
	}
	want := mustRead(t, paths[4])
	got, err := regen(t, paths[:4], 4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[4], want) {
		t.Error("a share regenerated beside records that all forge share 3's checksum is not the original")
	}
	if _, err := regen(t, paths, 5); err == nil || !strings.Contains(err.Error(), "cannot regenerate share 5 of a set of 5") {
		t.Errorf("share 5 of 5: %v", err)
	}
	var stream bytes.Buffer
	if _, _, err := SplitStream(context.Background(), bytes.NewReader([]byte("x")), &stream, SplitOptions{K: 1, N: 2, BlockSize: testBlock}); err != nil {
		t.Fatal(err)
	}
	_, err = JoinStream(context.Background(), &stream, io.Discard, JoinOptions{Regenerate: map[int]io.Writer{-1: io.Discard}})
	if err == nil || !strings.Contains(err.Error(), "cannot regenerate share -1 of a set of 2") {
		t.Errorf("share -1 of a share stream: %v", err)
	}
}

// A stripe whose parity is not the code of its data blocks (as a faulty
// client's split could write, every record agreeing on the parity block's
// checksum) joins from its data blocks, but the blocks decoded from the
// parity are refused, one decoded or several at once: neither the stream
// nor a share regenerated gets a byte of the stripe.
func TestRebuiltBlocksHeldToRecords(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		k, n   int
		lost   []int
		forged int // a parity share whose block of stripe 1 is forged
		want   string
	}{
		{2, 3, []int{1}, 2, "blocks [1] rebuilt"},
		{3, 5, []int{0, 1}, 3, "blocks [0 1] rebuilt"},
	} {
		data, paths := setup(t, 20*testBlock*c.k, c.k, c.n)
		f := load(t, paths[c.forged])
		f.Flip(1, 3)
		sum := f.Rehash(1)
		save(t, f)
		for i, p := range paths {
			if i != c.forged {
				s := load(t, p)
				copy(s.Checksum(1, c.forged), sum[:])
				save(t, s)
			}
		}
		join(paths...).mustEqual(t, data)
		var kept []string
		for i, p := range paths {
			if !slices.Contains(c.lost, i) {
				kept = append(kept, p)
			}
		}
		r := join(kept...)
		if r.err == nil || !strings.Contains(r.err.Error(), "stripe 1: "+c.want) {
			t.Errorf("k=%d n=%d, shares %v lost: %v", c.k, c.n, c.lost, r.err)
		}
		if stripe := c.k * testBlock; len(r.out) > stripe || !bytes.Equal(r.out, data[:len(r.out)]) {
			t.Errorf("k=%d n=%d: the join wrote %d bytes of a stream whose stripe 1 is refused", c.k, c.n, len(r.out))
		}
		got, err := regen(t, kept, c.lost...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("k=%d n=%d: regenerating shares %v: %v", c.k, c.n, c.lost, err)
		}
		for _, i := range c.lost {
			if stripe1 := f.Hlen + f.RecordSize(); len(got[i]) > stripe1 {
				t.Errorf("k=%d n=%d: share %d regenerated got %d bytes, past stripe 0's record", c.k, c.n, i, len(got[i]))
			}
		}
	}
}
