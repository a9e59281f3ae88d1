// Package shard cuts a byte stream into N erasure-coded shares, any K of
// which rebuild it bit for bit, and joins them back while checking every
// block against the checksums that all the other shares keep of it.
//
// The format is described in section 3 of docs/FORMAT.md; this file holds its
// encoding. Integers are big-endian.
package shard

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/bk-backup/bk/internal/blake3"
)

// Format constants of version 1.
const (
	Version = 1

	// HashBLAKE3 is the only hash algorithm of version 1: BLAKE3 with
	// 32-byte output, twice as fast as SHA-256 with SHA-NI here (see
	// BenchmarkHash), and hashing is most of the work.
	HashBLAKE3 = 1

	MinBlockSize = 64
	MaxBlockSize = 16 << 20
	// DefaultBlockSize was chosen with BenchmarkSplit and BenchmarkJoin:
	// 64K and 128K were fastest; from 256K a stripe no longer fits in a
	// core's cache and splitting ran at half the speed.
	DefaultBlockSize = 128 << 10

	MaxShares = 256
	MaxLabel  = 256

	HashSize    = 32
	TrailerSize = 8 + 16 + 8 + 8 + HashSize + HashSize

	headerFixed = 38        // bytes before the optional fields
	maxHeader   = 1<<16 - 1 // the header length is a uint16
	indexStream = 0xffff    // the index field of a stream header
	fieldLabel  = 1         // optional field: the label
	fieldCrit   = 0x8000    // tags from here up must be understood
	minHeader   = headerFixed + HashSize
)

var (
	magicShare   = [8]byte{'b', 'k', '-', 's', 'h', 'a', 'r', 'e'}
	magicStream  = [8]byte{'b', 'k', '-', 's', 'h', 's', 't', 'r'}
	magicTrailer = [8]byte{'b', 'k', '-', 't', 'r', 'a', 'i', 'l'}
)

// SetInfo is what all shares of one set have in common.
type SetInfo struct {
	SetID     [16]byte
	K, N      int
	BlockSize int
	Label     string // optional, carried from bk-split --label
}

// ID is the set ID in hex, the way messages show it.
func (s SetInfo) ID() string { return hex.EncodeToString(s.SetID[:]) }

// ShortID is the first 8 hex digits of the set ID.
func (s SetInfo) ShortID() string { return s.ID()[:8] }

// RecordSize is the size of one stripe record in a share: the block and
// the checksums of all N blocks of its stripe.
func (s SetInfo) RecordSize() int { return s.BlockSize + s.N*HashSize }

// StripeSize is how many bytes of the stream one stripe carries.
func (s SetInfo) StripeSize() int64 { return int64(s.K) * int64(s.BlockSize) }

