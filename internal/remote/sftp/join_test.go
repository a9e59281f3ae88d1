package sftp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/sshtest"
)

// remoteShare is a share stored on a host, as bk-join reads it.
type remoteShare struct {
	r    remote.Remote
	name string
}

func (s remoteShare) Name() string { return s.name }

func (s remoteShare) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	return s.r.Open(ctx, s.name, offset)
}

// A join with all n shares on the host downloads the blocks of k shares
// and only the checksums of the others: the shares not needed for their
// blocks are still read for their records, and that must not cost their
// blocks over the network.
func TestJoinReadsChecksumsOnly(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		const k, n = 2, 4
		data := make([]byte, 2<<20)
		rand.New(rand.NewSource(1)).Read(data)
		bufs := make([]bytes.Buffer, n)
		ws := make([]io.Writer, n)
		for i := range bufs {
			ws[i] = &bufs[i]
		}
		info, _, err := shard.Split(context.Background(), bytes.NewReader(data), ws, shard.SplitOptions{K: k, N: n, BlockSize: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		r, p := viaProxy(t, s, remote.DialOptions{})
		dir := r.host.Path
		var shareBytes int64
		var sources []shard.Source
		for i := range bufs {
			name := fmt.Sprintf("share-%d", i)
			if err := os.WriteFile(filepath.Join(dir, name), bufs[i].Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			shareBytes += int64(bufs[i].Len())
			sources = append(sources, remoteShare{r, name})
		}
		before := p.Down()
		var out bytes.Buffer
		if _, err := shard.Join(context.Background(), sources, &out, shard.JoinOptions{}); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("join: %v", err)
		}
		read := p.Down() - before
		stripes := int64(len(data)) / int64(k*info.BlockSize)
		records := int64(n-k) * stripes * int64(n*shard.HashSize)
		// The first read-ahead of each share, where its header is
		// probed, and a few per cent for the SFTP and SSH framing.
		limit := (shareBytes*k/n + records + n*firstChunk) * 21 / 20
		t.Logf("read %d bytes of %d in shares (%.2f); limit %d", read, shareBytes, float64(read)/float64(shareBytes), limit)
		if read > limit {
			t.Errorf("join downloaded %d bytes, more than the %d of %d of %d shares and the others' checksums", read, limit, k, n)
		}
	})
}
