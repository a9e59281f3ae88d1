package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/bk-backup/bk/internal/shard/sharetest"
)

func load(t testing.TB, path string) *sharetest.Share {
	t.Helper()
	f, err := sharetest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func save(t testing.TB, f *sharetest.Share) {
	t.Helper()
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
}

type joinResult struct {
	out    []byte
	report JoinReport
	err    error
	warns  []string
	notes  []string
}

func join(paths ...string) joinResult {
	var r joinResult
	var out bytes.Buffer
	r.report, r.err = Join(context.Background(), sources(paths), &out, JoinOptions{
		Warn: func(f string, a ...any) { r.warns = append(r.warns, fmt.Sprintf(f, a...)) },
		Note: func(f string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(f, a...)) },
	})
	r.out = out.Bytes()
	return r
}

func (r joinResult) mustEqual(t *testing.T, data []byte) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("join: %v (warnings %q)", r.err, r.warns)
	}
	if !bytes.Equal(r.out, data) {
		t.Fatalf("join wrote %d bytes that differ from the %d split", len(r.out), len(data))
	}
}

func (r joinResult) mustWarn(t *testing.T, subs ...string) {
	t.Helper()
	all := strings.Join(r.warns, "\n")
	for _, s := range subs {
		if !strings.Contains(all, s) {
			t.Errorf("no warning mentions %q; got:\n%s", s, all)
		}
	}
}

const testBlock = 128

func setup(t *testing.T, size, k, n int) ([]byte, []string) {
	data := randBytes(uint64(size+k*7+n), size)
	_, paths := splitFiles(t, data, SplitOptions{K: k, N: n, BlockSize: testBlock})
	return data, paths
}

func TestMissingSharesWarnOnly(t *testing.T) {
	data, paths := setup(t, 5000, 3, 5)
	r := join(paths[1], paths[3], paths[4])
	r.mustEqual(t, data)
	r.mustWarn(t, "share 0 of set", "share 2 of set")
	if len(r.report.Missing) != 2 || len(r.report.Damaged) != 0 {
		t.Fatalf("report %+v", r.report)
	}
}

func TestDamageInDifferentStripes(t *testing.T) {
	// Every share but one is damaged somewhere, never two in one stripe
	// beyond N-K: per-stripe handling still rebuilds.
	data, paths := setup(t, 20000, 3, 5)
	for i, p := range paths[:4] {
		f := load(t, p)
		f.Flip(int64(2+3*i), 5)
		save(t, f)
	}
	r := join(paths...)
	r.mustEqual(t, data)
	r.mustWarn(t, "share 0 ("+paths[0]+"): damaged at stripe 2", "share 1 ("+paths[1]+"): damaged at stripe 5",
		"share 2 ("+paths[2]+"): damaged at stripe 8")
}

func TestDamageSameStripe(t *testing.T) {
	data, paths := setup(t, 20000, 3, 5)
	for _, p := range paths[:2] {
		f := load(t, p)
		f.Flip(4, 100)
		save(t, f)
	}
	join(paths...).mustEqual(t, data)
}

func TestDamagedChecksumRecord(t *testing.T) {
	// A flipped byte in a share's record of another block is outvoted.
	data, paths := setup(t, 20000, 2, 3)
	f := load(t, paths[0])
	f.Checksum(3, 1)[1] ^= 1 // share 0's checksum of block 1
	save(t, f)
	join(paths...).mustEqual(t, data)
}

func TestForgedShareCaught(t *testing.T) {
	for _, kn := range [][2]int{{1, 2}, {2, 3}, {3, 5}} {
		t.Run(fmt.Sprintf("%d of %d", kn[0], kn[1]), func(t *testing.T) {
			data, paths := setup(t, 20000, kn[0], kn[1])
			f := load(t, paths[0])
			f.Forge(3)
			save(t, f)
			// The forged share must agree with itself.
			if r := join(paths[0]); kn[0] == 1 && r.err != nil {
				t.Fatalf("forged share alone: %v", r.err)
			}
			r := join(paths...)
			if kn[0] == 1 {
				// One forger is K of them: two versions, both refused.
				r.mustRefuse(t, data, testBlock, "stripe 3: share 0 ("+paths[0]+") and share 1 ("+paths[1]+") each hold a consistent version")
				return
			}
			r.mustEqual(t, data)
			r.mustWarn(t, "share 0 ("+paths[0]+"): damaged at stripe 3")
		})
	}
}