// Check reports whether the parameters are within the format's limits.
func (s SetInfo) Check() error {
	if s.N > MaxShares || s.K < 1 || s.K > s.N {
		return fmt.Errorf("K=%d N=%d out of range: need 1 ≤ K ≤ N ≤ %d", s.K, s.N, MaxShares)
	}
	if s.BlockSize < MinBlockSize || s.BlockSize > MaxBlockSize || s.BlockSize%64 != 0 {
		return fmt.Errorf("block size %d out of range: need a multiple of 64 from %d to %d",
			s.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if len(s.Label) > MaxLabel || !utf8.ValidString(s.Label) {
		return fmt.Errorf("label must be UTF-8 text of at most %d bytes", MaxLabel)
	}
	return nil
}

// Field is an optional header field that this version does not know; it is
// kept so that a header re-encodes to the same bytes.
type Field struct {
	Tag   uint16
	Value []byte
}

// Header is the start of one share.
type Header struct {
	SetInfo
	Index int
	Extra []Field // unknown optional fields, in order
}

// Size is the encoded length of the header.
func (h Header) Size() int { return len(h.marshal(magicShare, h.Index)) }

// Offset is where the record of stripe s starts in the share; the trailer
// of a share of S stripes starts at Offset(S).
func (h Header) Offset(stripe int64) int64 {
	return int64(h.Size()) + stripe*int64(h.RecordSize())
}

// Marshal encodes the header.
func (h Header) Marshal() []byte { return h.marshal(magicShare, h.Index) }

func (h Header) marshal(magic [8]byte, index int) []byte {
	b := make([]byte, headerFixed, minHeader+4+len(h.Label))
	copy(b, magic[:])
	b[8] = Version
	b[9] = HashBLAKE3
	copy(b[12:28], h.SetID[:])
	binary.BigEndian.PutUint16(b[28:], uint16(h.K))
	binary.BigEndian.PutUint16(b[30:], uint16(h.N))
	binary.BigEndian.PutUint16(b[32:], uint16(index))
	binary.BigEndian.PutUint32(b[34:], uint32(h.BlockSize))
	if h.Label != "" {
		b = appendField(b, fieldLabel, []byte(h.Label))
	}
	for _, f := range h.Extra {
		b = appendField(b, f.Tag, f.Value)
	}
	binary.BigEndian.PutUint16(b[10:], uint16(len(b)+HashSize))
	sum := blake3.Sum256(b)
	return append(b, sum[:]...)
}

func appendField(b []byte, tag uint16, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, tag)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// Errors that tell what kind of input was seen.
var (
	ErrNotShare  = errors.New("not a bk share")
	ErrIsStream  = errors.New("a share stream, not a share file")
	ErrIsShare   = errors.New("a share file, not a share stream")
	ErrTruncated = errors.New("truncated")
)

// ReadHeader reads and checks the header of a share file.
func ReadHeader(r io.Reader) (Header, error) {
	h, index, err := readHeader(r, magicShare)
	if err != nil {
		return Header{}, err
	}
	if index >= h.N {
		return Header{}, fmt.Errorf("damaged header: share index %d of %d", index, h.N)
	}
	h.Index = index
	return h, nil
}

func readHeader(r io.Reader, magic [8]byte) (Header, int, error) {
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, 0, ErrNotShare
		}
		return Header{}, 0, err
	}
	switch {
	case bytes.Equal(fixed[:8], magic[:]):
	case magic == magicShare && bytes.Equal(fixed[:8], magicStream[:]):
		return Header{}, 0, ErrIsStream
	case magic == magicStream && bytes.Equal(fixed[:8], magicShare[:]):
		return Header{}, 0, ErrIsShare
	default:
		return Header{}, 0, ErrNotShare
	}
	if fixed[8] != Version {
		return Header{}, 0, fmt.Errorf("format version %d, this bk reads version %d only", fixed[8], Version)
	}
	if fixed[9] != HashBLAKE3 {
		return Header{}, 0, fmt.Errorf("unknown hash algorithm %d", fixed[9])
	}
	size := int(binary.BigEndian.Uint16(fixed[10:]))
	if size < minHeader {
		return Header{}, 0, errors.New("damaged header: length too small")
	}
	b := make([]byte, size)
	copy(b, fixed[:])
	if _, err := io.ReadFull(r, b[12:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, 0, fmt.Errorf("header %w", ErrTruncated)
		}
		return Header{}, 0, err
	}
	body := b[:size-HashSize]
	if sum := blake3.Sum256(body); !bytes.Equal(sum[:], b[size-HashSize:]) {
		return Header{}, 0, errors.New("damaged header: checksum mismatch")
	}
	h, index, err := parseHeaderBody(body)
	if err != nil {
		return Header{}, 0, fmt.Errorf("damaged header: %w", err)
	}
	return h, index, nil
}

func parseHeaderBody(b []byte) (Header, int, error) {
	var h Header
	copy(h.SetID[:], b[12:28])
	h.K = int(binary.BigEndian.Uint16(b[28:]))
	h.N = int(binary.BigEndian.Uint16(b[30:]))
	index := int(binary.BigEndian.Uint16(b[32:]))
	h.BlockSize = int(binary.BigEndian.Uint32(b[34:]))
	last := -1
	for rest := b[headerFixed:]; len(rest) > 0; {
		if len(rest) < 4 {
			return Header{}, 0, errors.New("optional field cut short")
		}
		tag := int(binary.BigEndian.Uint16(rest))
		n := int(binary.BigEndian.Uint16(rest[2:]))
		if len(rest) < 4+n {
			return Header{}, 0, errors.New("optional field cut short")
		}
		v := rest[4 : 4+n]
		rest = rest[4+n:]
		if tag <= last || tag == 0 {
			return Header{}, 0, errors.New("optional fields out of order")
		}
		last = tag
		switch {
		case tag == fieldLabel:
			if n == 0 {
				return Header{}, 0, errors.New("empty label field")
			}
			h.Label = string(v)
		case tag >= fieldCrit:
			return Header{}, 0, fmt.Errorf("unknown required field %#04x", tag)
		default:
			h.Extra = append(h.Extra, Field{Tag: uint16(tag), Value: bytes.Clone(v)})
		}
	}
	if err := h.Check(); err != nil {
		return Header{}, 0, err
	}
	return h, index, nil
}

