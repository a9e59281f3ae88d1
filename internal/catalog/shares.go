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
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
)

// Placed is one share of a backup and where it stands.
type Placed struct {
	manifest.Share
	// Named is the host the manifest names for it.
	Named *Host
	// Listed tells whether Named was among the hosts listed.
	Listed bool
	// Found are the hosts whose listing holds a file of the share's path,
	// the named host first, with the file as listed: what a check holds
	// against the manifest's size, and where a repair finds a share
	// missing.
	Found []Found
}

// Found is a file of a share's name on a host.
type Found struct {
	Host *Host
	Info remote.Info
}

// Place finds each share of m on the hosts of listings: on every host that
// lists a file of the share's path, wherever the manifest says it went.
func (c *Catalog) Place(m *manifest.Manifest, listings []*Listing) ([]Placed, error) {
	var out []Placed
	for _, s := range m.Shares {
		named, err := c.hostAt(s.Host)
		if err != nil {
			return nil, fmt.Errorf("manifest %s, share %d: %w", m.ID, s.Index, err)
		}
		p := Placed{Share: s, Named: named}
		for _, l := range listings {
			if l.Host == named {
				p.Listed = true
			}
			// A host listed twice (once for a backup, again for its chain)
			// holds the share once.
			found := slices.ContainsFunc(p.Found, func(f Found) bool { return f.Host == l.Host })
			if fi, ok := l.Files[s.Path]; ok && l.Err == nil && !found {
				p.Found = append(p.Found, Found{l.Host, fi})
			}
		}
		// The named host first: it is where the share was sent.
		if i := slices.IndexFunc(p.Found, func(f Found) bool { return f.Host == named }); i > 0 {
			p.Found[0], p.Found[i] = p.Found[i], p.Found[0]
		}
		out = append(out, p)
	}
	return out, nil
}

// Sources returns where to read the shares of m: for each share, every
// host of listings that holds a file of the share's name, so a host that
// moved (a NAS with a new address, a disk mounted elsewhere) still serves
// its share through the hosts file; and, where no host given holds it, the
// host the manifest names, unless that was listed without the file. Hosts are dialled when first
// read. Share sources name their host.
func (c *Catalog) Sources(m *manifest.Manifest, listings []*Listing) ([]shard.Source, error) {
	placed, err := c.Place(m, listings)
	if err != nil {
		return nil, err
	}
	var sources []shard.Source
	for _, p := range placed {
		var hosts []*Host
		for _, f := range p.Found {
			hosts = append(hosts, f.Host)
		}
		// Where the manifest says, when no host given holds it: a host the
		// list lacks, or a share in a subfolder (listings show the top
		// folder only).
		subfolder := strings.Contains(p.Path, "/") && !slices.Contains(hosts, p.Named) && !p.Named.Failed()
		if (!p.Listed && len(hosts) == 0) || subfolder {
			hosts = append([]*Host{p.Named}, hosts...)
		}
		for _, h := range hosts {
			sources = append(sources, shareCopy{&hostShare{h: h, path: p.Path, version: p.VersionOn(h)}, p.Index})
		}
	}
	return sources, nil
}

// VersionOn is the version of the share's file to read on h: the one its
// upload stored (manifest.Share.ObjectVersion) on the host that took it,
// and the current one ("") on any other.
func (p Placed) VersionOn(h *Host) string {
	if h == p.Named {
		return p.ObjectVersion
	}
	return ""
}

// Source is the file path on h (of version, unless "": see VersionOn) as
// a shard source, dialling h when first read.
func (h *Host) Source(path, version string) shard.Source {
	return &hostShare{h: h, path: path, version: version}
}

// shareCopy is a copy of a manifest's share on a host, as Sources gives
// it: its index is known, so a join reads one copy of the share
// (shard.IndexedSource).
type shareCopy struct {
	*hostShare
	index int
}

func (s shareCopy) ShareIndex() int { return s.index }

// hostShare is a share on a host, as a shard.Source.
type hostShare struct {
	h       *Host
	path    string
	version string
}

func (s *hostShare) Name() string { return "host " + s.h.String() }

// File is the share's file on its host, for messages about a file there
// that is not a share of the set.
func (s *hostShare) File() string { return s.path }

func (s *hostShare) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	r, err := s.h.Remote(ctx)
	if err == nil {
		var rc io.ReadCloser
		if rc, err = remote.OpenVersion(ctx, r, s.path, s.version, offset); err == nil {
			return rc, nil
		}
	}
	return nil, hostless{s.Name() + ": ", err}
}

// OpenRange reads a part of the share alone from a host whose Open would
// read on to its end (shard.RangeSource); on other hosts it fails with
// errors.ErrUnsupported, and the reader of Open serves.
func (s *hostShare) OpenRange(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
	r, err := s.h.Remote(ctx)
	if err == nil {
		var rc io.ReadCloser
		if rc, err = remote.OpenRange(ctx, r, s.path, offset, length); err == nil {
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
	out := io.Writer(hw)
	if w == io.Discard {
		// Nothing is kept, so nothing need be held back (a join for the
		// shares it regenerates, JoinOptions.Regenerate).
		out = w
	}
	// The manifest names the set: a share of another set is a bad share.
	if id, err := hex.DecodeString(m.SetID); err == nil && len(id) == len(opts.SetID) {
		opts.SetID = [16]byte(id)
	}
	report, err := shard.Join(ctx, sources, out, opts)
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

// OpenAt opens the stream of backup m for reads at any offset, from
// sources (Sources gives them), as shard.NewReaderAt does, held to m: the
// set rebuilt is m's set_id, the stream is m's stream_size long, and
// trailers that K shares hold must agree with it and with m's
// stream_hash. Every stripe read is checked as Join checks it; unlike
// Join, the stream hash is not checked against the data, as that would
// mean reading every stripe (shard.ReaderAt says why the bytes read are
// right all the same). opts' SetID, Length and StreamHash are m's.
func OpenAt(ctx context.Context, m *manifest.Manifest, sources []shard.Source, opts shard.ReadAtOptions) (*shard.ReaderAt, error) {
	id, err := hex.DecodeString(m.SetID)
	if err != nil || len(id) != len(opts.SetID) {
		return nil, fmt.Errorf("manifest %s: bad set ID %q", m.ID, m.SetID)
	}
	hash, err := hex.DecodeString(m.StreamHash)
	if err != nil || len(hash) != len(opts.StreamHash) {
		return nil, fmt.Errorf("manifest %s: bad stream hash %q", m.ID, m.StreamHash)
	}
	opts.SetID, opts.Length, opts.StreamHash = [16]byte(id), m.StreamSize, [shard.HashSize]byte(hash)
	r, err := shard.NewReaderAt(ctx, sources, opts)
	if errors.Is(err, shard.ErrOtherSet) {
		return nil, fmt.Errorf("%w %s: %v", ErrNotManifest, m.ID, err)
	}
	return r, err
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
