package tarread

import (
	"encoding/binary"
	"math/bits"
	"strconv"
)

// What this package changes in archive/tar's reader: the three checks it
// runs on every header block, done a word at a time instead of a byte (or
// a rune, through a function value) at a time. They were a fifth of
// bk-restore's instructions on a tree of small files. Each returns what
// archive/tar's own code returns, for every block (tests hold them to it).

// asciiBlock reports whether no byte of b is 0x80 or above.
func asciiBlock(b *block) bool {
	var or uint64
	for i := 0; i < blockSize; i += 8 {
		or |= binary.LittleEndian.Uint64(b[i:])
	}
	return or&0x8080808080808080 == 0
}

// computeChecksum computes the checksum for the header block.
// POSIX specifies a sum of the unsigned byte values, but the Sun tar used
// signed byte values.
// We compute and return both.
func (b *block) computeChecksum() (unsigned, signed int64) {
	const lo, high = 0x00FF00FF00FF00FF, 0x8080808080808080
	// Sums of byte pairs in 16-bit lanes: 64 words of at most 2 × 255 a
	// lane stay under 2^16.
	var lanes uint64
	var neg int // bytes 0x80 or above: each counts 256 less when signed
	for i := 0; i < blockSize; i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if i == 144 { // bytes 148–155, the checksum field, count as spaces
			w = w&0xFFFFFFFF | 0x2020202000000000
		} else if i == 152 {
			w = w&^0xFFFFFFFF | 0x20202020
		}
		lanes += w&lo + w>>8&lo
		neg += bits.OnesCount64(w & high)
	}
	unsigned = int64(lanes&0xFFFF + lanes>>16&0xFFFF + lanes>>32&0xFFFF + lanes>>48)
	return unsigned, unsigned - 256*int64(neg)
}

func (p *parser) parseOctal(b []byte) int64 {
	// Because unused fields are filled with NULs, we need
	// to skip leading NULs. Fields may also be padded with
	// spaces or NULs.
	// So we remove leading and trailing NULs and spaces to
	// be sure.
	for len(b) > 0 && (b[0] == ' ' || b[0] == 0) {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return 0
	}
	if x, ok := octalDigits(b); ok {
		return x
	}
	x, perr := strconv.ParseUint(p.parseString(b), 8, 64)
	if perr != nil {
		p.err = ErrHeader
	}
	return int64(x)
}

// octalDigits reads b when it is only octal digits, few enough to fit 63
// bits; anything else is left to strconv.ParseUint.
func octalDigits(b []byte) (int64, bool) {
	if len(b) > 21 {
		return 0, false
	}
	var x int64
	for _, c := range b {
		if c < '0' || c > '7' {
			return 0, false
		}
		x = x<<3 | int64(c-'0')
	}
	return x, true
}

// isASCII reports whether the input is an ASCII C-style string.
func isASCII(s string) bool {
	for _, c := range s {
		if c >= 0x80 || c == 0x00 {
			return false
		}
	}
	return true
}
