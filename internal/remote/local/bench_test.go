package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
)

// BenchmarkListBoth lists a host's folder as a catalog does, at the
// soak's 1,600 files late in its year.
func BenchmarkListBoth(b *testing.B) {
	dir := b.TempDir()
	for i := range 1600 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("soak-20300107T023000Z-%08x.share%d", i, i%5)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	l, err := New(dir, remote.DialOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := remote.ListBoth(ctx, l, ""); err != nil {
			b.Fatal(err)
		}
	}
}
