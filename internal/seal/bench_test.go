package seal

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// benchFile is the compression benchmark's input: BK_BENCH_MB MiB (default
// 128) alternating 1 MiB of random bytes and 1 MiB of Go source from GOROOT,
// like a tar of a home folder with photos and code. It is a file, kept in
// the temp folder between runs, so the benchmark streams it as bk-pack would
// and a process's peak RSS measures the compressor, not the data.
var benchFile = sync.OnceValues(func() (string, error) {
	mb := 128
	if s := os.Getenv("BK_BENCH_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil {
			return "", err
		}
	}
	path := filepath.Join(os.TempDir(), "bk-seal-bench-"+strconv.Itoa(mb)+"MiB")
	if st, err := os.Stat(path); err == nil && st.Size() == int64(mb)<<20 {
		return path, nil
	}
	var text bytes.Buffer
	err := filepath.WalkDir(filepath.Join(runtime.GOROOT(), "src"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || text.Len() >= mb<<19 {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			text.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(os.TempDir(), "bk-seal-bench-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w := bufio.NewWriter(f)
	rng := rand.NewChaCha8([32]byte{1})
	src := text.Bytes()
	block := make([]byte, 1<<20)
	for i := 0; i < mb; i++ {
		if i%2 == 0 {
			_, _ = rng.Read(block)
			w.Write(block)
			continue
		}
		off := (i / 2 << 20) % max(len(src)-len(block), 1)
		w.Write(src[off : off+min(len(block), len(src))])
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
})

func openBench(b *testing.B) (*os.File, int64) {
	path, err := benchFile()
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return f, st.Size()
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// reference holds `zstd -3 -T0` on the same data, measured first in the
// same run, so the other sub-benchmarks report ratios that survive a noisy
// shared machine.
var reference struct {
	perOp time.Duration
	size  int64
}

// BenchmarkCompress compares strategies and levels on benchFile:
//
//	go test -run '^$' -bench Compress -benchtime 3x ./internal/seal
//
// speed-vs-zstd > 1 is faster than `zstd -3 -T0`; size-vs-zstd < 1.05 is
// the budget.
func BenchmarkCompress(b *testing.B) {
	b.Run("zstd-cli-3-T0", func(b *testing.B) {
		if _, err := exec.LookPath("zstd"); err != nil {
			b.Skip("zstd not on PATH")
		}
		path, _ := benchFile()
		f, size := openBench(b)
		f.Close()
		b.SetBytes(size)
		var out countWriter
		b.ResetTimer()
		start := time.Now()
		for b.Loop() {
			out.n = 0
			cmd := exec.Command("zstd", "-3", "-T0", "-q", "-c", path)
			cmd.Stdout = &out
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
		reference.perOp = time.Since(start) / time.Duration(b.N)
		reference.size = out.n
		b.ReportMetric(float64(out.n)/float64(size), "out/in")
	})
	for _, level := range []int{1, 3, 6} {
		for _, chunk := range []int{2 << 20, 4 << 20, 8 << 20} {
			name := "chunked/level=" + strconv.Itoa(level) + "/chunk=" + strconv.Itoa(chunk>>20) + "M"
			b.Run(name, func(b *testing.B) {
				benchCompress(b, func(w io.Writer) (io.WriteCloser, error) {
					return newChunkWriter(w, zstd.EncoderLevelFromZstd(level), chunk, runtime.GOMAXPROCS(0), optionsOf(nil))
				})
			})
		}
	}
	for _, level := range []int{1, 3} {
		b.Run("stream/level="+strconv.Itoa(level), func(b *testing.B) {
			benchCompress(b, func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)))
			})
		})
		b.Run("stream-concurrent-blocks/level="+strconv.Itoa(level), func(b *testing.B) {
			benchCompress(b, func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
					zstd.WithConcurrentBlocks(true))
			})
		})
	}
}

func benchCompress(b *testing.B, newWriter func(io.Writer) (io.WriteCloser, error)) {
	f, size := openBench(b)
	defer f.Close()
	b.SetBytes(size)
	var out countWriter
	buf := make([]byte, 1<<20) // the size of a tar writer's copy buffer, roughly
	peak := sampleHeap()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		out.n = 0
		zw, err := newWriter(&out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(zw, struct{ io.Reader }{f}, buf); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
	}
	perOp := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(out.n)/float64(size), "out/in")
	if reference.size > 0 {
		b.ReportMetric(float64(reference.perOp)/float64(perOp), "speed-vs-zstd")
		b.ReportMetric(float64(out.n)/float64(reference.size), "size-vs-zstd")
	}
}

// BenchmarkEncrypt measures age on its own; it should be far faster than
// compression, so the pipeline's speed is zstd's.
func BenchmarkEncrypt(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	f, size := openBench(b)
	defer f.Close()
	b.SetBytes(size)
	buf := make([]byte, 1<<20)
	for b.Loop() {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		w, err := Encrypt(io.Discard, id.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(w, struct{ io.Reader }{f}, buf); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// sampleHeap watches the heap the runtime holds from the OS until the
// returned function is called, and returns its peak.
func sampleHeap() (stop func() uint64) {
	runtime.GC()
	done := make(chan struct{})
	result := make(chan uint64)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapSys-ms.HeapReleased)
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-result }
}

// BenchmarkDecompressChain opens, reads and closes 30 small streams one
// after the other, as the restore of a chain of small incremental backups
// does: the decoder's setup weighs as much as the data.
func BenchmarkDecompressChain(b *testing.B) {
	data := testData(64 << 10)
	z := compress(b, data)
	b.SetBytes(30 * int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		for range 30 {
			r, err := Decompress(io.MultiReader(bytes.NewReader(z)))
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
				b.Fatal(n, err)
			}
			r.Close()
		}
	}
}
