package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
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

	// kept are the host's manifests and tombstones, read or not, in name
	// order.
	kept []keptFile
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

// List reads what each of hosts holds, all hosts at once and a few files
// of each host at once. only, when not nil, says which manifests and
// tombstones to read, by backup ID; the others are not opened. Each host
// is listed once per catalog and each file read once: a second List (of
// other IDs, or for a later phase of the run) asks the hosts only for
// files not read yet. The listings come in the order of hosts.
func (c *Catalog) List(ctx context.Context, hosts []*Host, only func(id string) bool) []*Listing {
	out := make([]*Listing, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { out[i] = h.list(ctx, only) })
	}
	wg.Wait()
	return out
}

// ListBackups is List of every manifest, and of the tombstones of the
// backups a host holds a manifest of: all that Backups weighs. A tombstone
// weighs only on a backup whose manifest is read (reading rule 7), while
// bk-prune leaves one for each backup it removes on every host for 90
// days: with nightly backups, a tool reading every backup read each night
// dozens a host of backups long gone, a request each on an S3 or SFTP
// host. bk-prune, which removes the old ones, reads them all with List.
func (c *Catalog) ListBackups(ctx context.Context, hosts []*Host) []*Listing {
	ids := map[string]bool{}
	for _, l := range c.List(ctx, hosts, func(string) bool { return false }) {
		for _, fi := range l.kept {
			if !fi.Tombstone {
				ids[fi.ID] = true
			}
		}
	}
	return c.List(ctx, hosts, func(id string) bool { return ids[id] })
}

// readsPerHost bounds the files read at once from one host: enough to
// keep a few round trips in flight over SFTP or S3, or a few rclone
// processes, without flooding a host with requests.
const readsPerHost = 4

// folder is what a host's folder listing shows, made once per catalog.
type folder struct {
	err   error
	files map[string]remote.Info
	temp  []remote.Info
	links []remote.Info
	// kept are the manifests and tombstones, in name order, read only
	// when asked for.
	kept []keptFile
}

// keptFile is a manifest or tombstone on a host, by its name.
type keptFile struct {
	remote.Info
	ID        string
	Of        string    // the backup's name, from its ID
	Time      time.Time // the backup's time, from its ID
	Tombstone bool
}

// parseKept tells what the file name is: a manifest, a tombstone, or
// neither.
func parseKept(fi remote.Info) (keptFile, bool) {
	id, grave := tombstone.ParsePath(fi.Name)
	if !grave {
		var ok bool
		if id, _, ok = manifest.ParseManifestPath(fi.Name); !ok {
			return keptFile{}, false
		}
	}
	name, t, _ := manifest.ParseID(id)
	return keptFile{Info: fi, ID: id, Of: name, Time: t, Tombstone: grave}, true
}

// folder lists the host's folder on the first call.
func (h *Host) folder(ctx context.Context) *folder {
	h.listMu.Lock()
	defer h.listMu.Unlock()
	if h.listed != nil {
		return h.listed
	}
	f := &folder{files: map[string]remote.Info{}}
	h.listed = f
	r, err := h.Remote(ctx)
	if err != nil {
		f.err = err
		return f
	}
	infos, temp, err := remote.ListBoth(ctx, r, "")
	if err != nil {
		f.err = remote.HostError(h.String(), err)
		return f
	}
	names := map[string]remote.Info{}
	for _, fi := range append(infos, temp...) {
		names[fi.Name] = fi
	}
	for _, t := range temp {
		if remote.SecondName(t, names) {
			f.links = append(f.links, t)
		} else {
			f.temp = append(f.temp, t)
		}
	}
	for _, fi := range infos {
		if fi.Dir {
			continue
		}
		if k, ok := parseKept(fi); ok {
			f.kept = append(f.kept, k)
		} else {
			f.files[fi.Name] = fi
		}
	}
	if h.cacheDir != nil && !remote.IsNearby(h.Location) {
		h.cache = h.cacheDir.Host(h.cacheKey())
	}
	return f
}

// read is a manifest or tombstone file as read, once per catalog.
type read struct {
	once  sync.Once
	copy  *Copy
	grave *Grave
	err   error
}

