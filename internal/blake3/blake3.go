// Package blake3 is bk's one way to BLAKE3-256: the shares' block and
// stream checksums, the manifests' share hashes, uploads' sums and the
// archive's file hashes all go through it, so the implementation is chosen
// in one place.
//
// It is github.com/zeebo/blake3 (AVX2, SSE4.1). lukechampine.com/blake3 has
// AVX-512 code too, but costs as much CPU time or more per byte here: it
// spreads each write over goroutines, which pays in wall time only when
// cores are idle, and bk-check and bk-split keep both busy already
// (BenchmarkImplementations).
package blake3

import "github.com/zeebo/blake3"

// Size is the length of a sum in bytes.
const Size = 32

// Hasher is a running BLAKE3-256 hash (a hash.Hash with Clone).
type Hasher = blake3.Hasher

// New returns a Hasher with nothing written yet.
func New() *Hasher { return blake3.New() }

// Sum256 returns the sum of b.
func Sum256(b []byte) [Size]byte { return blake3.Sum256(b) }
