package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"pgregory.net/rapid"
)

type readAtResult struct {
	r     *ReaderAt
	warns []string
	mu    sync.Mutex
}

func (res *readAtResult) warned() string {
	res.mu.Lock()
	defer res.mu.Unlock()
	return strings.Join(res.warns, "\n")
}

// openAt opens sources for ranged reads of a stream of length bytes,
// reading no stripe ahead, so that what is read is what was asked for.
func openAt(t fataler, sources []Source, length int64) (*readAtResult, error) {
	res := &readAtResult{}
	r, err := NewReaderAt(context.Background(), sources, ReadAtOptions{
		Length: length, ReadAhead: -1,
		JoinOptions: JoinOptions{Warn: func(f string, a ...any) {
			res.mu.Lock()
			res.warns = append(res.warns, fmt.Sprintf(f, a...))
			res.mu.Unlock()
		}},
	})
	res.r = r
	return res, err
}

func mustOpenAt(t *testing.T, sources []Source, length int64) *readAtResult {
	t.Helper()
	res, err := openAt(t, sources, length)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.r.Close() })
	return res
}

// readRange reads [off, off+n) through r and checks it against data.
func readRange(r *ReaderAt, data []byte, off, n int) error {
	p := make([]byte, n)
	got, err := r.ReadAt(p, int64(off))
	want := data[min(off, len(data)):min(off+n, len(data))]
	switch {
	case got != len(want):
		return fmt.Errorf("ReadAt(%d, %d) = %d bytes, %v; want %d", n, off, got, err, len(want))
	case !bytes.Equal(p[:got], want):
		return fmt.Errorf("ReadAt(%d, %d): bytes differ from the stream's", n, off)
	case len(want) < n && !errors.Is(err, io.EOF):
		return fmt.Errorf("ReadAt(%d, %d) short, err = %v, want EOF", n, off, err)
	case len(want) == n && err != nil:
		return fmt.Errorf("ReadAt(%d, %d): %v", n, off, err)
	}
	return nil
}

func memSources(shares [][]byte, which []int) []Source {
	var out []Source
	for _, i := range which {
		out = append(out, &memSource{fmt.Sprintf("m%d", i), shares[i]})
	}
	return out
}

// TestPropertyReadAt: any range read equals those bytes of the stream a
// full join writes, with up to N-K shares lost or damaged in any stripe,
// from shares read at offsets, opened anew for each range, or opened for
// each range alone.
func TestPropertyReadAt(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.IntRange(1, 4).Draw(t, "k")
		n := rapid.IntRange(k+1, k+3).Draw(t, "n")
		bs := rapid.SampledFrom([]int{64, 128}).Draw(t, "blocksize")
		size := rapid.IntRange(0, 4000).Draw(t, "size")
		data := randBytes(rapid.Uint64().Draw(t, "seed"), size)
		info, shares := splitMem(t, data, SplitOptions{K: k, N: n, BlockSize: bs})
		hdr := Header{SetInfo: info}.Size()
		perm := rapid.Permutation(rangeN(n)).Draw(t, "order")
		lost := rapid.IntRange(0, n-k).Draw(t, "lost")
		present := perm[lost:]
		for s := range int(stripesFor(int64(size), info)) {
			hit := rapid.IntRange(0, n-k-lost).Draw(t, fmt.Sprintf("hit%d", s))
			for _, i := range rapid.Permutation(present).Draw(t, fmt.Sprintf("which%d", s))[:hit] {
				shares[i] = bytes.Clone(shares[i])
				shares[i][hdr+s*info.RecordSize()+rapid.IntRange(0, info.RecordSize()-1).Draw(t, "at")] ^= 1
			}
		}
		sources := memSources(shares, present)
		var joined bytes.Buffer
		if _, err := Join(context.Background(), sources, &joined, JoinOptions{}); err != nil {
			t.Fatalf("join: %v", err)
		}
		switch rapid.IntRange(0, 2).Draw(t, "open") {
		case 1:
			for i, s := range sources {
				sources[i] = streamOnly{s}
			}
		case 2:
			for i, s := range sources {
				sources[i] = rangesOnly{s.(*memSource)}
			}
		}
		res, err := openAt(t, sources, int64(size))
		if err != nil {
			t.Fatal(err)
		}
		defer res.r.Close()
		if res.r.Size() != int64(size) {
			t.Fatalf("Size() = %d, want %d", res.r.Size(), size)
		}
		for range rapid.IntRange(1, 6).Draw(t, "reads") {
			off := rapid.IntRange(0, size+10).Draw(t, "off")
			if err := readRange(res.r, joined.Bytes(), off, rapid.IntRange(0, size+10).Draw(t, "len")); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// streamOnly hides a source's ReadAt: each range opens it anew, as
// rclone's does.
type streamOnly struct{ Source }

func (s streamOnly) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	rc, err := s.Source.Open(ctx, offset)
	return struct{ io.ReadCloser }{rc}, err
}

// rangesOnly opens a part of a share alone, and fails if read past it:
// a source like rclone's.
type rangesOnly struct{ *memSource }

func (s rangesOnly) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	return nil, errors.New("Open where OpenRange serves")
}

