package shard

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/crypto/blake2b"

	"github.com/bk-backup/bk/internal/blake3"
)

const benchSize = 32 << 20

var benchBlockSizes = []int{64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20}

// BenchmarkReference copies the input once in the same chunks: the floor
// that the other benchmarks' ratios are read against.
func BenchmarkReference(b *testing.B) {
	data := randBytes(1, benchSize)
	dst := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		for off := 0; off < len(data); off += len(dst) {
			copy(dst, data[off:])
		}
	}
}

// BenchmarkSplit: a 4-of-6 share stream, per block size, and 10 of 14 at
// the default block size.
func BenchmarkSplit(b *testing.B) {
	data := randBytes(1, benchSize)
	b.Run("k10n14/bs=default", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, _, err := SplitStream(context.Background(), newByteReader(data), io.Discard, SplitOptions{K: 10, N: 14}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bs := range benchBlockSizes {
		b.Run(fmt.Sprintf("k4n6/bs=%dK", bs>>10), func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if _, _, err := SplitStream(context.Background(), newByteReader(data), io.Discard, SplitOptions{K: 4, N: 6, BlockSize: bs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJoin: 4-of-6 share files with 2 data shares missing, so every
// stripe is decoded; and a whole share stream.
func BenchmarkJoin(b *testing.B) {
	data := randBytes(1, benchSize)
	for _, bs := range benchBlockSizes {
		info, shares := splitMem(b, data, SplitOptions{K: 4, N: 6, BlockSize: bs})
		b.Run(fmt.Sprintf("k4n6-missing2/bs=%dK", bs>>10), func(b *testing.B) {
			var sources []Source
			for i, s := range shares[2:] {
				sources = append(sources, &memSource{fmt.Sprint(i), s})
			}
			b.SetBytes(benchSize)
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := Join(context.Background(), sources, io.Discard, JoinOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		stream := streamOf(b, info, shares)
		b.Run(fmt.Sprintf("k4n6-stream/bs=%dK", bs>>10), func(b *testing.B) {
			b.SetBytes(benchSize)
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := JoinStream(context.Background(), newByteReader(stream), io.Discard, JoinOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJoinFiles: a 4-of-6 set from local share files, all present
// (data shares read, parity only for its checksums), and with a data
// share missing; the figure to compare before and after a change to what
// joining checks (bench/join-checks.sh runs both builds in turn).
func BenchmarkJoinFiles(b *testing.B) {
	data := randBytes(1, benchSize)
	_, paths := splitFiles(b, data, SplitOptions{K: 4, N: 6})
	for name, use := range map[string][]string{"k4n6-all": paths, "k4n6-missing1": paths[1:]} {
		b.Run(name, func(b *testing.B) {
			var sources []Source
			for _, p := range use {
				sources = append(sources, FileSource(p))
			}
			b.SetBytes(benchSize)
			defer cpuPerOp(b)()
			for b.Loop() {
				if _, err := Join(context.Background(), sources, io.Discard, JoinOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cpuPerOp reports the CPU time (user and system, all threads) a
// benchmark's loop took per op: on a shared machine it varies far less
// than the time on the clock. Call the func it returns after the loop.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkHash compares the block checksum candidates on one block.
func BenchmarkHash(b *testing.B) {
	block := randBytes(2, DefaultBlockSize)
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for b.Loop() {
			sha256.Sum256(block)
		}
	})
	b.Run("blake3", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for b.Loop() {
			blake3.Sum256(block)
		}
	})
	b.Run("blake2b-256", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for b.Loop() {
			blake2b.Sum256(block)
		}
	})
}

// byteReader hides bytes.Reader's WriteTo, so that data flows the way it
// does from a pipe.
type byteReader struct{ b []byte }

func newByteReader(b []byte) *byteReader { return &byteReader{b} }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// zeros is an endless reader of a stream that is never held in memory.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.n))
	clear(p[:n])
	z.n -= int64(n)
	return n, nil
}

// TestMemoryBounded: splitting and joining a stream allocates a few
// stripes' worth, not the stream's size.
func TestMemoryBounded(t *testing.T) {
	const size = 96 << 20
	for _, kn := range [][2]int{{4, 6}, {10, 14}} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		pr, pw := io.Pipe()
		go func() {
			_, _, err := SplitStream(context.Background(), &zeros{size}, pw, SplitOptions{K: kn[0], N: kn[1]})
			pw.CloseWithError(err)
		}()
		if _, err := JoinStream(context.Background(), pr, io.Discard, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		stripe := uint64(kn[1]) * DefaultBlockSize
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("K=%d N=%d: %d MiB through split and join allocated %.1f MiB", kn[0], kn[1], size>>20, float64(alloc)/(1<<20))
		if alloc > 40*stripe {
			t.Errorf("K=%d N=%d: split and join of %d MiB allocated %d MiB (%d stripes of %d KiB)",
				kn[0], kn[1], size>>20, alloc>>20, alloc/stripe, stripe>>10)
		}
	}
}
