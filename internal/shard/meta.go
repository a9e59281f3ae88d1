package shard

import "github.com/bk-backup/bk/internal/blake3"

// MetaHash is the hash a version-4 manifest pins a share file by
// (docs/FORMAT.md, section 5): BLAKE3-256 of the file with the block of
// every record left out, header ‖ the 32·N checksums of each record in
// stripe order ‖ trailer. The checksums pin the blocks, so it pins every
// byte of the file, and it costs a few per cent of a hash of the whole.
//
// It is fed one unit of the share at a time, in order, as frames of a
// share stream and a regenerated share come: the header first, then
// records, then the trailer (told from a record by its size: a record
// is at least 128 bytes, a trailer 104).
type MetaHash struct {
	d         *blake3.Hasher
	blockSize int
	started   bool // the header has been written
}

// NewMetaHash starts the MetaHash of a share whose blocks are blockSize
// bytes.
func NewMetaHash(blockSize int) *MetaHash {
	return &MetaHash{d: blake3.New(), blockSize: blockSize}
}

// Write adds p, one whole unit of the share file. It never fails, so a
// MetaHash can sit in an io.MultiWriter beside the unit's upload.
func (m *MetaHash) Write(p []byte) (int, error) {
	m.WriteHashed(p[m.Hashed(len(p)):])
	return len(p), nil
}

// Hashed is where, in the next unit of n bytes, the bytes the hash takes
// start: the share's header and trailer whole, of a stripe's record all
// but its block. A caller that sends the unit from elsewhere reads only
// those, for WriteHashed.
func (m *MetaHash) Hashed(n int) int {
	if !m.started || n == TrailerSize {
		return 0
	}
	return min(m.blockSize, n)
}

// WriteHashed adds the next unit, given its bytes from Hashed on.
func (m *MetaHash) WriteHashed(p []byte) {
	m.started = true
	m.d.Write(p)
}

// Sum is the MetaHash of the units written so far.
func (m *MetaHash) Sum() [HashSize]byte {
	var sum [HashSize]byte
	m.d.Sum(sum[:0])
	return sum
}