func (s rangesOnly) OpenRange(_ context.Context, offset, length int64) (io.ReadCloser, error) {
	if offset > int64(len(s.b)) {
		return nil, errors.New("offset past the end")
	}
	return io.NopCloser(bytes.NewReader(s.b[offset:min(offset+length, int64(len(s.b)))])), nil
}

// TestPropertyReadAtDishonest: hosts alter their shares consistently
// (blocks with every colluder's record naming the forgery, lies about
// honest blocks, trailers): with fewer than K of them and K honest shares
// reachable every read is exact; with K or more, a read is exact or fails,
// never other bytes.
func TestPropertyReadAtDishonest(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.IntRange(1, 3).Draw(t, "k")
		n := rapid.IntRange(k+1, k+3).Draw(t, "n")
		size := rapid.IntRange(1, 3000).Draw(t, "size")
		data := randBytes(rapid.Uint64().Draw(t, "seed"), size)
		info, shares := splitMem(t, data, SplitOptions{K: k, N: n, BlockSize: 64})
		perm := rapid.Permutation(rangeN(n)).Draw(t, "order")
		forgers := perm[:rapid.IntRange(0, n-k).Draw(t, "forgers")]
		honest := perm[len(forgers):]
		reachable := append(slices.Clone(forgers), honest[:len(honest)-rapid.IntRange(0, len(honest)-k).Draw(t, "lost")]...)
		shares = forge(t, info, shares, size, forgers, honest)
		res, err := openAt(t, memSources(shares, reachable), int64(size))
		if err != nil {
			if len(forgers) < k {
				t.Fatalf("%d forgers of K=%d stopped the open: %v", len(forgers), k, err)
			}
			return
		}
		defer res.r.Close()
		for range rapid.IntRange(1, 5).Draw(t, "reads") {
			off := rapid.IntRange(0, size-1).Draw(t, "off")
			want := rapid.IntRange(1, size).Draw(t, "len")
			p := make([]byte, want)
			got, err := res.r.ReadAt(p, int64(off))
			switch {
			case !bytes.Equal(p[:got], data[off:off+got]):
				t.Fatalf("%d forgers of K=%d: ReadAt(%d, %d) returned other bytes (err %v)", len(forgers), k, want, off, err)
			case err != nil && !errors.Is(err, io.EOF) && len(forgers) < k:
				t.Fatalf("%d forgers of K=%d stopped a read: %v", len(forgers), k, err)
			case err == nil && got < want:
				t.Fatalf("short read without an error")
			}
		}
	})
}

