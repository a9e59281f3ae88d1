package shard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bk-backup/bk/internal/shard/sharetest"
)

// Dishonest hosts, forged from docs/FORMAT.md's byte layout by package
// sharetest (issue "Trust", items 1, 2, 5 and 6).

// joinStreamOf joins the share stream made of the share files at paths.
func joinStreamOf(t *testing.T, info SetInfo, paths []string) joinResult {
	t.Helper()
	var shares [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, b)
	}
	var r joinResult
	var out bytes.Buffer
	r.report, r.err = JoinStream(context.Background(), bytes.NewReader(streamOf(t, info, shares)), &out, JoinOptions{
		Warn: func(f string, a ...any) { r.warns = append(r.warns, fmt.Sprintf(f, a...)) },
	})
	r.out = out.Bytes()
	return r
}

// mustRefuse checks that the join failed with an error saying each of
// subs, and wrote nothing but whole stripes of data.
func (r joinResult) mustRefuse(t *testing.T, data []byte, stripe int, subs ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("join succeeded; wrote %d bytes (data %d), warnings %q", len(r.out), len(data), r.warns)
	}
	for _, s := range subs {
		if !strings.Contains(r.err.Error(), s) {
			t.Errorf("error %q does not say %q", r.err, s)
		}
	}
	if !bytes.HasPrefix(data, r.out) || len(r.out)%stripe != 0 || len(r.out) == len(data) {
		t.Fatalf("failed join wrote %d bytes: not a prefix of whole stripes", len(r.out))
	}
}

// Item 1: one host of a 2-of-3 set rewrites its trailer to claim a shorter
// or longer length of the same stripe count, with the stream hash and the
// trailer checksum recomputed from its own records.
func TestForgedTrailer(t *testing.T) {
	for _, delta := range []int64{-10, -1, +1, +10} {
		t.Run(fmt.Sprint(delta), func(t *testing.T) {
			data := randBytes(21, 20000) // 79 stripes of 256 bytes, 32 in the last
			info, paths := splitFiles(t, data, SplitOptions{K: 2, N: 3, BlockSize: testBlock})
			f := load(t, paths[2])
			f.SetLength(f.Length() + delta)
			save(t, f)
			for name, r := range map[string]joinResult{"files": join(paths...), "stream": joinStreamOf(t, info, paths)} {
				if r.err != nil || !bytes.Equal(r.out, data) {
					t.Fatalf("%s: wrote %d bytes of %d, err %v", name, len(r.out), len(data), r.err)
				}
				if !r.report.Degraded() || !strings.Contains(strings.Join(r.warns, "\n"), "share 2") ||
					strings.Contains(strings.Join(r.warns, "\n"), "share 0") || strings.Contains(strings.Join(r.warns, "\n"), "share 1") {
					t.Fatalf("%s: warnings %q do not blame share 2 alone", name, r.warns)
				}
			}
		})
	}
}

// Item 1, K or more forgers: with K = 1 a forged trailer that the data
// confirms (zeros past the length) stands against the honest ones, and
// both are refused.
func TestForgedTrailerTwoVersions(t *testing.T) {
	data := randBytes(22, 20000)
	_, paths := splitFiles(t, data, SplitOptions{K: 1, N: 3, BlockSize: testBlock})
	f := load(t, paths[2])
	f.SetLength(f.Length() + 10)
	save(t, f)
	r := join(paths...)
	if r.err == nil || !strings.Contains(r.err.Error(), "trailers disagree") ||
		!strings.Contains(r.err.Error(), "shares 0 ("+paths[0]+"), 1 ("+paths[1]+") say 20000 bytes") ||
		!strings.Contains(r.err.Error(), "share 2 ("+paths[2]+") says 20010 bytes") {
		t.Fatalf("err = %v", r.err)
	}
	if len(r.out) != 20000-20000%testBlock {
		t.Fatalf("wrote %d bytes: the last stripe must wait for the trailer", len(r.out))
	}
}

// collude makes the shares at paths agree on a forged block idx of stripe
// st: its holder alters it, and every colluder's record names the forged
// checksum; their trailers are resealed.
func collude(t *testing.T, st int64, idx int, paths ...string) {
	t.Helper()
	var sum [sharetest.HashSize]byte
	for _, p := range paths {
		f := load(t, p)
		if f.Index == idx {
			f.Flip(st, 3)
			sum = f.Rehash(st)
		}
	}
	for _, p := range paths {
		f := load(t, p)
		if f.Index == idx {
			f.Flip(st, 3)
		}
		copy(f.Checksum(st, idx), sum[:])
		f.Reseal()
		save(t, f)
	}
}

// Item 2: with K = 2 and N = 4, two hosts alter the same block and its
// checksum in both their records. Today's reader, which reads only K
// shares, outputs their version; now the honest records are read too, the
// two versions are found, and both refused, naming the shares.
func TestCollusionRefused(t *testing.T) {
	data := randBytes(23, 20000)
	info, paths := splitFiles(t, data, SplitOptions{K: 2, N: 4, BlockSize: testBlock})
	collude(t, 5, 0, paths[0], paths[1])
	want := []string{"stripe 5: share 0 (" + paths[0] + ") and shares 2 (" + paths[2] + "), 3 (" + paths[3] + ") each hold a consistent version of it, and the two differ; refusing both"}
	join(paths...).mustRefuse(t, data, int(info.StripeSize()), want...)
	joinStreamOf(t, info, paths).mustRefuse(t, data, int(info.StripeSize()), "stripe 5: share 0 and shares 2, 3 each hold")
	// One honest share's records are enough to tell: the honest block of
	// a colluder makes a second view with it.
	join(paths[0], paths[1], paths[3]).mustRefuse(t, data, int(info.StripeSize()), "refusing both")
}

