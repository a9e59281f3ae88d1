package shard

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/shard/sharetest"
)

// MetaHash, fed the units bk-split writes, is the meta hash of docs/FORMAT.md
// as sharetest computes it from the layout alone: with the smallest blocks,
// a header as long as a trailer (a 30-byte label), and no stripes at all.
func TestMetaHash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		size  int
		label string
	}{
		{"stripes", 1000, ""},
		{"header of a trailer's size", 700, strings.Repeat("x", 30)},
		{"empty", 0, ""},
	} {
		opts := SplitOptions{K: 2, N: 3, BlockSize: MinBlockSize, Label: tc.label, AllowEmpty: true}
		bufs := make([]bytes.Buffer, opts.N)
		metas := make([]*MetaHash, opts.N)
		ws := make([]io.Writer, opts.N)
		for i := range ws {
			metas[i] = NewMetaHash(opts.BlockSize)
			ws[i] = io.MultiWriter(&bufs[i], metas[i])
		}
		if _, _, err := Split(context.Background(), bytes.NewReader(make([]byte, tc.size)), ws, opts); err != nil {
			t.Fatal(err)
		}
		for i := range bufs {
			f, err := sharetest.Parse(bufs[i].Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if tc.label != "" && f.Hlen != TrailerSize {
				t.Fatalf("%s: header of %d bytes", tc.name, f.Hlen)
			}
			if got, want := metas[i].Sum(), f.MetaSum(); got != want {
				t.Errorf("%s: share %d: MetaHash %x, the layout gives %x", tc.name, i, got, want)
			}
		}
	}
}
