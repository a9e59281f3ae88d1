package sftp

import (
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// A join with all n shares on the host downloads the blocks of k shares
// and only the checksums of the others.
func TestJoinReadsChecksumsOnly(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r, p := viaProxy(t, s, remote.DialOptions{})
		remotetest.JoinReadsChecksumsOnly(t, r, p.Down, firstChunk)
	})
}

// A ranged read of the stream downloads the stripes it covers.
func TestReaderAtReadsStripesOnly(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r, p := viaProxy(t, s, remote.DialOptions{})
		remotetest.ReaderAtReadsStripesOnly(t, r, p.Down, 0, 256)
	})
}
