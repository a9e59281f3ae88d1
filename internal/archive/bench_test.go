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