func TestTooFewGoodBlocksFails(t *testing.T) {
	data, paths := setup(t, 20000, 3, 5)
	for _, p := range paths[:3] {
		f := load(t, p)
		f.Flip(6, 0)
		save(t, f)
	}
	r := join(paths...)
	if r.err == nil {
		t.Fatal("join succeeded with 2 good blocks of 3 needed in stripe 6")
	}
	for _, want := range []string{"cannot rebuild stripe 6: it needs 3 good blocks, found 2",
		"share 0 (" + paths[0] + ") damaged", "share 2 (" + paths[2] + ") damaged"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("error %q does not say %q", r.err, want)
		}
	}
	stripe := 3 * testBlock
	if !bytes.HasPrefix(data, r.out) || len(r.out)%stripe != 0 || len(r.out) > 6*stripe {
		t.Fatalf("wrote %d bytes: not a prefix of whole verified stripes before stripe 6", len(r.out))
	}
}

func TestTooFewShares(t *testing.T) {
	_, paths := setup(t, 1000, 3, 5)
	r := join(paths[0], paths[4])
	if r.err == nil || !strings.Contains(r.err.Error(), "needs 3 of its 5 shares, found 2") {
		t.Fatalf("err = %v", r.err)
	}
	if len(r.out) != 0 {
		t.Fatal("wrote data")
	}
}

func TestMixedSetsRefused(t *testing.T) {
	_, a := setup(t, 1000, 2, 3)
	_, b := setup(t, 1000, 2, 3)
	r := join(a[0], b[2])
	if !errors.Is(r.err, ErrMixedSets) || !strings.Contains(r.err.Error(), b[2]) {
		t.Fatalf("err = %v", r.err)
	}
}

