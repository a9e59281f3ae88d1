// Package rsdelta writes and applies deltas in librsync's delta format, the
// one `rdiff patch OLD DELTA NEW` applies: the magic number 0x72730236,
// then commands, each an opcode byte and big-endian integers: a literal
// (the bytes of the new file that follow it) or a copy (a range of the old
// file), up to an end command. The encoder writes only what its caller
// chose (bk chooses by content-defined chunks, not by rsync signatures);
// the decoder reads every command librsync writes.
//
// Described in section 6 of docs/FORMAT.md.
package rsdelta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic starts every delta.
const Magic = 0x72730236

// Opcodes: 1..64 is a literal of that many bytes; the others carry their
// lengths (and offsets) in 1, 2, 4 or 8 bytes.
const (
	opEnd        = 0x00
	opLiteralMax = 0x40 // the last opcode that is its own length
	opLiteralN1  = 0x41 // then N2 0x42, N4 0x43, N8 0x44
	opCopyN1N1   = 0x45 // then by offset width, length width: up to N8N8 0x54
	opCopyN8N8   = 0x54
)

// widthCode is the index of the smallest of 1, 2, 4, 8 bytes that holds v.
func widthCode(v uint64) int {
	switch {
	case v <= 0xff:
		return 0
	case v <= 0xffff:
		return 1
	case v <= 0xffffffff:
		return 2
	}
	return 3
}

func appendInt(b []byte, code int, v uint64) []byte {
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], v)
	return append(b, tmp[8-1<<code:]...)
}

// AppendMagic appends the delta's first four bytes.
func AppendMagic(b []byte) []byte { return binary.BigEndian.AppendUint32(b, Magic) }

// AppendLiteral appends the command of a literal of n bytes (n > 0); the n
// bytes follow it.
func AppendLiteral(b []byte, n int64) []byte {
	if n <= opLiteralMax {
		return append(b, byte(n))
	}
	c := widthCode(uint64(n))
	return appendInt(append(b, byte(opLiteralN1+c)), c, uint64(n))
}

// AppendCopy appends a copy of n bytes (n > 0) at offset off of the old file.
func AppendCopy(b []byte, off, n int64) []byte {
	co, cl := widthCode(uint64(off)), widthCode(uint64(n))
	b = append(b, byte(opCopyN1N1+4*co+cl))
	return appendInt(appendInt(b, co, uint64(off)), cl, uint64(n))
}

// AppendEnd appends the end command.
func AppendEnd(b []byte) []byte { return append(b, opEnd) }

// LiteralLen and CopyLen are the lengths of the commands AppendLiteral and
// AppendCopy append, for a caller that sizes a delta before writing it.
func LiteralLen(n int64) int64   { return int64(len(AppendLiteral(nil, n))) }
func CopyLen(off, n int64) int64 { return int64(len(AppendCopy(nil, off, n))) }

// Reader is what Apply reads a delta from (a bufio.Reader is one).
type Reader interface {
	io.Reader
	io.ByteReader
}

// Apply reads a delta from r up to its end command and writes the new file
// to w, reading copies from old (oldSize bytes long). It refuses a delta
// that copies from beyond oldSize or makes more than limit bytes. buf is
// the copy buffer (its size bounds memory). It returns the bytes written;
// r is read no further than the end command.
func Apply(w io.Writer, old io.ReaderAt, oldSize int64, r Reader, limit int64, buf []byte) (int64, error) {
	var written int64
	_, err := Walk(r, oldSize, limit, func(_ int64, c Command) error {
		var src io.Reader = io.LimitReader(r, c.Len)
		short := "delta cut short in a literal"
		if c.Off >= 0 {
			src, short = io.NewSectionReader(old, c.Off, c.Len), "the old file ended early"
		}
		m, err := io.CopyBuffer(w, src, buf)
		written += m
		if err == nil && m < c.Len {
			err = errors.New(short)
		}
		return err
	})
	return written, err
}

// Command is one command of a delta: a copy of Len bytes at offset Off of
// the old file, or, with Off -1, a literal: Len bytes that follow it in
// the delta.
type Command struct{ Off, Len int64 }

// Walk reads a delta from r up to its end command and calls fn with each
// command and the offset in the new file where its bytes go. For a literal,
// fn reads its Len bytes from r, no more, no fewer. Walk refuses what Apply
// refuses: a copy from beyond oldSize, more than limit bytes in all. It
// returns the new file's size; r is read no further than the end command.
func Walk(r Reader, oldSize, limit int64, fn func(pos int64, c Command) error) (int64, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return 0, fmt.Errorf("delta cut short: %w", unexpected(err))
	}
	if binary.BigEndian.Uint32(magic[:]) != Magic {
		return 0, fmt.Errorf("not a librsync delta (magic %x)", magic)
	}
	var n int64
	for {
		op, err := r.ReadByte()
		if err != nil {
			return n, fmt.Errorf("delta cut short: %w", unexpected(err))
		}
		c := Command{Off: -1}
		switch {
		case op == opEnd:
			return n, nil
		case op <= opLiteralMax:
			c.Len = int64(op)
		case op < opCopyN1N1:
			if c.Len, err = readInt(r, int(op-opLiteralN1)); err != nil {
				return n, err
			}
		case op <= opCopyN8N8:
			code := int(op - opCopyN1N1)
			if c.Off, err = readInt(r, code/4); err != nil {
				return n, err
			}
			if c.Len, err = readInt(r, code%4); err != nil {
				return n, err
			}
			if c.Off > oldSize || c.Len > oldSize-c.Off {
				return n, fmt.Errorf("delta copies bytes %d to %d of an old file of %d bytes", c.Off, c.Off+c.Len, oldSize)
			}
		default:
			return n, fmt.Errorf("unknown delta command 0x%02x", op)
		}
		if c.Len > limit-n {
			return n, fmt.Errorf("delta makes more than the %d bytes it should", limit)
		}
		if err := fn(n, c); err != nil {
			return n, err
		}
		n += c.Len
	}
}

func readInt(r io.Reader, code int) (int64, error) {
	var tmp [8]byte
	w := 1 << code
	if _, err := io.ReadFull(r, tmp[8-w:]); err != nil {
		return 0, fmt.Errorf("delta cut short: %w", unexpected(err))
	}
	v := binary.BigEndian.Uint64(tmp[:])
	if v > 1<<62 {
		return 0, fmt.Errorf("absurd length or offset %d in delta", v)
	}
	return int64(v), nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
