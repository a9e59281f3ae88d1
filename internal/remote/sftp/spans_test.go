package sftp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// TestSpansSlice: a slice of spans holds the bytes of the slice of their
// concatenation, whatever spans it starts and ends in.
func TestSpansSlice(t *testing.T) {
	src := remotetest.Data(100, 3)
	f := sourceFile(t, src)
	d := spans{{b: src[:10]}, {f: f, off: 10, n: 40}, {b: src[50:51]}, {f: f, off: 51, n: 49}}
	for from := 0; from <= 100; from += 7 {
		for to := from; to <= 100; to += 11 {
			var got []byte
			for _, s := range d.slice(from, to) {
				b, err := s.read()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, src[from:to]) {
				t.Fatalf("slice(%d, %d) holds %d bytes unlike the source's", from, to, len(got))
			}
		}
	}
}

// sourceFile is a temp file holding data, open for reading.
func sourceFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "source")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestRangeResumeAfterCut sends ranges of a file as bk-push sends the
// frames of a share from a stream file (WriteRange: apart, of other sizes
// than chunks and requests), between bytes written and lent, and cuts the
// connection on the way: the upload resumes, reading what it sends again
// from the file, and the file stored is the ranges' bytes in order. With
// Verify the ranges are read and written instead.
func TestRangeResumeAfterCut(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		for _, verify := range []bool{false, true} {
			r, p := viaProxy(t, s, remote.DialOptions{Retry: fastRetry, Verify: verify})
			ctx := context.Background()
			src := remotetest.Data(8<<20, 77)
			f := sourceFile(t, src)
			up, err := r.Create(ctx, "ranges")
			if err != nil {
				t.Fatal(err)
			}
			defer up.Abort()
			var want []byte
			if _, err := up.Write(src[:1000]); err != nil {
				t.Fatal(err)
			}
			want = append(want, src[:1000]...)
			const frame, gap = 131_078, 262_150 // a frame, then two others'
			for off := 1000; off+frame <= len(src); off += frame + gap {
				if off >= 2<<20 && p.Cuts() == 0 {
					p.CutAfter(ChunkSize / 3)
				}
				if err := up.(remote.RangeWriter).WriteRange(f, int64(off), frame); err != nil {
					t.Fatalf("range at %d: %v", off, err)
				}
				want = append(want, src[off:off+frame]...)
			}
			kept := slices.Clone(src[:5000])
			if err := up.(remote.Keeper).WriteKept(kept, func([]byte) {}); err != nil {
				t.Fatal(err)
			}
			want = append(want, kept...)
			if err := up.Commit(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
			if p.Cuts() != 1 {
				t.Fatalf("%d cuts, want 1", p.Cuts())
			}
			if got := remotetest.Get(t, r, "ranges", 0); !bytes.Equal(got, want) {
				t.Fatalf("verify %v: stored %d bytes unlike the %d sent", verify, len(got), len(want))
			}
		}
	})
}

// TestRangePastEnd: a range the file does not hold (a stream file cut
// short under bk-push) fails the upload at once, saying so, with no
// reconnect (another try would read the same), and nothing is stored.
func TestRangePastEnd(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		var w warnings
		r, _ := viaProxy(t, s, remote.DialOptions{Retry: fastRetry, Warn: w.add})
		ctx := context.Background()
		f := sourceFile(t, remotetest.Data(3<<20, 5))
		up, err := r.Create(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		defer up.Abort()
		rw := up.(remote.RangeWriter)
		err = rw.WriteRange(f, 0, 2<<20)
		if err == nil {
			err = rw.WriteRange(f, 2<<20, 2<<20)
		}
		if err == nil {
			err = up.Commit(ctx)
		}
		if err == nil || !errors.Is(err, errSourceShort) || !strings.Contains(err.Error(), "source: the file ended before the bytes to send") {
			t.Fatalf("got %v, want the file named as ending early", err)
		}
		if got := w.get(); len(got) != 0 {
			t.Errorf("warnings %q, want none: no reconnect", got)
		}
		if _, err := r.Stat(ctx, "short"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat of the final name: %v, want not there", err)
		}
	})
}
