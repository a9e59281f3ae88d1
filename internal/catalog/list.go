package catalog

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

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
	// Temp are uploads in progress or leftovers of killed runs, and test
	// files an append-only host keeps.
	Temp []remote.Info
	// Links are temp names that are second names of files stored (the
	// hard links an append-only host keeps: remote.Used counts them
	// once); they cost no space.
	Links []remote.Info
	// Stored is when the host stored each manifest file (its time on the
	// host), by name.
	Stored map[string]time.Time
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
	l := &Listing{Host: h, Files: map[string]remote.Info{}, Stored: map[string]time.Time{}}
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
	names := map[string]remote.Info{}
	for _, fi := range append(infos, l.Temp...) {
		names[fi.Name] = fi
	}
	temps := l.Temp[:0]
	for _, t := range l.Temp {
		if remote.SecondName(t, names) {
			l.Links = append(l.Links, t)
		} else {
			temps = append(temps, t)
		}
	}
	l.Temp = temps
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
			l.Stored[fi.Name] = fi.ModTime
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

// sharePattern matches a share's file name; its group is the backup ID.
var sharePattern = regexp.MustCompile(`^(.+-\d{8}T\d{6}Z-[0-9a-f]{8})\.(?:r\d+\.)?share\d+$`)

// ShareBackup is the backup ID in a share's file name; ok is false for a
// name that is not a share's.
func ShareBackup(name string) (id string, ok bool) {
	m := sharePattern.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// OrphanShares are the shares on l's host that no manifest on any host of
// listings names (a damaged one counts as naming its ID), by name: left by
// failed runs on append-only hosts, or by a prune cut short.
func OrphanShares(listings []*Listing, l *Listing) []remote.Info {
	known := map[string]bool{}
	for _, l := range listings {
		for _, cp := range l.Manifests {
			known[cp.ID] = true
		}
		for _, d := range l.Damaged {
			if id, ok := manifest.IDFromManifestPath(d.Name); ok {
				known[id] = true
			}
		}
	}
	var out []remote.Info
	for _, fi := range l.Files {
		if id, ok := ShareBackup(fi.Name); ok && !known[id] {
			out = append(out, fi)
		}
	}
	slices.SortFunc(out, func(a, b remote.Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}