func TestSameShareTwiceCountsOnce(t *testing.T) {
	data, paths := setup(t, 1000, 2, 3)
	copyPath := paths[0] + ".copy"
	raw, _ := os.ReadFile(paths[0])
	if err := os.WriteFile(copyPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r := join(paths[0], copyPath)
	if r.err == nil || !strings.Contains(r.err.Error(), "found 1") {
		t.Fatalf("two copies of one share counted as two: %v", r.err)
	}
	r = join(paths[0], copyPath, paths[2])
	r.mustEqual(t, data)
	if len(r.notes) != 1 || !strings.Contains(r.notes[0], "share 0 given twice") {
		t.Fatalf("notes %q", r.notes)
	}
}

func TestTruncatedAndPaddedShares(t *testing.T) {
	data, paths := setup(t, 20000, 3, 6)
	for i, change := range []func([]byte) []byte{
		func(b []byte) []byte { return b[:len(b)-1] },                     // trailer cut
		func(b []byte) []byte { return b[:len(b)/2] },                     // cut mid-record
		func(b []byte) []byte { return append(b, 0) },                     // padded a little
		func(b []byte) []byte { return append(b, make([]byte, 1000)...) }, // padded by more than a record
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := paths[i%3]
			orig, _ := os.ReadFile(p)
			defer os.WriteFile(p, orig, 0o644)
			if err := os.WriteFile(p, change(bytes.Clone(orig)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := join(paths...)
			r.mustEqual(t, data)
			if len(r.report.Damaged) != 1 || r.report.Damaged[0] != fmt.Sprintf("share %d (%s)", i%3, p) {
				t.Fatalf("damaged %q; warnings %q", r.report.Damaged, r.warns)
			}
		})
	}
}

func TestGarbageSources(t *testing.T) {
	data, paths := setup(t, 1000, 2, 3)
	junk := paths[0] + ".junk"
	if err := os.WriteFile(junk, []byte("hello, not a share at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := join(junk); !errors.Is(r.err, ErrNoShare) {
		t.Fatalf("garbage alone: %v", r.err)
	}
	r := join(junk, paths[1], paths[2])
	r.mustEqual(t, data)
	r.mustWarn(t, junk+": not a bk share; skipped")

	var out bytes.Buffer
	if _, err := JoinStream(context.Background(), strings.NewReader("garbage"), &out, JoinOptions{}); !errors.Is(err, ErrNotShare) {
		t.Fatalf("garbage stream: %v", err)
	}
	f, _ := os.Open(paths[0])
	defer f.Close()
	if _, err := JoinStream(context.Background(), f, &out, JoinOptions{}); !errors.Is(err, ErrIsShare) {
		t.Fatalf("share file as stream: %v", err)
	}
}

func TestStreamDamage(t *testing.T) {
	data := randBytes(3, 30000)
	var stream bytes.Buffer
	info, _, err := SplitStream(context.Background(), bytes.NewReader(data), &stream, SplitOptions{K: 4, N: 6, BlockSize: testBlock})
	if err != nil {
		t.Fatal(err)
	}
	b := stream.Bytes()
	hdr := Header{SetInfo: info}.Size()
	unit := frameHeaderSize + info.RecordSize()
	start := hdr + info.N*(frameHeaderSize+hdr)
	// Damage shares 0 and 1 in stripe 2, and share 5 in stripe 7.
	b[start+(2*info.N+0)*unit+frameHeaderSize+10] ^= 1
	b[start+(2*info.N+1)*unit+frameHeaderSize+20] ^= 1
	b[start+(7*info.N+5)*unit+frameHeaderSize+30] ^= 1
	var out bytes.Buffer
	var warns []string
	if _, err := JoinStream(context.Background(), bytes.NewReader(b), &out, JoinOptions{
		Warn: func(f string, a ...any) { warns = append(warns, fmt.Sprintf(f, a...)) },
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("output differs")
	}
	if len(warns) != 2 {
		t.Fatalf("warnings %q: want shares 0 and 1 (share 5 is parity, not needed)", warns)
	}
	// Cut short: refused, and only whole verified stripes written.
	out.Reset()
	if _, err := JoinStream(context.Background(), bytes.NewReader(b[:len(b)/2]), &out, JoinOptions{}); err == nil {
		t.Fatal("truncated stream accepted")
	}
	if !bytes.HasPrefix(data, out.Bytes()) || out.Len()%int(info.StripeSize()) != 0 {
		t.Fatalf("cut stream: wrote %d bytes, not whole verified stripes", out.Len())
	}
	// Only the end frame cut: the trailers verify the data, with a warning.
	out.Reset()
	warns = nil
	if _, err := JoinStream(context.Background(), bytes.NewReader(b[:len(b)-3]), &out, JoinOptions{
		Warn: func(f string, a ...any) { warns = append(warns, fmt.Sprintf(f, a...)) },
	}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("end frame cut: %v", err)
	}
	if len(warns) != 3 || !strings.Contains(warns[2], "no end frame") {
		t.Fatalf("end frame cut: warnings %q", warns)
	}
}

func TestStreamWithPaddedShare(t *testing.T) {
	// A share stream in which share 1 goes on after the others' trailers.
	data := randBytes(11, 5000)
	info, shares := splitMem(t, data, SplitOptions{K: 2, N: 3, BlockSize: 64})
	var b bytes.Buffer
	sw, _ := NewStreamWriter(&b, info)
	hdr := Header{SetInfo: info}.Size()
	r := info.RecordSize()
	for i, s := range shares {
		_ = sw.WriteFrame(i, s[:hdr])
	}
	stripes := (len(shares[0]) - hdr - TrailerSize) / r
	for u := range stripes + 3 {
		for i, s := range shares {
			switch {
			case u < stripes:
				_ = sw.WriteFrame(i, s[hdr+u*r:hdr+(u+1)*r])
			case u == stripes && i != 1:
				_ = sw.WriteFrame(i, s[len(s)-TrailerSize:])
			case i == 1:
				_ = sw.WriteFrame(i, s[hdr:hdr+r])
			}
		}
	}
	_ = sw.Close()
	var out bytes.Buffer
	var warns []string
	if _, err := JoinStream(context.Background(), &b, &out, JoinOptions{
		Warn: func(f string, a ...any) { warns = append(warns, fmt.Sprintf(f, a...)) },
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("output differs")
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "share 1: damaged at stripe 40: it does not end where the others do") {
		t.Fatalf("warnings %q", warns)
	}
}

// Up to five names are given in full; more are the first four and a count.
func TestSummary(t *testing.T) {
	names := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("share %d", i))
		}
		return s
	}
	for n, want := range map[int]string{
		0: "",
		1: "share 0",
		5: "share 0, share 1, share 2, share 3, share 4",
		6: "share 0, share 1, share 2, share 3 … (and 2 more)",
	} {
		if got := Summary(names(n)); got != want {
			t.Errorf("Summary of %d names = %q, want %q", n, got, want)
		}
	}
}

// countedSource counts the reads at offsets of the readers it opens.
type countedSource struct {
	memSource
	reads *atomic.Int64
}

func (c *countedSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	rc, err := c.memSource.Open(ctx, offset)
	return countedReader{rc.(seekCloser), c.reads}, err
}

type countedReader struct {
	seekCloser
	reads *atomic.Int64
}

func (c countedReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.seekCloser.ReadAt(p, off)
}

// The shares read for their checksums only cost a few reads past their
// end, not a window of 64 stripes' (issue 16: on S3 each read is a GET,
// and a small incremental backup's share of one stripe cost 128 of them).
func TestJoinChecksumReadsStopNearTheEnd(t *testing.T) {
	t.Parallel()
	for _, stripes := range []int{1, 3, 70} {
		data := bytes.Repeat([]byte("0123456789abcdef"), stripes*2*1024/16)
		info, shares := splitMem(t, data, SplitOptions{K: 2, N: 4, BlockSize: 1024})
		var reads atomic.Int64
		var sources []Source
		for i, b := range shares {
			sources = append(sources, &countedSource{memSource{fmt.Sprint("m", i), b}, &reads})
		}
		var out bytes.Buffer
		if _, err := Join(context.Background(), sources, &out, JoinOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("%d stripes: join: %v", stripes, err)
		}
		// Each of the N-K shares: a read a stripe, and at most as many
		// again past the end, each with the read that tells the trailer
		// from a truncated share.
		limit := int64(info.N-info.K) * int64(stripes+2*(stripes+1))
		if got := reads.Load(); got > limit {
			t.Errorf("%d stripes: %d reads at offsets, want at most %d", stripes, got, limit)
		}
	}
}

// sizedSource is a share whose reads are requests (RequestSizer): the
// join reads several records' checksums in one of them.
type sizedSource struct {
	memSource
	size  int
	reads *atomic.Int64
}

func (s *sizedSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	rc, err := s.memSource.Open(ctx, offset)
	return sizedReader{countedReader{rc.(seekCloser), s.reads}, s.size}, err
}

type sizedReader struct {
	countedReader
	size int
}

func (r sizedReader) RequestSize() int { return r.size }

// A share whose reads are requests is read for its checksums a span of
// records a request (issue 16: bk-join made an S3 GET a stripe), with the
// same result as one read a record: the same stream, the same warnings,
// the same failures, whatever is cut, padded or rotten where.
func TestPropertyJoinChecksumSpans(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.IntRange(1, 3).Draw(t, "k")
		n := rapid.IntRange(k+1, k+3).Draw(t, "n")
		bs := rapid.SampledFrom([]int{64, 128}).Draw(t, "blocksize")
		size := rapid.IntRange(0, 6000).Draw(t, "size")
		data := randBytes(rapid.Uint64().Draw(t, "seed"), size)
		info, shares := splitMem(t, data, SplitOptions{K: k, N: n, BlockSize: bs})
		damaged := make([][]byte, n)
		for i := range shares {
			damaged[i] = bytes.Clone(shares[i])
		}
		for range rapid.IntRange(0, 4).Draw(t, "flips") {
			i := rapid.IntRange(0, n-1).Draw(t, "share")
			if len(damaged[i]) > 0 {
				damaged[i][rapid.IntRange(0, len(damaged[i])-1).Draw(t, "at")] ^= 1
			}
		}
		for i := range damaged {
			switch rapid.IntRange(0, 5).Draw(t, fmt.Sprint("end", i)) {
			case 0:
				damaged[i] = damaged[i][:rapid.IntRange(0, len(damaged[i])).Draw(t, "cut")]
			case 1:
				damaged[i] = append(damaged[i], make([]byte, rapid.IntRange(1, 3*info.RecordSize()).Draw(t, "pad"))...)
			}
		}
		span := rapid.IntRange(2, 9).Draw(t, "span")
		requestSize := (span-1)*info.RecordSize() + info.N*HashSize + rapid.IntRange(0, info.BlockSize-1).Draw(t, "slack")
		joinWith := func(sized bool) (string, []byte, JoinReport, []string) {
			var reads atomic.Int64
			var sources []Source
			for i, b := range damaged {
				m := memSource{fmt.Sprint("m", i), b}
				if sized {
					sources = append(sources, &sizedSource{m, requestSize, &reads})
				} else {
					sources = append(sources, &countedSource{m, &reads})
				}
			}
			var out bytes.Buffer
			var warns []string
			report, err := Join(context.Background(), sources, &out, JoinOptions{
				Warn: func(f string, a ...any) { warns = append(warns, fmt.Sprintf(f, a...)) },
			})
			return fmt.Sprint(err), out.Bytes(), report, warns
		}
		err1, out1, rep1, warns1 := joinWith(false)
		err2, out2, rep2, warns2 := joinWith(true)
		if err1 != err2 || !bytes.Equal(out1, out2) || fmt.Sprint(rep1) != fmt.Sprint(rep2) || fmt.Sprint(warns1) != fmt.Sprint(warns2) {
			t.Fatalf("a read a record: %s, %d bytes, %+v, %q\na span of %d a read: %s, %d bytes, %+v, %q",
				err1, len(out1), rep1, warns1, span, err2, len(out2), rep2, warns2)
		}
	})
}

