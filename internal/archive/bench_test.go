package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchTree makes 3000 small files (1–16 KiB) in 30 directories and four
// 8 MiB files: about 24 MiB of small files and 32 MiB of large ones.
func benchTree(b *testing.B) (dir string, size int64) {
	dir = b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 8<<20)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for i := range 3000 {
		n := 1<<10 + rng.IntN(15<<10)
		p := filepath.Join(dir, fmt.Sprintf("d%02d/f%04d", i%30, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, buf[i:i+n], 0o644); err != nil {
			b.Fatal(err)
		}
		size += int64(n)
	}
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("big%d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
		size += int64(len(buf))
	}
	return dir, size
}

// BenchmarkReadTree is the reference: walk the same tree and read every
// file, one after the other, writing nothing.
func BenchmarkReadTree(b *testing.B) {
	dir, size := benchTree(b)
	b.SetBytes(size)
	buf := make([]byte, copyChunk)
	for b.Loop() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				io.CopyBuffer(io.Discard, f, buf)
				f.Close()
			}
			return err
		})
	}
}

func BenchmarkPack(b *testing.B) {
	dir, size := benchTree(b)
	b.SetBytes(size)
	for b.Loop() {
		if _, err := Pack(context.Background(), io.Discard, []string{dir}, PackOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtract(b *testing.B) {
	dir, size := benchTree(b)
	var buf bytes.Buffer
	if _, err := Pack(context.Background(), &buf, []string{dir}, PackOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	base := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		out := filepath.Join(base, fmt.Sprint(i))
		if _, err := Extract(context.Background(), bytes.NewReader(buf.Bytes()), out, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
}

// BenchmarkPackSparse packs a 1 GiB file holding 1 MiB of data, and, as the
// reference in the same loop, a 1 MiB file of the same data. Target: the
// sparse/dense ratio stays under 3, holes cost nothing. Measured on 2 busy
// cores: 0.4 to 1.8; 788 when the holes are read as zeros (before SEEK_DATA).
func BenchmarkPackSparse(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	dense, sparse := filepath.Join(dir, "dense"), filepath.Join(dir, "sparse")
	if err := os.WriteFile(dense, data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(sparse)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.WriteAt(data, 512<<20)
	f.Close()
	var tDense, tSparse time.Duration
	for b.Loop() {
		for _, p := range []string{dense, sparse} {
			start := time.Now()
			if _, err := Pack(context.Background(), io.Discard, []string{p}, PackOptions{}); err != nil {
				b.Fatal(err)
			}
			if p == dense {
				tDense += time.Since(start)
			} else {
				tSparse += time.Since(start)
			}
		}
	}
	b.ReportMetric(float64(tSparse)/float64(tDense), "sparse/dense")
}

// BenchmarkExtractChainDeltas restores a chain of 31 archives: a 6 MiB
// file, then 30 deltas of it, each overwriting 1 to 3 parts of up to
// 16 KiB; and, as the reference in the same loop, the full archive alone.
// chain/full is what the 30 deltas cost over restoring the file once.
// Measured on 2 busy cores: 54 to 86 when each delta rewrote the whole
// file, 8 to 16 applied in place (the check of each level's BLAKE3 still
// reads the whole file); 0.4x the time per loop. With the file read back
// once for the chain, not once a level: 24 → 5 to 7.
func BenchmarkExtractChainDeltas(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	level := randBytes(6<<20, 5)
	archives := [][]byte{fileArchive(b, "f", nil, level)}
	for range 30 {
		next := bytes.Clone(level)
		for range 1 + rng.IntN(3) {
			part := randBytes(1+rng.IntN(16<<10), rng.Uint64())
			copy(next[rng.IntN(len(next)-len(part)):], part)
		}
		archives = append(archives, fileArchive(b, "f", level, next))
		level = next
	}
	base := b.TempDir()
	var tFull, tChain time.Duration
	i := 0
	for b.Loop() {
		for _, n := range []int{1, len(archives)} {
			i++
			out := filepath.Join(base, fmt.Sprint(i))
			start := time.Now()
			if _, err := ExtractChain(context.Background(), membersOf(archives[:n]...), out, RestoreOptions{}); err != nil {
				b.Fatal(err)
			}
			if n == 1 {
				tFull += time.Since(start)
			} else {
				tChain += time.Since(start)
			}
			b.StopTimer()
			os.RemoveAll(out)
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(tChain)/float64(tFull), "chain/full")
}
