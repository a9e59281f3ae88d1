// Package sharetest alters share files the way a dishonest host would:
// with a hex editor and BLAKE3, from the byte layout in section 3 of
// docs/FORMAT.md alone. It does not use package shard, so that a test
// forging shares checks the reader against the document, not against the
// writer's own code.
package sharetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/bk-backup/bk/internal/blake3"
)

// The layout of docs/FORMAT.md, section 3.
const (
	HashSize    = 32  // H is BLAKE3 with a 32-byte output
	TrailerSize = 104 // magic, set ID, S, L, StreamHash, checksum

	hdrLen   = 10 // u16 Hlen
	hdrSet   = 12 // 16-byte set ID
	hdrK     = 28 // u16 K
	hdrN     = 30 // u16 N
	hdrIndex = 32 // u16 index
	hdrBlock = 34 // u32 B
	hdrFixed = 38 // where the optional fields start

	trlStripes = 24 // u64 S
	trlLength  = 32 // u64 L
	trlHash    = 40 // StreamHash
	trlSum     = 72 // H(trailer[0:72])
)

// Share is a share file held in memory, for tampering.
type Share struct {
	Path  string // where Load found it and Save puts it; empty for Parse
	Data  []byte
	SetID [16]byte
	K, N  int
	Index int
	B     int // block size
	Hlen  int // header length
}

// Parse reads the fields of a share's header; data is altered in place.
func Parse(data []byte) (*Share, error) {
	if len(data) < hdrFixed+HashSize+TrailerSize || string(data[:8]) != "bk-share" {
		return nil, errors.New("not a share file")
	}
	s := &Share{
		Data:  data,
		K:     int(binary.BigEndian.Uint16(data[hdrK:])),
		N:     int(binary.BigEndian.Uint16(data[hdrN:])),
		Index: int(binary.BigEndian.Uint16(data[hdrIndex:])),
		B:     int(binary.BigEndian.Uint32(data[hdrBlock:])),
		Hlen:  int(binary.BigEndian.Uint16(data[hdrLen:])),
	}
	copy(s.SetID[:], data[hdrSet:])
	return s, nil
}

// Load reads the share file at path.
func Load(path string) (*Share, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.Path = path
	return s, nil
}

// Save writes the share back where Load found it.
func (s *Share) Save() error { return os.WriteFile(s.Path, s.Data, 0o644) }

// RecordSize is R = B + 32·N.
func (s *Share) RecordSize() int { return s.B + HashSize*s.N }

// Record is the record of stripe st: it starts at Hlen + st·R.
func (s *Share) Record(st int64) []byte {
	off := int64(s.Hlen) + st*int64(s.RecordSize())
	return s.Data[off : off+int64(s.RecordSize())]
}

// Block is this share's block of stripe st.
func (s *Share) Block(st int64) []byte { return s.Record(st)[:s.B] }

// Checksum is the record of stripe st's checksum of block i, C(st, i).
func (s *Share) Checksum(st int64, i int) []byte {
	return s.Record(st)[s.B+i*HashSize : s.B+(i+1)*HashSize]
}

// Trailer is the last 104 bytes.
func (s *Share) Trailer() []byte { return s.Data[len(s.Data)-TrailerSize:] }

// Stripes is the trailer's S.
func (s *Share) Stripes() int64 { return int64(binary.BigEndian.Uint64(s.Trailer()[trlStripes:])) }

// Length is the trailer's L.
func (s *Share) Length() int64 { return int64(binary.BigEndian.Uint64(s.Trailer()[trlLength:])) }

// Flip inverts byte at of the block of stripe st, as bit rot would.
func (s *Share) Flip(st int64, at int) { s.Block(st)[at] ^= 0xff }

// Forge alters the block of stripe st and makes the share agree with
// itself again: its own checksum of the block, then its trailer.
func (s *Share) Forge(st int64) {
	s.Flip(st, 0)
	s.Rehash(st)
	s.Reseal()
}

// Rehash sets the record's checksum of this share's own block of stripe
// st to the block's checksum, and returns it.
func (s *Share) Rehash(st int64) [HashSize]byte {
	sum := BlockSum(s.SetID, st, s.Index, s.Block(st))
	copy(s.Checksum(st, s.Index), sum[:])
	return sum
}

// SetLength makes the trailer claim a stream of length bytes and reseals
// it, as a host that wants the restore cut or padded would.
func (s *Share) SetLength(length int64) {
	binary.BigEndian.PutUint64(s.Trailer()[trlLength:], uint64(length))
	s.Reseal()
}

// Reseal recomputes the trailer's StreamHash from the data block checksums
// of the share's own records, and the trailer's checksum.
func (s *Share) Reseal() {
	t := s.Trailer()
	d := blake3.New()
	for st := range s.Stripes() {
		for i := range s.K {
			d.Write(s.Checksum(st, i))
		}
	}
	d.Write(t[trlLength : trlLength+8])
	copy(t[trlHash:trlSum], d.Sum(nil))
	sum := blake3.Sum256(t[:trlSum])
	copy(t[trlSum:], sum[:])
}

// BlockSum is C(s, i) = H(set ID ‖ u64(s) ‖ u16(i) ‖ block).
func BlockSum(set [16]byte, stripe int64, index int, block []byte) [HashSize]byte {
	d := blake3.New()
	d.Write(set[:])
	d.Write(binary.BigEndian.AppendUint64(nil, uint64(stripe)))
	d.Write(binary.BigEndian.AppendUint16(nil, uint16(index)))
	d.Write(block)
	return [HashSize]byte(d.Sum(nil))
}

// MetaSum is what a version-4 manifest pins the share by, as section 5
// of docs/FORMAT.md defines it: BLAKE3-256 of header ‖ the 32·N checksums
// of each record, in stripe order ‖ trailer, the blocks left out. The
// stripes are counted from the file's size, not from its trailer.
func (s *Share) MetaSum() [HashSize]byte {
	d := blake3.New()
	d.Write(s.Data[:s.Hlen])
	for st := range int64(len(s.Data)-s.Hlen-TrailerSize) / int64(s.RecordSize()) {
		d.Write(s.Record(st)[s.B:])
	}
	d.Write(s.Trailer())
	return [HashSize]byte(d.Sum(nil))
}
