// Package metacache keeps, between runs, the bytes of the manifests and
// tombstones the tools read from each host, as restic keeps
// ~/.cache/restic: their names never take other bytes (docs/FORMAT.md),
// so a file the host still lists with the same size and time need not be
// read again. It only replaces the transport: the catalog checks cached
// bytes as it checks bytes read from the host. docs/FORMAT.md (section
// "The metadata cache") describes the files.
package metacache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bk-backup/bk/internal/remote"
)

// EnvDir names the environment variable that sets the cache folder; Off
// as its value turns the cache off.
const (
	EnvDir = "BK_CACHE_DIR"
	Off    = "off"
)

// header starts every cache file: the format and its version.
const header = "bk metadata cache 1\n"

// Dir is the cache folder: one file per host.
type Dir struct {
	path string
	// Fresh reads nothing from the cache; what is read from the hosts
	// replaces it (the full bk-check and bk-repair).
	Fresh bool
}

// Location is the cache folder the environment asks for: $BK_CACHE_DIR,
// else bk in the user's cache folder (os.UserCacheDir); "" when
// $BK_CACHE_DIR is Off. explicit says it came from $BK_CACHE_DIR.
func Location() (dir string, explicit bool, err error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		if dir == Off {
			return "", true, nil
		}
		return dir, true, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", false, err
	}
	return filepath.Join(base, "bk"), false, nil
}

// Open makes the folder dir (only this user may read it: manifests name
// the backups and hosts) and returns the cache there, removing the files
// left unwritten for Unused.
func Open(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	removeUnused(dir, time.Now().Add(-Unused))
	return &Dir{path: dir}, nil
}

// Unused is how long a cache file may go unwritten before Open removes
// it: the cache of a host no hosts file names any more (one that moved
// has another key), or a temp file a killed run left. A host whose
// listing did not change for that long costs one run its reads.
const Unused = 30 * 24 * time.Hour

// removeUnused removes the cache and temp files in dir last written
// before cutoff; it leaves any other file alone.
func removeUnused(dir string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if _, err := hex.DecodeString(name); (err != nil || len(name) != 32) && !strings.HasPrefix(name, tempPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// tempPrefix starts the names of the files Save writes before renaming
// them into place.
const tempPrefix = ".tmp-"

// Host is the cache of one host, read once. Its methods are safe for
// concurrent use.
type Host struct {
	file  string
	key   string
	fresh bool

	mu      sync.Mutex
	entries map[string]entry
	changed bool
}

type entry struct {
	size    int64
	modTime time.Time
	data    []byte
}

// Host reads the cache of the host key (its location, as the hosts file
// gives it): one host's bytes never stand for another's. A file that is
// missing, damaged, unreadable or of another version is an empty cache,
// rewritten by Save.
func (d *Dir) Host(key string) *Host {
	sum := sha256.Sum256([]byte(key))
	h := &Host{file: filepath.Join(d.path, hex.EncodeToString(sum[:16])), key: key, fresh: d.Fresh}
	data, err := os.ReadFile(h.file)
	if err == nil {
		h.entries, err = decode(data, key)
	}
	if err != nil {
		h.entries = map[string]entry{}
		h.changed = !errors.Is(err, os.ErrNotExist)
	}
	return h
}

// Get is the bytes cached for the file fi as the host lists it: only for
// the same name, size and time.
func (h *Host) Get(fi remote.Info) ([]byte, bool) {
	if h.fresh {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[fi.Name]
	if !ok || e.size != fi.Size || !e.modTime.Equal(fi.ModTime) {
		return nil, false
	}
	return e.data, true
}

// Put caches data as the bytes of the file fi.
func (h *Host) Put(fi remote.Info, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.entries[fi.Name]; ok && e.size == fi.Size && e.modTime.Equal(fi.ModTime) && bytes.Equal(e.data, data) {
		return
	}
	h.entries[fi.Name] = entry{size: fi.Size, modTime: fi.ModTime, data: data}
	h.changed = true
}

// Drop removes what is cached of the file name.
func (h *Host) Drop(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.entries[name]; ok {
		delete(h.entries, name)
		h.changed = true
	}
}

// Save drops the entries of files that listed (the host's manifests and
// tombstones) does not show with their size and time, and writes the
// cache back when it changed: to a temp file, renamed into place, so that
// a reader sees the old file or the new one whole.
func (h *Host) Save(listed []remote.Info) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	shown := make(map[string]remote.Info, len(listed))
	for _, fi := range listed {
		shown[fi.Name] = fi
	}
	for name, e := range h.entries {
		if fi, ok := shown[name]; !ok || fi.Size != e.size || !fi.ModTime.Equal(e.modTime) {
			delete(h.entries, name)
			h.changed = true
		}
	}
	if !h.changed {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.file), tempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(encode(h.key, h.entries)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), h.file); err != nil {
		return err
	}
	h.changed = false
	return nil
}

// encode is the cache file: header, the host's key and a line break, then
// each entry (name, size, time, bytes), then the SHA-256 of all before.
func encode(key string, entries map[string]entry) []byte {
	var b []byte
	b = append(b, header...)
	b = append(b, key...)
	b = append(b, '\n')
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		e := entries[name]
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = binary.AppendVarint(b, e.size)
		b = binary.AppendVarint(b, e.modTime.Unix())
		b = binary.AppendUvarint(b, uint64(e.modTime.Nanosecond()))
		b = binary.AppendUvarint(b, uint64(len(e.data)))
		b = append(b, e.data...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

var errDamaged = errors.New("damaged cache file")

// decode reads a cache file of the host key.
func decode(data []byte, key string) (map[string]entry, error) {
	if len(data) < sha256.Size {
		return nil, errDamaged
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errDamaged
	}
	rest, ok := bytes.CutPrefix(body, []byte(header))
	if !ok {
		return nil, fmt.Errorf("not a cache file of version 1")
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(key+"\n")); !ok {
		return nil, fmt.Errorf("the cache of another host")
	}
	d := decoder{rest: rest}
	entries := map[string]entry{}
	for len(d.rest) > 0 && d.err == nil {
		name := string(d.bytes())
		size := varint(&d, binary.Varint)
		sec := varint(&d, binary.Varint)
		nsec := varint(&d, binary.Uvarint)
		content := d.bytes()
		if d.err == nil && nsec >= uint64(time.Second) {
			d.err = errDamaged
		}
		entries[name] = entry{size: size, modTime: time.Unix(sec, int64(nsec)), data: content}
	}
	return entries, d.err
}

// decoder reads the fields of the entries, keeping the first error.
type decoder struct {
	rest []byte
	err  error
}

// varint reads a field with read (binary.Uvarint or binary.Varint).
func varint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.rest)
	if n <= 0 {
		d.err, d.rest = errDamaged, nil
		return 0
	}
	d.rest = d.rest[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := varint(d, binary.Uvarint)
	if n > uint64(len(d.rest)) {
		d.err, d.rest = errDamaged, nil
		return nil
	}
	b := d.rest[:n:n]
	d.rest = d.rest[n:]
	return b
}
