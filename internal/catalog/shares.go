package catalog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/shard"
)

// Sources returns where to read the shares of m: for each share, every
// host of listings that holds a file of the share's name, so a host that
// moved (a NAS with a new address, a disk mounted elsewhere) still serves
// its share through the hosts file; and the host the manifest names,
// unless it was listed without the file. Hosts are dialled when first
// read. Share sources name their host.
func (c *Catalog) Sources(m *manifest.Manifest, listings []*Listing) ([]shard.Source, error) {
	var sources []shard.Source
	for _, s := range m.Shares {
		named, err := c.hostAt(s.Host)
		if err != nil {
			return nil, fmt.Errorf("manifest %s, share %d: %w", m.ID, s.Index, err)
		}
		var found []*Host
		namedListed := false
		for _, l := range listings {
			if l.Host == named {
				namedListed = true
			}
			if _, ok := l.Files[s.Path]; ok && l.Err == nil {
				found = append(found, l.Host)
			}
		}
		// The named host first: it is where the share was sent.
		if i := slices.Index(found, named); i > 0 {
			found[0], found[i] = found[i], found[0]
		}
		// A listing shows only the top folder; a share in a subfolder is
		// looked for where the manifest says.
		if !namedListed || (strings.Contains(s.Path, "/") && !slices.Contains(found, named) && !named.Failed()) {
			found = append([]*Host{named}, found...)
		}
		for _, h := range found {
			sources = append(sources, &hostShare{h: h, path: s.Path})
		}
	}
	return sources, nil
}

// hostShare is a share on a host, as a shard.Source.
type hostShare struct {
	h    *Host
	path string
}

func (s *hostShare) Name() string { return "host " + s.h.String() }

func (s *hostShare) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	r, err := s.h.Remote(ctx)
	if err == nil {
		var rc io.ReadCloser
		if rc, err = r.Open(ctx, s.path, offset); err == nil {
			return rc, nil
		}
	}
	return nil, hostless{s.Name() + ": ", err}
}

// hostless drops the "host X: " that remote errors start with, since
// messages about a source start with its name already.
type hostless struct {
	prefix string
	err    error
}

func (h hostless) Error() string { return strings.TrimPrefix(h.err.Error(), h.prefix) }
func (h hostless) Unwrap() error { return h.err }

// ErrNotManifest means the rebuilt stream is not the one the manifest
// describes.
var ErrNotManifest = errors.New("the rebuilt stream is not the one of the manifest")

// Join rebuilds the stream of backup m from sources into w, as shard.Join
// does, and checks it against m: its set, stream_size and stream_hash. The
// last stripe's worth of bytes is held back until the check passes, so a
// stream that is not m's never comes out whole.
func Join(ctx context.Context, m *manifest.Manifest, sources []shard.Source, w io.Writer, opts shard.JoinOptions) (shard.JoinReport, error) {
	hw := &holdWriter{w: w, hold: m.K * m.BlockSize, limit: m.StreamSize}
	report, err := shard.Join(ctx, sources, hw, opts)
	if err != nil {
		return report, err
	}
	hash := hex.EncodeToString(report.Trailer.StreamHash[:])
	switch {
	case report.Info.ID() != m.SetID:
		return report, fmt.Errorf("%w %s: shares of set %s, the manifest names set %s", ErrNotManifest, m.ID, report.Info.ID(), m.SetID)
	case report.Trailer.Length != m.StreamSize:
		return report, fmt.Errorf("%w %s: %d bytes, the manifest says %d", ErrNotManifest, m.ID, report.Trailer.Length, m.StreamSize)
	case hash != m.StreamHash:
		return report, fmt.Errorf("%w %s: stream hash %s, the manifest says %s", ErrNotManifest, m.ID, hash, m.StreamHash)
	}
	return report, hw.flush()
}

// holdWriter passes bytes on but keeps the last hold of them back until
// flush, and refuses to go past limit bytes.
type holdWriter struct {
	w     io.Writer
	hold  int
	limit int64
	n     int64
	buf   []byte
}

func (h *holdWriter) Write(p []byte) (int, error) {
	if h.n+int64(len(p)) > h.limit {
		return 0, fmt.Errorf("%w: longer than its stream_size of %d bytes", ErrNotManifest, h.limit)
	}
	h.n += int64(len(p))
	h.buf = append(h.buf, p...)
	if over := len(h.buf) - h.hold; over > 0 {
		if _, err := h.w.Write(h.buf[:over]); err != nil {
			return 0, err
		}
		h.buf = h.buf[:copy(h.buf, h.buf[over:])]
	}
	return len(p), nil
}

func (h *holdWriter) flush() error {
	_, err := h.w.Write(h.buf)
	h.buf = nil
	return err
}
