package blake3

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fmt"

	luke "lukechampine.com/blake3"
)

// sizes straddle BLAKE3's 64-byte blocks, 1 KiB chunks and the 16-chunk
// SIMD batches, and include bk's 128 KiB block with the 26-byte prefix of
// shard.BlockHash.
var sizes = []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 16 << 10, 16<<10 + 1, 128<<10 + 26, 1<<20 + 7}

func data(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// TestSameAsB3sum checks our sums against the reference tool's, for one
// Write, for writes cut at odd places, and after a Clone.
func TestSameAsB3sum(t *testing.T) {
	t.Parallel()
	b3sum, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not installed: the sums are still compared with lukechampine.com/blake3's in TestSameAsOther")
	}
	dir := t.TempDir()
	args := []string{"--no-names"}
	for _, n := range sizes {
		name := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(name, data(n), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, name)
	}
	out, err := exec.Command(b3sum, args...).Output()
	if err != nil {
		t.Fatalf("b3sum: %v", err)
	}
	want := strings.Fields(string(out))
	if len(want) != len(sizes) {
		t.Fatalf("b3sum gave %d sums for %d files", len(want), len(sizes))
	}
	for i, n := range sizes {
		b := data(n)
		sum := Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want[i] {
			t.Errorf("Sum256 of %d bytes = %s, b3sum says %s", n, got, want[i])
		}
		d := New()
		for rest := b; len(rest) > 0; {
			cut := min(len(rest), 1+len(rest)/3)
			d.Write(rest[:cut])
			rest = rest[cut:]
		}
		if got := hex.EncodeToString(d.Sum(nil)); got != want[i] {
			t.Errorf("Hasher over %d bytes in pieces = %s, b3sum says %s", n, got, want[i])
		}
	}
}

// TestSameAsOther checks our sums against another implementation's.
func TestSameAsOther(t *testing.T) {
	t.Parallel()
	for _, n := range sizes {
		b := data(n)
		if Sum256(b) != luke.Sum256(b) {
			t.Errorf("Sum256 of %d bytes differs from lukechampine.com/blake3's", n)
		}
	}
}

// TestClone checks that a clone carries on from the same state and that
// writing to it leaves the original alone.
func TestClone(t *testing.T) {
	t.Parallel()
	b := data(3<<10 + 5)
	d := New()
	d.Write(b[:2000])
	c := d.Clone()
	c.Write(b[2000:])
	if want := Sum256(b); !bytes.Equal(c.Sum(nil), want[:]) {
		t.Error("clone's sum differs from the sum of all the data")
	}
	if want := Sum256(b[:2000]); !bytes.Equal(d.Sum(nil), want[:]) {
		t.Error("writing to the clone changed the original")
	}
	d.Reset()
	if want := Sum256(nil); !bytes.Equal(d.Sum(nil), want[:]) {
		t.Error("Reset did not bring the hash back to empty")
	}
}

// BenchmarkImplementations compares the implementation we use with
// lukechampine.com/blake3, on what bk hashes: a 128 KiB block behind
// shard.BlockHash's 26-byte prefix, and a whole 64 MiB file written 2 MiB
// at a time (as scrub does). Besides MB/s of wall time it reports MB per
// second of the process's CPU time, which is what counts when every core
// is busy, as in bk-check: lukechampine's spreads a write over goroutines.
func BenchmarkImplementations(b *testing.B) {
	block := data(128 << 10)
	var prefix [26]byte
	file := data(64 << 20)
	type hasher interface {
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
	impls := []struct {
		name string
		new  func() hasher
	}{
		{"zeebo", func() hasher { return New() }},
		{"lukechampine", func() hasher { return luke.New(Size, nil) }},
	}
	for _, im := range impls {
		b.Run("block128k/"+im.name, func(b *testing.B) {
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			var sum [Size]byte
			defer reportCPU(b, len(block))()
			for b.Loop() {
				d := im.new()
				d.Write(prefix[:])
				d.Write(block)
				d.Sum(sum[:0])
			}
		})
	}
	for _, im := range impls {
		b.Run("file64m/"+im.name, func(b *testing.B) {
			b.SetBytes(int64(len(file)))
			b.ReportAllocs()
			var sum [Size]byte
			defer reportCPU(b, len(file))()
			for b.Loop() {
				d := im.new()
				for off := 0; off < len(file); off += 2 << 20 {
					d.Write(file[off : off+2<<20])
				}
				d.Sum(sum[:0])
			}
		})
	}
}

// reportCPU starts counting the process's CPU time; the function it
// returns reports it as MB hashed per CPU second.
func reportCPU(b *testing.B, bytes int) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(bytes)*float64(b.N)/(cpuTime()-start).Seconds()/1e6, "MB/cpu-s")
	}
}

func cpuTime() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