// K colluders with a consistent version of a stripe: reading it fails,
// naming both groups; the stripes they left alone still read.
func TestReadAtCollusionRefused(t *testing.T) {
	t.Parallel()
	data := randBytes(23, 20000)
	info, paths := splitFiles(t, data, SplitOptions{K: 2, N: 4, BlockSize: testBlock})
	honest := load(t, paths[0]).Trailer()
	collude(t, 5, 0, paths[0], paths[1])
	// Their resealed trailers hold another stream hash: two versions of
	// the stream, held by K shares each.
	if _, err := openAt(t, sources(paths), int64(len(data))); err == nil || !strings.Contains(err.Error(), "the shares' trailers disagree (shares 0 ("+paths[0]+"), 1 ("+paths[1]+") say 20000 bytes") {
		t.Fatalf("open: err = %v", err)
	}
	var sum [HashSize]byte
	copy(sum[:], honest[40:72])
	if _, err := NewReaderAt(context.Background(), sources(paths), ReadAtOptions{Length: int64(len(data)), StreamHash: sum}); err == nil ||
		!strings.HasPrefix(err.Error(), "shares 0 ("+paths[0]+"), 1 ("+paths[1]+") say the stream is 20000 bytes") {
		t.Fatalf("open with the manifest's hash: err = %v", err)
	}
	// With the honest trailers back, the stripe they forged is refused.
	for _, p := range paths[:2] {
		f := load(t, p)
		copy(f.Trailer(), honest)
		save(t, f)
	}
	res := mustOpenAt(t, sources(paths), int64(len(data)))
	ss := int(info.StripeSize())
	_, err := res.r.ReadAt(make([]byte, 10), int64(5*ss+3))
	want := "stripe 5: share 0 (" + paths[0] + ") and shares 2 (" + paths[2] + "), 3 (" + paths[3] + ") each hold a consistent version of it, and the two differ; refusing both"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if err := readRange(res.r, data, 6*ss, 3*ss); err != nil {
		t.Fatal(err)
	}
	// A read across it gives the stripes before it, whole, and the error.
	p := make([]byte, 3*ss)
	if n, err := res.r.ReadAt(p, int64(3*ss+7)); err == nil || n != 2*ss-7 || !bytes.Equal(p[:n], data[3*ss+7:5*ss]) {
		t.Fatalf("read across: %d bytes, %v", n, err)
	}
}

// A rotted block in a stripe read: the bytes are right, the share is
// named once, and later stripes read another share's block first.
func TestReadAtRottedShare(t *testing.T) {
	t.Parallel()
	data := randBytes(31, 20000)
	info, paths := splitFiles(t, data, SplitOptions{K: 2, N: 3, BlockSize: testBlock})
	f := load(t, paths[0])
	f.Flip(4, 9)
	f.Flip(6, 9)
	save(t, f)
	res := mustOpenAt(t, sources(paths), int64(len(data)))
	ss := int(info.StripeSize())
	for _, s := range []int{4, 5, 6} {
		if err := readRange(res.r, data, s*ss+1, ss); err != nil {
			t.Fatal(err)
		}
	}
	if w := res.warned(); strings.Count(w, "share 0 ("+paths[0]+"): damaged at stripe 4") != 1 || strings.Count(w, "share 0") != 1 {
		t.Fatalf("warnings %q", w)
	}
	if rep := res.r.Report(); !rep.Degraded() || !slices.Equal(rep.Damaged, []string{"share 0 (" + paths[0] + ")"}) {
		t.Fatalf("report %+v", rep)
	}
}

