package soak

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/blake3"
)

// Entry is what a restore must give back of one path: its type, permission
// bits, modification time (files), content hash and size (files), link
// target (symlinks) and the other names of its inode (hard links).
type Entry struct {
	Type   byte // 'f', 'd', 'l'
	Mode   fs.FileMode
	Mtime  int64
	Size   int64
	Hash   string
	Target string
	Links  string // the other names sharing the inode, sorted, joined by "|"
}

// Manifest is a tree as hashes: relative path to entry.
type Manifest map[string]Entry

// Scan hashes the tree at root.
func Scan(root string) (Manifest, error) {
	m, _, err := (*hashes)(nil).scan(root)
	return m, err
}

// hashes are the hashes of the files of a tree that one scan made, for the
// next scan of the tree to take for the files that have not changed since:
// the tree the job backs up is hashed every night, most of it unchanged.
type hashes struct {
	began int64 // when the scan began (Unix ns)
	files map[string]hashed
}

// hashed is a file's hash and what says the file is the one hashed.
type hashed struct {
	key  statKey
	hash string
}

// statKey is what changes with a file's content: the kernel sets its
// change time (ctime) on every write, and no program can set it back.
type statKey struct {
	ino          uint64
	size         int64
	mtime, ctime int64
}

// racyMargin covers the coarse clock the kernel stamps ctimes with: a file
// written in the same tick as its hash was read could keep its ctime. A
// hash is taken again unless the file's ctime is older than the scan that
// made it by this much, so a change after that scan always shows.
const racyMargin = int64(time.Second)

// scan is Scan taking the hashes of h (nil: none) for the files whose
// inode, size, mtime and ctime are those they had then, and whose ctime
// was racyMargin older than that scan; it returns the hashes it made.
func (h *hashes) scan(root string) (Manifest, *hashes, error) {
	next := &hashes{began: time.Now().UnixNano(), files: map[string]hashed{}}
	m := Manifest{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := Entry{Mode: fi.Mode().Perm()}
		switch {
		case fi.IsDir():
			e.Type = 'd'
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type = 'l'
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
			e.Mode = 0
		case fi.Mode().IsRegular():
			e.Type = 'f'
			e.Size = fi.Size()
			e.Mtime = fi.ModTime().UnixNano()
			st, _ := fi.Sys().(*syscall.Stat_t)
			key, keyed := fileKey(fi, st)
			if old, ok := h.reuse(rel, key); keyed && ok {
				e.Hash = old
			} else if e.Hash, err = hashFile(p); err != nil {
				return err
			}
			if keyed {
				next.files[rel] = hashed{key, e.Hash}
			}
			if st != nil && st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		default:
			return fmt.Errorf("%s: unexpected type %s", p, fi.Mode().Type())
		}
		m[rel] = e
		return nil
	})
	for _, names := range inodes {
		for _, n := range names {
			e := m[n]
			e.Links = strings.Join(slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n }), "|")
			m[n] = e
		}
	}
	return m, next, err
}

// reuse is the hash of the file at rel if h holds one that key says is
// still good.
func (h *hashes) reuse(rel string, key statKey) (string, bool) {
	if h == nil {
		return "", false
	}
	old, ok := h.files[rel]
	if !ok || old.key != key || key.ctime > h.began-racyMargin {
		return "", false
	}
	return old.hash, true
}

