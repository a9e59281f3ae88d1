package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// testData is n bytes, half incompressible and half text, so that both
// kinds of zstd block are exercised.
func testData(n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{7})
	_, _ = rng.Read(b[:n/2])
	for i := n / 2; i < n; i++ {
		b[i] = "the quick brown fox jumps over the lazy dog\n"[i%44]
	}
	return b
}

func compress(t testing.TB, data []byte, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Compress(&buf, DefaultLevel, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// Odd write sizes, so chunk boundaries fall inside writes.
	for p := data; len(p) > 0; {
		n := min(len(p), 100_003)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decompress(t testing.TB, z []byte) ([]byte, error) {
	t.Helper()
	r, err := Decompress(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestCompressRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, 3*ChunkSize + 12345} {
		data := testData(n)
		z := compress(t, data)
		got, err := decompress(t, z)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: round trip differs", n)
		}
		if frames := countFrames(t, z); frames != max(1, (n+ChunkSize-1)/ChunkSize) {
			t.Errorf("%d bytes: %d frames", n, frames)
		}
	}
}

// countFrames walks the frames of z, checking each declares a window of at
// most ChunkSize, which every zstd decoder accepts.
func countFrames(t *testing.T, z []byte) int {
	t.Helper()
	n := 0
	for len(z) > 0 {
		var h zstd.Header
		if err := h.Decode(z); err != nil {
			t.Fatal(err)
		}
		if h.WindowSize > ChunkSize {
			t.Errorf("frame %d: window %d > %d", n, h.WindowSize, ChunkSize)
		}
		d, _ := zstd.NewReader(nil)
		// A frame's length: decode it alone.
		size := frameLen(t, z)
		if _, err := d.DecodeAll(z[:size], nil); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		d.Close()
		z = z[size:]
		n++
	}
	return n
}

// frameLen is the length of the zstd frame at the start of z: header, then
// blocks (3-byte headers) up to the last, then the 4-byte checksum.
func frameLen(t *testing.T, z []byte) int {
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		t.Fatal(err)
	}
	off := h.HeaderSize
	for {
		bh := uint32(z[off]) | uint32(z[off+1])<<8 | uint32(z[off+2])<<16
		last, typ, size := bh&1, (bh>>1)&3, int(bh>>3)
		if typ == 1 { // RLE: one byte stands for size bytes
			size = 1
		}
		off += 3 + size
		if last == 1 {
			break
		}
	}
	if h.HasCheckSum {
		off += 4
	}
	return off
}

// A sealed stream's frames carry no content checksum (age authenticates
// every byte), a plaintext one's do; both read back.
func TestSealedFramesWithoutChecksum(t *testing.T) {
	data := testData(2*ChunkSize + 777)
	for _, c := range []struct {
		opts []Option
		want bool
	}{{nil, true}, {[]Option{Sealed()}, false}} {
		z := compress(t, data, c.opts...)
		got, err := decompress(t, z)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("checksums %v: round trip: %v", c.want, err)
		}
		frames := 0
		for len(z) > 0 {
			var h zstd.Header
			if err := h.Decode(z); err != nil {
				t.Fatal(err)
			}
			if h.HasCheckSum != c.want {
				t.Errorf("frame %d: checksum %v, want %v", frames, h.HasCheckSum, c.want)
			}
			z = z[frameLen(t, z):]
			frames++
		}
		if frames != 3 {
			t.Errorf("checksums %v: %d frames, want 3", c.want, frames)
		}
	}
}