// Trailer ends every share: what the whole stream was.
type Trailer struct {
	Length     int64 // bytes in the original stream
	Stripes    int64
	StreamHash [32]byte // over the stream's block checksums and length: see streamHash
}

// Marshal encodes the trailer of a share of set id.
func (t Trailer) Marshal(id [16]byte) []byte {
	b := make([]byte, 0, TrailerSize)
	b = append(b, magicTrailer[:]...)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Stripes))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Length))
	b = append(b, t.StreamHash[:]...)
	sum := blake3.Sum256(b)
	return append(b, sum[:]...)
}

// ParseTrailer decodes a trailer of a share of info's set and checks that
// it is consistent with that set's parameters.
func ParseTrailer(b []byte, info SetInfo) (Trailer, error) {
	if len(b) != TrailerSize || !bytes.Equal(b[:8], magicTrailer[:]) {
		return Trailer{}, errors.New("no trailer")
	}
	if sum := blake3.Sum256(b[:TrailerSize-HashSize]); !bytes.Equal(sum[:], b[TrailerSize-HashSize:]) {
		return Trailer{}, errors.New("damaged trailer: checksum mismatch")
	}
	if !bytes.Equal(b[8:24], info.SetID[:]) {
		return Trailer{}, errors.New("trailer of another set")
	}
	var t Trailer
	stripes := binary.BigEndian.Uint64(b[24:])
	length := binary.BigEndian.Uint64(b[32:])
	copy(t.StreamHash[:], b[40:72])
	if stripes > 1<<62 || length > 1<<62 {
		return Trailer{}, errors.New("damaged trailer: impossible size")
	}
	t.Stripes, t.Length = int64(stripes), int64(length)
	if t.Stripes != stripesFor(t.Length, info) {
		return Trailer{}, fmt.Errorf("damaged trailer: %d bytes cannot make %d stripes", t.Length, t.Stripes)
	}
	return t, nil
}

func stripesFor(length int64, info SetInfo) int64 {
	ss := info.StripeSize()
	return (length + ss - 1) / ss
}

// ReadTrailer reads the trailer of a complete share file of size bytes
// whose header is h.
func ReadTrailer(r io.ReaderAt, size int64, h Header) (Trailer, error) {
	b := make([]byte, TrailerSize)
	if size < int64(h.Size())+TrailerSize {
		return Trailer{}, fmt.Errorf("share %w", ErrTruncated)
	}
	if _, err := r.ReadAt(b, size-TrailerSize); err != nil {
		return Trailer{}, err
	}
	t, err := ParseTrailer(b, h.SetInfo)
	if err != nil {
		return Trailer{}, err
	}
	if h.Offset(t.Stripes) != size-TrailerSize {
		return Trailer{}, fmt.Errorf("share is %d bytes, its trailer says it should be %d",
			size, h.Offset(t.Stripes)+TrailerSize)
	}
	return t, nil
}

// streamHash is the checksum of the whole stream: BLAKE3 over the
// checksums of its data blocks, stripe by stripe, then its length. It
// commits to every byte of the stream, yet costs no pass over the data of
// its own: the block checksums are needed anyway.
type streamHash struct{ d *blake3.Hasher }

func newStreamHash() streamHash { return streamHash{blake3.New()} }

// add takes the checksums of a stripe's K data blocks, in order.
func (s streamHash) add(sums []byte) { s.d.Write(sums) }

func (s streamHash) sum(length int64) [HashSize]byte {
	s.d.Write(binary.BigEndian.AppendUint64(nil, uint64(length)))
	return [HashSize]byte(s.d.Sum(nil))
}

// matches reports whether t's stream hash is that of the stripes added so
// far, without changing the running hash.
func (s streamHash) matches(t Trailer) bool {
	return streamHash{s.d.Clone()}.sum(t.Length) == t.StreamHash
}

// BlockHash is the checksum of block index of stripe s of set id: it names
// its set and place, so a block copied from elsewhere does not pass for it.
func BlockHash(id [16]byte, stripe int64, index int, block []byte) [HashSize]byte {
	var prefix [16 + 8 + 2]byte
	copy(prefix[:], id[:])
	binary.BigEndian.PutUint64(prefix[16:], uint64(stripe))
	binary.BigEndian.PutUint16(prefix[24:], uint16(index))
	d := blake3.New()
	d.Write(prefix[:])
	d.Write(block)
	var sum [HashSize]byte
	d.Sum(sum[:0])
	return sum
}
