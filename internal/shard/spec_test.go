package shard

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/bk-backup/bk/internal/blake3"
)

// This file decodes shares the way section 3 of docs/FORMAT.md describes them,
// without the package's own code, so that the document is known to be
// enough to write a decoder.

// gfMul multiplies in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1.
func gfMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		carry := a & 0x80
		a <<= 1
		if carry != 0 {
			a ^= 0x1d
		}
		b >>= 1
	}
	return p
}

func gfPow(a byte, n int) byte {
	r := byte(1)
	for range n {
		r = gfMul(r, a)
	}
	return r
}

func gfInv(a byte) byte {
	for b := 1; b < 256; b++ {
		if gfMul(a, byte(b)) == 1 {
			return byte(b)
		}
	}
	panic("no inverse")
}

// invert returns the inverse of square matrix m by Gauss-Jordan elimination.
func invert(m [][]byte) [][]byte {
	n := len(m)
	a := make([][]byte, n)
	for i := range m {
		a[i] = append(append([]byte{}, m[i]...), make([]byte, n)...)
		a[i][n+i] = 1
	}
	for c := range n {
		p := c
		for a[p][c] == 0 {
			p++
		}
		a[c], a[p] = a[p], a[c]
		inv := gfInv(a[c][c])
		for k := range a[c] {
			a[c][k] = gfMul(a[c][k], inv)
		}
		for r := range n {
			if r != c && a[r][c] != 0 {
				f := a[r][c]
				for k := range a[r] {
					a[r][k] ^= gfMul(f, a[c][k])
				}
			}
		}
	}
	out := make([][]byte, n)
	for i := range a {
		out[i] = a[i][n:]
	}
	return out
}

// encodingMatrix is the N×K matrix of the format: Vandermonde rows
// V[r][c] = r^c, times the inverse of its top K×K square.
func encodingMatrix(k, n int) [][]byte {
	v := make([][]byte, n)
	for r := range v {
		v[r] = make([]byte, k)
		for c := range v[r] {
			v[r][c] = gfPow(byte(r), c)
		}
	}
	top := invert(v[:k])
	e := make([][]byte, n)
	for r := range e {
		e[r] = make([]byte, k)
		for c := range k {
			for x := range k {
				e[r][c] ^= gfMul(v[r][x], top[x][c])
			}
		}
	}
	return e
}

func TestFormatAsDocumented(t *testing.T) {
	const k, n, bs = 3, 5, 64
	data := randBytes(9, 1000)
	_, shares := splitMem(t, data, SplitOptions{K: k, N: n, BlockSize: bs, Label: "doc"})
	e := encodingMatrix(k, n)
	be := binary.BigEndian

	for i, s := range shares {
		if string(s[:8]) != "bk-share" || s[8] != 1 || s[9] != 1 {
			t.Fatalf("share %d: magic, version or hash algorithm", i)
		}
		h := int(be.Uint16(s[10:]))
		if sum := blake3.Sum256(s[:h-32]); !bytes.Equal(sum[:], s[h-32:h]) {
			t.Fatalf("share %d: header checksum", i)
		}
		if int(be.Uint16(s[28:])) != k || int(be.Uint16(s[30:])) != n || int(be.Uint16(s[32:])) != i || be.Uint32(s[34:]) != bs {
			t.Fatalf("share %d: K, N, index or block size", i)
		}
		if be.Uint16(s[38:]) != 1 || be.Uint16(s[40:]) != 3 || string(s[42:45]) != "doc" || h != 45+32 {
			t.Fatalf("share %d: label field", i)
		}
	}
	id := shares[0][12:28]
	h := int(be.Uint16(shares[0][10:]))
	rec := bs + n*32
	tr := shares[0][len(shares[0])-104:]
	stripes := int(be.Uint64(tr[24:]))
	length := int(be.Uint64(tr[32:]))
	if string(tr[:8]) != "bk-trail" || !bytes.Equal(tr[8:24], id) || length != len(data) || stripes != (len(data)+k*bs-1)/(k*bs) {
		t.Fatalf("trailer: %q stripes %d length %d", tr[:8], stripes, length)
	}
	if sum := blake3.Sum256(tr[:72]); !bytes.Equal(sum[:], tr[72:]) {
		t.Fatal("trailer checksum")
	}
	if len(shares[0]) != h+stripes*rec+104 {
		t.Fatal("share length")
	}

	var out []byte
	stream := blake3.New()
	for st := range stripes {
		blocks := make([][]byte, n)
		for i := range n {
			blocks[i] = shares[i][h+st*rec : h+st*rec+bs]
		}
		for i := range n {
			prefix := append(append(bytes.Clone(id), be.AppendUint64(nil, uint64(st))...), be.AppendUint16(nil, uint16(i))...)
			sum := blake3.Sum256(append(prefix, blocks[i]...))
			for j := range n {
				if got := shares[j][h+st*rec+bs+i*32:][:32]; !bytes.Equal(got, sum[:]) {
					t.Fatalf("stripe %d: share %d's checksum of block %d", st, j, i)
				}
			}
			if i < k {
				stream.Write(sum[:])
			}
		}
		for r := range n {
			want := make([]byte, bs)
			for c := range k {
				for x := range bs {
					want[x] ^= gfMul(e[r][c], blocks[c][x])
				}
			}
			if !bytes.Equal(want, blocks[r]) {
				t.Fatalf("stripe %d: block %d is not row %d of the encoding matrix times the data", st, r, r)
			}
		}
		for c := range k {
			out = append(out, blocks[c]...)
		}
	}
	stream.Write(be.AppendUint64(nil, uint64(length)))
	if !bytes.Equal(stream.Sum(nil), tr[40:72]) {
		t.Fatal("stream hash")
	}
	if !bytes.Equal(out[:length], data) || bytes.ContainsFunc(out[length:], func(r rune) bool { return r != 0 }) {
		t.Fatal("data blocks, or their zero padding")
	}
}