// With spans of 8 records a read, the N-K shares read for their checksums
// cost about an eighth of the reads: the windows start at a span, and the
// read that gets to the share's end tells its trailer (31 reads a share
// for 200 stripes).
func TestJoinChecksumSpansReadLess(t *testing.T) {
	t.Parallel()
	const stripes = 200
	data := bytes.Repeat([]byte("0123456789abcdef"), stripes*2*1024/16)
	info, shares := splitMem(t, data, SplitOptions{K: 2, N: 4, BlockSize: 1024})
	var reads atomic.Int64
	var sources []Source
	for i, b := range shares {
		sources = append(sources, &sizedSource{memSource{fmt.Sprint("m", i), b}, 7*info.RecordSize() + info.N*HashSize, &reads})
	}
	var out bytes.Buffer
	if _, err := Join(context.Background(), sources, &out, JoinOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("join: %v", err)
	}
	if limit := int64(info.N-info.K) * (stripes/8 + 6); reads.Load() > limit {
		t.Errorf("%d reads at offsets, want at most %d", reads.Load(), limit)
	}
}

// openCounted counts the opens of a share.
type openCounted struct {
	memSource
	opens *atomic.Int64
}

func (o *openCounted) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	o.opens.Add(1)
	return o.memSource.Open(ctx, offset)
}