// Reading one range fetches the headers and trailers, then for each
// stripe it covers the records of K shares and the checksums of the
// others: nothing more.
func TestReadAtFetchesOnlyItsStripes(t *testing.T) {
	data := randBytes(27, 100_000)
	info, shares := splitMem(t, data, SplitOptions{K: 3, N: 5, BlockSize: 1024})
	for _, stream := range []bool{false, true} {
		sources := memSources(shares, rangeN(5))
		if stream {
			for i, s := range sources {
				sources[i] = streamOnly{s}
			}
		}
		res := mustOpenAt(t, sources, int64(len(data)))
		hdr := int64(Header{SetInfo: info}.Size())
		if !stream {
			hdr = headerGuess // read at once
		}
		opened := 5 * (hdr + TrailerSize)
		if got := res.r.Stats().Fetched; got != opened {
			t.Fatalf("open fetched %d bytes, want %d", got, opened)
		}
		ss := int(info.StripeSize())
		// Stripes 7 and 8.
		if err := readRange(res.r, data, 7*ss+100, ss); err != nil {
			t.Fatal(err)
		}
		perStripe := int64(3*info.RecordSize() + 2*info.N*HashSize)
		st := res.r.Stats()
		if st.Fetched != opened+2*perStripe || st.Stripes != 2 {
			t.Fatalf("stream %v: fetched %d bytes in %d stripes, want %d in 2", stream, st.Fetched, st.Stripes, opened+2*perStripe)
		}
		if st.ShareBytes != int64(5*len(shares[0])) {
			t.Fatalf("ShareBytes %d, want %d", st.ShareBytes, 5*len(shares[0]))
		}
		// Cached: no more reads.
		if err := readRange(res.r, data, 8*ss, 10); err != nil || res.r.Stats().Fetched != st.Fetched {
			t.Fatalf("cached read: %v, fetched %d more", err, res.r.Stats().Fetched-st.Fetched)
		}
	}
}