// read reads the manifest or tombstone fi on the first call.
func (h *Host) read(ctx context.Context, r remote.Remote, fi keptFile) *read {
	h.readMu.Lock()
	if h.reads == nil {
		h.reads = map[string]*read{}
	}
	rd, ok := h.reads[fi.Name]
	if !ok {
		rd = &read{}
		h.reads[fi.Name] = rd
	}
	h.readMu.Unlock()
	rd.once.Do(func() {
		limit := int64(MaxManifest)
		if fi.Tombstone {
			limit = tombstone.MaxSize
		}
		data, cached, err := h.readKept(ctx, r, fi.Info, limit)
		if err != nil {
			rd.err = err
			return
		}
		if fi.Tombstone {
			t, err := tombstone.Parse(data)
			switch {
			case err != nil:
				rd.err = err
			case t.ID != fi.ID:
				rd.err = fmt.Errorf("holds the tombstone of %s", t.ID)
			default:
				rd.grave = &Grave{t, h}
			}
		} else {
			rd.copy, rd.err = h.checkManifest(fi, data)
		}
		switch {
		case h.cache == nil || cached:
		case rd.err == nil:
			h.cache.Put(fi.Info, data)
		default:
			// What the host serves now fails: so must later runs, not
			// pass on an older copy cached before (a full check reads
			// every file afresh).
			h.cache.Drop(fi.Name)
		}
	})
	return rd
}

// checkManifest parses data, the manifest file fi, and checks that it is
// the manifest its name says.
func (h *Host) checkManifest(fi keptFile, data []byte) (*Copy, error) {
	_, rev, _ := manifest.ParseManifestPath(fi.Name)
	cp, err := h.parsed.parse(data)
	switch {
	case err != nil:
		return nil, err
	case cp.ID != fi.ID:
		return nil, fmt.Errorf("holds the manifest of %s", cp.ID)
	case cp.Rev() != rev:
		return nil, fmt.Errorf("holds revision %d", cp.Rev())
	case !cp.Time.Equal(fi.Time):
		// Readers take the newest backup by the names alone (Find);
		// a time that says otherwise is a forgery.
		return nil, fmt.Errorf("its time %s is not the one its ID carries", cp.Time.UTC().Format(time.RFC3339))
	}
	cp.Host = h
	return cp, nil
}

// readKept reads the manifest or tombstone file fi: from the cache when it
// holds the file as the host lists it (cached), else from the host. The
// caller checks the bytes either way.
func (h *Host) readKept(ctx context.Context, r remote.Remote, fi remote.Info, limit int64) (data []byte, cached bool, err error) {
	if h.cache != nil {
		// A cached file is held to the host's bound too.
		if data, ok := h.cache.Get(fi); ok && int64(len(data)) <= limit {
			return data, true, nil
		}
	}
	data, err = readSmall(ctx, r, fi, limit)
	return data, false, err
}

