package scrub

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/shard/sharetest"
)

// counted is a folder host that counts the opens and stats it serves.
type counted struct {
	remote.Remote
	opens, stats *atomic.Int64
}

func (c counted) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	return c.Remote.Open(ctx, name, offset)
}

func (c counted) Stat(ctx context.Context, name string) (remote.Info, error) {
	c.stats.Add(1)
	return c.Remote.Stat(ctx, name)
}

// backupIn splits data 2 of 3 into the folders dirs, one share each, and
// returns the manifest of it (version 4, each share pinned by its meta
// hash). The shares are written as they come and
// named once the set, and so the backup's ID, is known.
func backupIn(t *testing.T, data []byte, dirs []string) *manifest.Manifest {
	t.Helper()
	var files []*os.File
	var ws []io.Writer
	for _, dir := range dirs {
		f, err := os.CreateTemp(dir, "split-")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files, ws = append(files, f), append(ws, f)
	}
	info, trailer, err := shard.Split(context.Background(), bytes.NewReader(data), ws, shard.SplitOptions{K: 2, N: len(dirs), BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Format: manifest.Format, Version: manifest.Version, Name: "home", Time: time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC),
		K: 2, N: len(dirs), BlockSize: 1024, SetID: info.ID(), StreamSize: trailer.Length, StreamHash: hex.EncodeToString(trailer.StreamHash[:])}
	m.ID = manifest.NewID(m.Name, m.Time, info.SetID)
	for i, f := range files {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		s := manifest.Share{Index: i, Host: local.Location{Path: dirs[i]}.URL(), Path: manifest.SharePath(m.ID, i), Size: st.Size()}
		if err := os.Rename(f.Name(), filepath.Join(dirs[i], s.Path)); err != nil {
			t.Fatal(err)
		}
		share, err := sharetest.Load(filepath.Join(dirs[i], s.Path))
		if err != nil {
			t.Fatal(err)
		}
		sum := share.MetaSum()
		m.SetSum(&s, sum[:])
		m.Shares = append(m.Shares, s)
	}
	return m
}

// A quick check opens each share once, for its header and its trailer,
// and asks for no size the listing gave; it still finds a trailer that
// is not the backup's, and a share shorter than the listing says.
func TestQuickOpensEachShareOnce(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	data := make([]byte, 50_000)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	m := backupIn(t, data, dirs)
	var opens, stats atomic.Int64
	var hosts []hostsfile.Host
	for _, d := range dirs {
		hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: d}})
	}
	check := func(afterListing func()) *Report {
		t.Helper()
		cat := catalog.New(hosts, catalog.Options{Connect: func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
			r, err := h.Dial(ctx, remote.DialOptions{})
			return counted{r, &opens, &stats}, err
		}})
		defer cat.Close()
		listings := cat.List(context.Background(), cat.Hosts(), nil)
		afterListing()
		opens.Store(0)
		r, err := Check(context.Background(), cat, listings, m, Options{Quick: true})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := check(func() {}); r.State != Healthy || opens.Load() != 3 || stats.Load() != 0 {
		t.Fatalf("healthy backup: %s, %d opens, %d stats; want healthy, 3 opens, 0 stats", r.State, opens.Load(), stats.Load())
	}

	// Share 1's last byte (its trailer's checksum) rots.
	path := filepath.Join(dirs[1], m.Shares[1].Path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := check(func() {}); r.Shares[1].Good || !strings.Contains(r.Shares[1].Problem, "trailer") || r.Good != 2 {
		t.Errorf("a share with a rotted trailer: %+v", r.Shares[1])
	}

	// Share 2 shrinks after the listing: the host holds less of it than
	// it listed.
	path = filepath.Join(dirs[2], m.Shares[2].Path)
	if r := check(func() {
		if err := os.Truncate(path, m.Shares[2].Size-10); err != nil {
			t.Fatal(err)
		}
	}); r.Shares[2].Good || !strings.Contains(r.Shares[2].Problem, "trailer") || r.Good != 1 {
		t.Errorf("a share shorter than listed: %+v", r.Shares[2])
	}
}