// Item 2, fewer than K: a host that alters its block, its own checksum and
// lies in its record about another share's block cannot stop the restore
// nor change it, from files or a stream.
func TestOneForgerBelowK(t *testing.T) {
	for _, kn := range [][2]int{{2, 3}, {2, 4}, {3, 5}} {
		t.Run(fmt.Sprintf("%d of %d", kn[0], kn[1]), func(t *testing.T) {
			data := randBytes(24, 20000)
			info, paths := splitFiles(t, data, SplitOptions{K: kn[0], N: kn[1], BlockSize: testBlock})
			f := load(t, paths[0])
			f.Forge(4)
			f.Checksum(7, 1)[0] ^= 1 // a lie about share 1's block
			f.Reseal()
			save(t, f)
			for name, r := range map[string]joinResult{"files": join(paths...), "stream": joinStreamOf(t, info, paths)} {
				if r.err != nil || !bytes.Equal(r.out, data) {
					t.Fatalf("%s: err %v, %d bytes", name, r.err, len(r.out))
				}
				if !r.report.Degraded() {
					t.Fatalf("%s: not reported as degraded", name)
				}
			}
		})
	}
}

// Item 5: a share of another set among enough shares of the set is just a
// bad share; the set a manifest names is the one rebuilt.
func TestShareOfAnotherSet(t *testing.T) {
	data := randBytes(25, 5000)
	other := randBytes(26, 5000)
	_, a := splitFiles(t, data, SplitOptions{K: 2, N: 3, BlockSize: testBlock})
	infoB, b := splitFiles(t, other, SplitOptions{K: 2, N: 3, BlockSize: testBlock})
	r := join(a[0], b[1], a[2])
	r.mustEqual(t, data)
	r.mustWarn(t, b[1]+": a share of another set")
	if len(r.report.Damaged) != 1 || r.report.Damaged[0] != b[1] {
		t.Fatalf("damaged %q", r.report.Damaged)
	}
	var out bytes.Buffer
	rep, err := Join(context.Background(), sources([]string{a[0], b[0], b[1], a[1], b[2]}), &out, JoinOptions{SetID: infoB.SetID})
	if err != nil || !bytes.Equal(out.Bytes(), other) || len(rep.Damaged) != 2 {
		t.Fatalf("set given: err %v, damaged %q", err, rep.Damaged)
	}
}

// Item 6: the report says when anything touched was not healthy.
func TestReportDegraded(t *testing.T) {
	data, paths := setup(t, 5000, 2, 3)
	if r := join(paths...); r.err != nil || r.report.Degraded() {
		t.Fatalf("healthy set: %v, %+v", r.err, r.report)
	}
	if r := join(paths[1:]...); r.err != nil || !r.report.Degraded() {
		t.Fatalf("share missing: %v, %+v", r.err, r.report)
	}
	f := load(t, paths[0])
	f.Flip(2, 0)
	save(t, f)
	r := join(paths...)
	r.mustEqual(t, data)
	if !r.report.Degraded() || len(r.report.Damaged) != 1 {
		t.Fatalf("damaged block: %+v", r.report)
	}
}

// countingSource counts the bytes read from a share.
type countingSource struct {
	*memSource
	n *int64
}

func (c countingSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	rc, err := c.memSource.Open(ctx, offset)
	return countingReader{rc.(seekCloser), c.n}, err
}

type countingReader struct {
	seekCloser
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.seekCloser.Read(p)
	atomic.AddInt64(c.n, int64(n))
	return n, err
}

func (c countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.seekCloser.ReadAt(p, off)
	atomic.AddInt64(c.n, int64(n))
	return n, err
}

// The records of the shares whose blocks are not needed are read, and
// only they: 32·N bytes a stripe, not the blocks.
func TestChecksumsOnlyRead(t *testing.T) {
	data := randBytes(27, 100_000)
	info, shares := splitMem(t, data, SplitOptions{K: 4, N: 6, BlockSize: 1024})
	counts := make([]int64, len(shares))
	var sources []Source
	for i, s := range shares {
		sources = append(sources, countingSource{&memSource{fmt.Sprint(i), s}, &counts[i]})
	}
	var out bytes.Buffer
	if _, err := Join(context.Background(), sources, &out, JoinOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("join: %v", err)
	}
	stripes := stripesFor(int64(len(data)), info)
	hdr := int64(Header{SetInfo: info}.Size())
	for i, n := range counts {
		whole := int64(len(shares[i]))
		if i < info.K && n < whole-hdr {
			t.Errorf("data share %d: read %d bytes of %d", i, n, whole)
		}
		if limit := hdr + stripes*int64(info.N*HashSize) + 2*TrailerSize + 1; i >= info.K && n > limit {
			t.Errorf("parity share %d: read %d bytes, more than its header, checksums and trailer (%d)", i, n, limit)
		}
	}
}