// Reads in order, 64 KiB at a time as age's reader goes, have the
// stripes after them decoded ahead: as many as the reads moved across,
// up to ReadAhead; reads within one stripe, none.
func TestReadAtReadsAhead(t *testing.T) {
	t.Parallel()
	data := randBytes(39, 600_000)
	_, shares := splitMem(t, data, SplitOptions{K: 2, N: 3, BlockSize: 16 << 10}) // stripes of 32 KiB
	r, err := NewReaderAt(context.Background(), memSources(shares, rangeN(3)), ReadAtOptions{Length: int64(len(data)), ReadAhead: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for off := range 100 {
		if err := readRange(r, data, off*100, 100); err != nil {
			t.Fatal(err)
		}
	}
	if r.reading.Wait(); r.Stats().Stripes != 1 {
		t.Fatalf("%d stripes decoded for reads within the first one", r.Stats().Stripes)
	}
	// Chunks in stripes 0 to 2 (then 2 ahead: 3, 4), 2 to 4 (3 ahead: 5
	// to 7), 4 to 6 (3 ahead: 8, 9 and 7, already there).
	const chunk = 64<<10 + 16
	var got []int64
	for off := 0; off < 3*chunk; off += chunk {
		if err := readRange(r, data, off, chunk); err != nil {
			t.Fatal(err)
		}
		r.reading.Wait()
		got = append(got, r.Stats().Stripes)
	}
	if !slices.Equal(got, []int64{5, 8, 10}) {
		t.Fatalf("stripes decoded after each read: %v, want [5 8 10]", got)
	}
}

// Trailers held by K shares that say another length fail the open,
// naming them; one share's is only damage.
func TestReadAtTrailers(t *testing.T) {
	t.Parallel()
	data := randBytes(33, 5000)
	_, paths := splitFiles(t, data, SplitOptions{K: 2, N: 3, BlockSize: testBlock})
	if _, err := openAt(t, sources(paths), 4999); err == nil || !strings.Contains(err.Error(), "shares 0 ("+paths[0]+"), 1 ("+paths[1]+"), 2 ("+paths[2]+") say the stream is 5000 bytes") {
		t.Fatalf("wrong length: err = %v", err)
	}
	f := load(t, paths[1])
	f.SetLength(4990)
	save(t, f)
	res := mustOpenAt(t, sources(paths), 5000)
	if w := res.warned(); !strings.Contains(w, "share 1 ("+paths[1]+"): damaged at its end: its trailer says 4990 bytes") {
		t.Fatalf("warnings %q", w)
	}
	if err := readRange(res.r, data, 0, 5000); err != nil {
		t.Fatal(err)
	}
}

// Concurrent reads of overlapping ranges, with a share missing and one
// rotted, all exact.
func TestReadAtConcurrent(t *testing.T) {
	t.Parallel()
	data := randBytes(35, 200_000)
	info, shares := splitMem(t, data, SplitOptions{K: 3, N: 5, BlockSize: 512})
	shares[2] = bytes.Clone(shares[2])
	for s := range stripesFor(int64(len(data)), info) {
		shares[2][Header{SetInfo: info}.Offset(s)+5] ^= 1
	}
	res := mustOpenAt(t, memSources(shares, []int{0, 2, 3, 4}), int64(len(data)))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for range 30 {
				if err := readRange(res.r, data, rnd.IntN(len(data)), rnd.IntN(20_000)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// BenchmarkReadAt: restoring one file, as a seeking reader does it: open
// a 2-of-3 set of local share files and read 1 MiB at a random offset,
// with all shares and with data share 0 missing (every stripe decoded);
// against the full join of the same set, the reference. fetched/share is
// the part of the shares' bytes read.
func BenchmarkReadAt(b *testing.B) {
	data := randBytes(1, benchSize)
	_, paths := splitFiles(b, data, SplitOptions{K: 2, N: 3})
	b.Run("join-all", func(b *testing.B) {
		b.SetBytes(benchSize)
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, err := Join(context.Background(), sources(paths), io.Discard, JoinOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, use := range map[string][]string{"1MiB-all": paths, "1MiB-missing0": paths[1:]} {
		b.Run(name, func(b *testing.B) {
			const size = 1 << 20
			rnd := rand.New(rand.NewPCG(1, 2))
			p := make([]byte, size)
			var fetched, share int64
			b.SetBytes(size)
			defer cpuPerOp(b)()
			for b.Loop() {
				r, err := NewReaderAt(context.Background(), sources(use), ReadAtOptions{Length: benchSize})
				if err != nil {
					b.Fatal(err)
				}
				off := rnd.Int64N(benchSize - size)
				if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+size]) {
					b.Fatalf("ReadAt: %v", err)
				}
				fetched += r.Stats().Fetched
				share += r.Stats().ShareBytes
				r.Close()
			}
			b.ReportMetric(float64(fetched)/float64(share), "fetched/share")
		})
	}
}

// The layer above: age decrypts any range of the stream through the
// ReaderAt, with a share missing and another rotted in a stripe read.
func TestReadAtUnderAge(t *testing.T) {
	t.Parallel()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	plain := randBytes(37, 300_000)
	var enc bytes.Buffer
	w, err := age.Encrypt(&enc, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil || w.Close() != nil {
		t.Fatal(err)
	}
	info, shares := splitMem(t, enc.Bytes(), SplitOptions{K: 2, N: 4, BlockSize: 4096})
	const off, n = 150_000, 70_000 // in age chunks 2 and 3
	stripe := (int64(off) + 100) / info.StripeSize()
	shares[1] = bytes.Clone(shares[1])
	shares[1][Header{SetInfo: info}.Offset(stripe)+7] ^= 1
	res := mustOpenAt(t, memSources(shares, []int{1, 2, 3}), int64(enc.Len()))
	ra, size, err := age.DecryptReaderAt(res.r, res.r.Size(), id)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, n)
	if size != int64(len(plain)) {
		t.Fatalf("age says %d bytes, want %d", size, len(plain))
	}
	if _, err := ra.ReadAt(p, off); err != nil || !bytes.Equal(p, plain[off:off+n]) {
		t.Fatalf("ReadAt through age: %v", err)
	}
	if w := res.warned(); !strings.Contains(w, "share 1 (m1): damaged at stripe") {
		t.Fatalf("warnings %q", w)
	}
	if st := res.r.Stats(); st.Fetched > st.ShareBytes/3 {
		t.Fatalf("fetched %d of %d share bytes for %d of %d", st.Fetched, st.ShareBytes, n, len(plain))
	}
}