// hashFile is the BLAKE3 hash of the file at p: the soak hashes its tree
// before each backup and each restored tree, and BLAKE3 (AVX2) took half
// the CPU time SHA-256 did here; read a large buffer at a time, for fewer
// system calls than io.Copy's 32 KiB.
func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := blake3.New()
	buf := hashBuffer.Get().(*[]byte)
	defer hashBuffer.Put(buf)
	for {
		n, err := f.Read(*buf)
		h.Write((*buf)[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashBuffer holds the read buffers of hashFile (restores are compared
// two at a time).
var hashBuffer = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Diff lists how got differs from want, at most max lines. growing names
// a file that was appended to while the backup read it: any length from
// its size before the run to its size after, with got a prefix of it.
func Diff(want, got Manifest, growing string, grown []byte, max int) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w, inWant := want[n]
		g, inGot := got[n]
		switch {
		case !inGot:
			add("%s: missing from the restore", n)
		case !inWant:
			add("%s: restored, but not in the tree that night", n)
		case n == growing && g.Type == 'f':
			// Appended to while read: the restore holds a prefix of what it
			// became, at least as long as it was before the run.
			if g.Size < w.Size || g.Size > int64(len(grown)) {
				add("%s (appended while read): %d bytes, want %d to %d", n, g.Size, w.Size, len(grown))
			} else if sum := blake3.Sum256(grown[:g.Size]); hex.EncodeToString(sum[:]) != g.Hash {
				add("%s (appended while read): not a prefix of the file", n)
			}
		case w != g:
			add("%s: want %s, got %s", n, w, g)
		}
	}
	return out
}

func (e Entry) String() string {
	switch e.Type {
	case 'f':
		s := fmt.Sprintf("file %v %d bytes mtime %d sha256 %.12s", e.Mode, e.Size, e.Mtime, e.Hash)
		if e.Links != "" {
			s += " links " + e.Links
		}
		return s
	case 'l':
		return "symlink -> " + e.Target
	}
	return fmt.Sprintf("dir %v", e.Mode)
}

// tree is the folder backed up, changed a little every night as a user's
// home is.
type tree struct {
	root string
	rng  *rand.Rand
	log  func(format string, args ...any)
}

// Names in the tree that the changes treat specially.
const (
	bigFile  = "big.bin"  // rewritten in parts
	liveFile = "live.log" // appended to while the backup reads it
)

// bigSize is the large file's: over archive.DeltaMin, so that bk-pack
// sends its changes as deltas against the version before, and a chain's
// restore applies them.
const bigSize = archive.DeltaMin + 1<<20

func (t *tree) path(rel string) string { return filepath.Join(t.root, rel) }

// seed makes the first tree: nested folders of text and binary files, a
// large file, a log.
func (t *tree) seed() error {
	for i := range 6 {
		if err := os.MkdirAll(t.path(fmt.Sprintf("d%d/sub%d", i, i%3)), 0o755); err != nil {
			return err
		}
	}
	for range 120 {
		if err := t.addFile(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(t.path(bigFile), t.bytes(bigSize, false), 0o644); err != nil {
		return err
	}
	return os.WriteFile(t.path(liveFile), []byte("log starts\n"), 0o644)
}

// bytes is n bytes of text (compressible) or noise.
func (t *tree) bytes(n int, text bool) []byte {
	b := make([]byte, n)
	if !text {
		for i := 0; i < n; i += 8 {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], t.rng.Uint64())
			copy(b[i:], w[:])
		}
		return b
	}
	words := []string{"backup ", "restore ", "share ", "stripe ", "host ", "night ", "year ", "\n"}
	for i := 0; i < n; {
		i += copy(b[i:], words[t.rng.IntN(len(words))])
	}
	return b
}

// all lists the tree's paths of one type ('f', 'd', 'l'), sorted, without
// the special files and the root.
func (t *tree) all(typ byte) []string {
	var out []string
	_ = filepath.WalkDir(t.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == t.root {
			return nil
		}
		rel, _ := filepath.Rel(t.root, p)
		if rel == bigFile || rel == liveFile {
			return nil
		}
		switch {
		case typ == 'd' && d.IsDir(), typ == 'f' && d.Type().IsRegular(), typ == 'l' && d.Type()&fs.ModeSymlink != 0:
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func (t *tree) pick(typ byte) string {
	all := t.all(typ)
	if len(all) == 0 {
		return ""
	}
	return all[t.rng.IntN(len(all))]
}

func (t *tree) newName(prefix string) string {
	dirs := append(t.all('d'), ".")
	return filepath.Join(dirs[t.rng.IntN(len(dirs))], fmt.Sprintf("%s%06d", prefix, t.rng.IntN(1_000_000)))
}

func (t *tree) addFile() error {
	size := []int{0, 10, 300, 4 << 10, 40 << 10, 200 << 10}[t.rng.IntN(6)]
	name := t.newName("f")
	if _, err := os.Lstat(t.path(name)); err == nil {
		return nil
	}
	return os.WriteFile(t.path(name), t.bytes(size, t.rng.IntN(3) > 0), 0o644)
}

// change makes one of the day's changes, chosen at random.
func (t *tree) change() error {
	switch t.rng.IntN(15) {
	case 0, 1, 2:
		return t.addFile()
	case 3, 4: // edit in place: same size
		if f := t.pick('f'); f != "" {
			return t.writeAt(f, 1)
		}
	case 5: // append
		if f := t.pick('f'); f != "" {
			return t.appendTo(f, t.bytes(1+t.rng.IntN(5000), true))
		}
	case 6: // truncate
		if f := t.pick('f'); f != "" {
			fi, err := os.Stat(t.path(f))
			if err != nil {
				return err
			}
			return os.Truncate(t.path(f), fi.Size()/2)
		}
	case 7: // delete
		if f := t.pick('f'); f != "" {
			return os.Remove(t.path(f))
		}
	case 8: // rename
		if f := t.pick('f'); f != "" {
			return os.Rename(t.path(f), t.path(t.newName("r")))
		}
	case 9: // move a folder under another (not into itself)
		d := t.pick('d')
		to := t.pick('d')
		if d == "" || to == "" || to == d || strings.HasPrefix(to+"/", d+"/") {
			return nil
		}
		return os.Rename(t.path(d), t.path(filepath.Join(to, fmt.Sprintf("m%06d", t.rng.IntN(1_000_000)))))
	case 10: // chmod
		if f := t.pick('f'); f != "" {
			return os.Chmod(t.path(f), []fs.FileMode{0o600, 0o644, 0o640, 0o755, 0o444}[t.rng.IntN(5)])
		}
	case 11: // a hard link made
		if f := t.pick('f'); f != "" {
			return os.Link(t.path(f), t.path(t.newName("h")))
		}
	case 12: // a symlink made, to a file that may go later (broken)
		if f := t.pick('f'); f != "" {
			name := t.newName("s")
			rel, err := filepath.Rel(filepath.Dir(t.path(name)), t.path(f))
			if err != nil {
				return err
			}
			return os.Symlink(rel, t.path(name))
		}
	case 13: // a new folder, or one removed with what it holds
		if t.rng.IntN(2) == 0 {
			return os.MkdirAll(t.path(t.newName("n")), 0o755)
		}
		if d := t.pick('d'); d != "" && len(t.all('d')) > 6 {
			return os.RemoveAll(t.path(d))
		}
	case 14: // the log rotated
		return os.WriteFile(t.path(liveFile), []byte("rotated\n"), 0o644)
	}
	return nil
}

// changeBig rewrites a few parts of the large file on one night in four
// and reports whether it did: a large file that changed most nights made
// most incremental backups carry it, and chains cost what full backups do.
func (t *tree) changeBig() (bool, error) {
	if t.rng.IntN(4) != 0 {
		return false, nil
	}
	return true, t.writeAt(bigFile, 1+t.rng.IntN(3))
}

func (t *tree) appendTo(rel string, b []byte) error {
	f, err := os.OpenFile(t.path(rel), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errorsJoin(err, f.Close())
}

// writeAt overwrites parts of a file in place, keeping its size.
func (t *tree) writeAt(rel string, parts int) error {
	fi, err := os.Stat(t.path(rel))
	if err != nil || fi.Size() == 0 {
		return err
	}
	f, err := os.OpenFile(t.path(rel), os.O_WRONLY, 0)
	if err != nil {
		if os.IsPermission(err) {
			return nil
		}
		return err
	}
	for range parts {
		n := min(fi.Size(), int64(1+t.rng.IntN(16<<10)))
		off := t.rng.Int64N(fi.Size() - n + 1)
		if _, err := f.WriteAt(t.bytes(int(n), false), off); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
