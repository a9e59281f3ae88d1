package catalog

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/tombstone"
)

// MaxManifest bounds what is read of a manifest on a host: a hostile host
// could serve an endless one.
const MaxManifest = 1 << 20

var errClosed = errors.New("catalog closed")

func isNotExist(err error) bool { return errors.Is(err, remote.ErrNotExist) }

// Listing is what one host holds in its folder.
type Listing struct {
	Host *Host
	// Err is why the host could not be reached or listed; the rest is
	// then empty.
	Err error
	// Manifests are the manifests read, in name order (oldest first
	// within a name).
	Manifests []*Copy
	// Tombstones are the tombstones read (bk-prune leaves one for each
	// backup it removed), in name order.
	Tombstones []*Grave
	// Damaged are the manifest and tombstone files that could not be read
	// or parsed.
	Damaged []FileError
	// Files are the other files bk stores (shares among them), by name.
	Files map[string]remote.Info
	// Temp are uploads in progress or leftovers of killed runs.
	Temp []remote.Info
}

// Copy is one host's copy of a manifest.
type Copy struct {
	*manifest.Manifest
	// Sum is the SHA-256 of the file: copies with the same sum are
	// identical, byte for byte.
	Sum  [32]byte
	Host *Host
}

// Grave is one host's tombstone of a backup.
type Grave struct {
	*tombstone.Tombstone
	Host *Host
}

// FileError is a file that could not be used, and why.
type FileError struct {
	Name string
	Err  error
}

func (e FileError) Error() string { return e.Name + ": " + e.Err.Error() }

// List reads what each of hosts holds, all at once. only, when not nil,
// says which manifests to read, by backup ID; the others are not opened.
// The listings come in the order of hosts.
func (c *Catalog) List(ctx context.Context, hosts []*Host, only func(id string) bool) []*Listing {
	out := make([]*Listing, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { out[i] = h.list(ctx, only) })
	}
	wg.Wait()
	return out
}

func (h *Host) list(ctx context.Context, only func(id string) bool) *Listing {
	l := &Listing{Host: h, Files: map[string]remote.Info{}}
	r, err := h.Remote(ctx)
	if err != nil {
		l.Err = err
		return l
	}
	infos, err := r.List(ctx, "")
	if err == nil {
		l.Temp, err = r.ListTemp(ctx, "")
	}
	if err != nil {
		l.Err = remote.HostError(h.String(), err)
		return l
	}
	for _, fi := range infos {
		id, rev, ok := manifest.ParseManifestPath(fi.Name)
		buried, isTombstone := tombstone.ParsePath(fi.Name)
		switch {
		case fi.Dir:
		case isTombstone:
			if only != nil && !only(buried) {
				break
			}
			t, err := readTombstone(ctx, r, fi.Name)
			switch {
			case err != nil:
				l.Damaged = append(l.Damaged, FileError{fi.Name, err})
			case t.ID != buried:
				l.Damaged = append(l.Damaged, FileError{fi.Name, fmt.Errorf("holds the tombstone of %s", t.ID)})
			default:
				l.Tombstones = append(l.Tombstones, &Grave{t, h})
			}
		case !ok:
			l.Files[fi.Name] = fi
		case only == nil || only(id):
			cp, err := readManifest(ctx, r, fi.Name)
			if err != nil {
				l.Damaged = append(l.Damaged, FileError{fi.Name, err})
				continue
			}
			if cp.ID != id {
				l.Damaged = append(l.Damaged, FileError{fi.Name, fmt.Errorf("holds the manifest of %s", cp.ID)})
				continue
			}
			if cp.Rev() != rev {
				l.Damaged = append(l.Damaged, FileError{fi.Name, fmt.Errorf("holds revision %d", cp.Rev())})
				continue
			}
			cp.Host = h
			l.Manifests = append(l.Manifests, cp)
		}
	}
	return l
}

func readManifest(ctx context.Context, r remote.Remote, name string) (*Copy, error) {
	data, err := readSmall(ctx, r, name, MaxManifest)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, err
	}
	return &Copy{Manifest: m, Sum: sha256.Sum256(data)}, nil
}

func readTombstone(ctx context.Context, r remote.Remote, name string) (*tombstone.Tombstone, error) {
	data, err := readSmall(ctx, r, name, tombstone.MaxSize)
	if err != nil {
		return nil, err
	}
	return tombstone.Parse(data)
}

// readSmall reads the file name on r, at most limit bytes of it: a
// hostile host could serve an endless one.
func readSmall(ctx context.Context, r remote.Remote, name string, limit int64) ([]byte, error) {
	rc, err := r.Open(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(bufio.NewReader(rc), limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// ReadManifestFile reads a manifest the user gave as a file.
func ReadManifestFile(name string) (*manifest.Manifest, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// HoldsManifests reports whether the folder dir holds a manifest: then it
// is a host, laid out as bk-push writes, rather than a set of share files.
func HoldsManifests(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if _, ok := manifest.IDFromManifestPath(e.Name()); ok && e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			return true, nil
		}
	}
	return false, nil
}