func (h *Host) list(ctx context.Context, only func(id string) bool) *Listing {
	f := h.folder(ctx)
	l := &Listing{Host: h, Err: f.err, Files: maps.Clone(f.files), Stored: map[string]time.Time{},
		Temp: slices.Clone(f.temp), Links: slices.Clone(f.links), kept: f.kept}
	if f.err != nil {
		return l
	}
	var want []keptFile
	for _, fi := range f.kept {
		if only == nil || only(fi.ID) {
			want = append(want, fi)
		}
	}
	if len(want) == 0 {
		return l
	}
	r, err := h.Remote(ctx)
	if err != nil {
		l.Err = err
		return l
	}
	reads := make([]*read, len(want))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(readsPerHost, len(want)) {
		wg.Go(func() {
			for i := range next {
				reads[i] = h.read(ctx, r, want[i])
			}
		})
	}
	for i := range want {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, rd := range reads {
		switch {
		case rd.err != nil:
			l.Damaged = append(l.Damaged, FileError{want[i].Name, rd.err})
		case rd.grave != nil:
			l.Tombstones = append(l.Tombstones, rd.grave)
		default:
			l.Manifests = append(l.Manifests, rd.copy)
			l.Stored[want[i].Name] = want[i].ModTime
		}
	}
	return l
}

// parsed are the manifests a catalog parsed, by the SHA-256 of their
// bytes: the copies of a backup on its hosts are the same bytes, parsed
// once. Parsing was a quarter of the CPU time of a tool that reads every
// manifest, and each is on five or six hosts.
type parsed struct {
	mu      sync.Mutex
	byteSum map[[32]byte]*parse
}

type parse struct {
	once sync.Once
	m    *manifest.Manifest
	err  error
}

// parse is manifest.Parse of data, once per distinct bytes. The manifest
// is shared: readers do not change it (gather gives a backup the manifest
// of its first copy, for all of them).
func (p *parsed) parse(data []byte) (*Copy, error) {
	sum := sha256.Sum256(data)
	p.mu.Lock()
	e, ok := p.byteSum[sum]
	if !ok {
		e = &parse{}
		p.byteSum[sum] = e
	}
	p.mu.Unlock()
	e.once.Do(func() { e.m, e.err = manifest.Parse(data) })
	if e.err != nil {
		return nil, e.err
	}
	return &Copy{Manifest: e.m, Sum: sum}, nil
}

// readSmall reads the file fi on r, at most limit bytes of it: a hostile
// host could serve an endless one. Its listed size sizes the buffer, so
// that a manifest comes in one read rather than in a growing series of
// them (a request each on an SFTP host); a host that listed it smaller
// than it is costs reads, not bytes.
func readSmall(ctx context.Context, r remote.Remote, fi remote.Info, limit int64) ([]byte, error) {
	rc, err := r.Open(ctx, fi.Name, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(min(max(fi.Size, 0), limit) + bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(rc, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return buf.Bytes(), nil
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

// ShareBackup is the backup ID in a share's file name; ok is false for a
// name that is not a share's.
func ShareBackup(name string) (id string, ok bool) {
	id, _, ok = ShareRevision(name)
	return id, ok
}

// ShareRevision is ShareBackup, and the manifest revision the share was
// stored for: rev of ID.rREV.shareI, 1 for ID.shareI (the name bk-push
// gives, which every revision may name). The ID is anything ending in
// -YYYYMMDDTHHMMSSZ-XXXXXXXX (8 lower-case hex digits). It reads the name
// by hand, not with a regular expression: bk-prune asks it of every file
// on every host for each repaired backup, and the regular expression was
// half of its CPU time late in the soak's year.
func ShareRevision(name string) (id string, rev int, ok bool) {
	i := strings.LastIndex(name, ".share")
	if i < 0 || !allDigits(name[i+len(".share"):]) {
		return "", 0, false
	}
	id, rev = name[:i], 1
	if j := strings.LastIndex(id, ".r"); j >= 0 && allDigits(id[j+2:]) {
		rev, _ = strconv.Atoi(id[j+2:])
		id, rev = id[:j], max(1, rev)
	}
	if !shareID(id) {
		return "", 0, false
	}
	return id, rev, true
}

// shareID is whether id has the shape of the ID in a share's name: at
// least one character (not a line break) before -YYYYMMDDTHHMMSSZ-
// and 8 lower-case hex digits.
func shareID(id string) bool {
	const tail = len("-20060102T150405Z-01234567")
	if len(id) <= tail || strings.Contains(id[:len(id)-tail], "\n") {
		return false
	}
	t := id[len(id)-tail:]
	for i := range len(t) {
		c := t[i]
		var fits bool
		switch {
		case i == 0 || i == 17:
			fits = c == '-'
		case i == 9:
			fits = c == 'T'
		case i == 16:
			fits = c == 'Z'
		case i > 17:
			fits = '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
		default:
			fits = '0' <= c && c <= '9'
		}
		if !fits {
			return false
		}
	}
	return true
}

// allDigits is whether s is one or more decimal digits.
func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Unread reports whether l's host holds a manifest file of backup id that
// was not read, or could not be: what it names is unknown.
func (l *Listing) Unread(id string) bool {
	for _, fi := range l.kept {
		if _, read := l.Stored[fi.Name]; fi.ID == id && !fi.Tombstone && !read {
			return true
		}
	}
	return false
}

// OrphanShares are the shares on l's host that no manifest on any host of
// listings names (a damaged one counts as naming its ID, and one not read
// as naming the ID of its file name), by name: left by failed runs on
// append-only hosts, or by a prune cut short.
func OrphanShares(listings []*Listing, l *Listing) []remote.Info {
	known := map[string]bool{}
	for _, l := range listings {
		for _, cp := range l.Manifests {
			known[cp.ID] = true
		}
		for _, fi := range l.kept {
			if !fi.Tombstone {
				known[fi.ID] = true
			}
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