func TestCompressLevelOutOfRange(t *testing.T) {
	for _, level := range []int{0, -1, 23} {
		if _, err := Compress(io.Discard, level); err == nil {
			t.Errorf("level %d accepted", level)
		}
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after--; f.after < 0 {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func TestCompressWriteErrorReported(t *testing.T) {
	w, err := Compress(&failWriter{after: 1}, DefaultLevel)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write(testData(10 * ChunkSize))
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("a failing output went unnoticed")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after close accepted")
	}
}

func TestDecompressDamaged(t *testing.T) {
	z := compress(t, testData(ChunkSize+1000))
	flipped := bytes.Clone(z)
	flipped[len(flipped)/2] ^= 0x40
	if _, err := decompress(t, flipped); err == nil {
		t.Error("bit flip not detected")
	}
	if _, err := decompress(t, z[:len(z)-10]); err == nil {
		t.Error("truncation not detected")
	}
}

// hugeWindowFrame is a frame whose header declares a 1 GiB window
// (exponent 20: 2^(10+20)), over MaxWindow, then one RLE block of 128 KiB
// of 'A' as the last block.
func hugeWindowFrame() []byte {
	f := []byte(zstdMagic)
	f = append(f, 0x00, 20<<3) // descriptor: no content size, no checksum; window
	bh := uint32(1) | 1<<1 | uint32(128<<10)<<3
	f = binary.LittleEndian.AppendUint32(f, bh)[:len(f)+3]
	return append(f, 'A')
}

func TestDecompressRefusesHugeWindow(t *testing.T) {
	_, err := decompress(t, hugeWindowFrame())
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) || !strings.Contains(err.Error(), "128 MiB") {
		t.Fatalf("frame with a 1 GiB window: got %v", err)
	}
}

// A frame that expands a little input a lot streams in bounded memory: the
// output is not held whole.
func TestDecompressBombStreams(t *testing.T) {
	var z bytes.Buffer
	w, _ := Compress(&z, DefaultLevel)
	zeros := make([]byte, 1<<20)
	for range 256 {
		w.Write(zeros)
	}
	w.Close()
	if z.Len() > 1<<20 {
		t.Fatalf("256 MiB of zeros compressed to %d bytes", z.Len())
	}
	r, err := Decompress(bytes.NewReader(z.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != 256<<20 {
		t.Fatalf("got %d bytes, %v", n, err)
	}
}

func TestZstdInterop(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not on PATH (CI installs it)")
	}
	data := testData(2*ChunkSize + 777)
	t.Run("seal to zstd -d", func(t *testing.T) {
		for _, opts := range [][]Option{nil, {Sealed()}} {
			cmd := exec.Command("zstd", "-d", "-q", "-c")
			cmd.Stdin = bytes.NewReader(compress(t, data, opts...))
			got, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("zstd -d output differs (sealed: %v)", len(opts) > 0)
			}
		}
	})
	t.Run("zstd to seal", func(t *testing.T) {
		// zstd -19 spends 0.8 s of CPU on the whole of data, two thirds of
		// the package's: a quarter MiB makes the same frame, which declares
		// --long's 128 MiB window whatever the size (a pipe's is unknown).
		for _, c := range []struct {
			args []string
			in   []byte
		}{{[]string{"-3", "-T0"}, data}, {[]string{"-19", "--long"}, data[:256<<10]}} {
			cmd := exec.Command("zstd", append(c.args, "-q", "-c")...)
			cmd.Stdin = bytes.NewReader(c.in)
			z, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			got, err := decompress(t, z)
			if err != nil || !bytes.Equal(got, c.in) {
				t.Fatalf("zstd %v: %v", c.args, err)
			}
		}
	})
}

// A decoder given back by Close, after a stream left half read, a damaged
// one or a refused window, decodes the next stream as a new one would; a
// closed stream reads no more.
func TestDecompressAfterClose(t *testing.T) {
	data := testData(ChunkSize + 1000)
	z := compress(t, data)
	flipped := bytes.Clone(z)
	flipped[len(flipped)/2] ^= 0x40
	for _, before := range [][]byte{z, flipped, hugeWindowFrame()} {
		r, err := Decompress(bytes.NewReader(before))
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(io.LimitReader(r, ChunkSize/2))
		r.Close()
		if _, err := r.Read(make([]byte, 10)); err == nil {
			t.Fatal("a closed stream read on")
		}
		for range 2 {
			if got, err := decompress(t, z); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after a stream closed: %v, equal %v", err, bytes.Equal(got, data))
			}
		}
	}
}