// A join opens each share once: its first read goes on with the reader of
// its header (issue 16: a restore of a chain of 30 backups opened every
// share twice a backup, an S3 GET or an SFTP open each).
func TestJoinOpensEachShareOnce(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 20*2*1024/16)
	_, shares := splitMem(t, data, SplitOptions{K: 2, N: 4, BlockSize: 1024})
	var opens atomic.Int64
	var sources []Source
	for i, b := range shares {
		sources = append(sources, &openCounted{memSource{fmt.Sprint("m", i), b}, &opens})
	}
	var out bytes.Buffer
	if _, err := Join(context.Background(), sources, &out, JoinOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("join: %v", err)
	}
	if got := opens.Load(); got != int64(len(shares)) {
		t.Errorf("%d opens of %d shares, want one each", got, len(shares))
	}
}

// indexedCopy is a copy of a share whose index is known beforehand, as a
// manifest's share on a host is.
type indexedCopy struct {
	openCounted
	index int
}

func (c *indexedCopy) ShareIndex() int { return c.index }

type failingSource struct{ name string }

func (f failingSource) Name() string { return f.name }
func (f failingSource) Open(context.Context, int64) (io.ReadCloser, error) {
	return nil, errors.New("host down")
}

type indexedFailing struct {
	failingSource
	index int
}

func (f indexedFailing) ShareIndex() int { return f.index }

// Of the copies of a share on several hosts, a join reads the first, and
// the next only where the first gives no share that counts: missing,
// another set's, or one whose header disagrees with the others (issue 16:
// every copy's header was read, a request to each host at every backup of
// a chain, for a copy then dropped).
func TestJoinReadsOneCopyOfAShare(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 8*1024/16)
	info, shares := splitMem(t, data, SplitOptions{K: 2, N: 4, BlockSize: 1024})
	_, other := splitMem(t, data, SplitOptions{K: 2, N: 4, BlockSize: 1024})
	h, err := ReadHeader(bytes.NewReader(shares[2]))
	if err != nil {
		t.Fatal(err)
	}
	wrongBlock := h
	wrongBlock.BlockSize = 2048
	disagreeing := append(wrongBlock.Marshal(), shares[2][h.Size():]...)
	var firstOpens, spareOpens atomic.Int64
	first := func(i int, b []byte) Source {
		return &indexedCopy{openCounted{memSource{fmt.Sprint("first", i), b}, &firstOpens}, i}
	}
	var sources []Source
	for i, b := range shares {
		sources = append(sources, first(i, b))
	}
	for i, b := range shares {
		sources = append(sources, &indexedCopy{openCounted{memSource{fmt.Sprint("spare", i), b}, &spareOpens}, i})
	}
	joinWith := func(sources []Source) (JoinReport, error) {
		var out bytes.Buffer
		r, err := Join(context.Background(), sources, &out, JoinOptions{SetID: info.SetID})
		if err == nil && !bytes.Equal(out.Bytes(), data) {
			err = errors.New("other bytes joined")
		}
		return r, err
	}
	if r, err := joinWith(sources); err != nil || r.Degraded() || firstOpens.Load() != 4 || spareOpens.Load() != 0 {
		t.Fatalf("all first copies good: %v, report %+v, %d first and %d spare copies opened", err, r, firstOpens.Load(), spareOpens.Load())
	}
	r, err := NewReaderAt(context.Background(), sources, ReadAtOptions{JoinOptions: JoinOptions{SetID: info.SetID}, Length: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if spareOpens.Load() != 0 {
		t.Fatalf("a ranged reader opened %d spare copies", spareOpens.Load())
	}
	for name, bad := range map[string]Source{
		"missing":          indexedFailing{failingSource{"first2"}, 2},
		"another set's":    first(2, other[2]),
		"header disagrees": first(2, disagreeing),
	} {
		spareOpens.Store(0)
		sources[2] = bad
		r, err := joinWith(sources)
		if err != nil || len(r.Missing) != 0 || spareOpens.Load() != 1 {
			t.Errorf("first copy of share 2 %s: %v, missing %q, %d spare copies opened", name, err, r.Missing, spareOpens.Load())
		}
		at, err := NewReaderAt(context.Background(), sources, ReadAtOptions{JoinOptions: JoinOptions{SetID: info.SetID}, Length: int64(len(data))})
		if err != nil || len(at.Report().Missing) != 0 || spareOpens.Load() != 2 {
			t.Errorf("first copy of share 2 %s, ranged: %v, %d spare copies opened", name, err, spareOpens.Load())
		}
		if at != nil {
			at.Close()
		}
	}
}
