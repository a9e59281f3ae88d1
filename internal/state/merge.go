package state

import (
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/bk-backup/bk/internal/archive"
)

// Tracker is the archive.Index of one run: it merges the walk with the
// index of the parent backup (none for a full backup), deciding what
// changed, and writes the index of this run as it goes.
type Tracker struct {
	old    *indexReader // nil: a full backup, everything is stored
	racy   int64        // entries modified at or after this (ns) count as changed
	poison map[string]bool
	tops   []string
	new    *indexWriter
	chunks *chunkStore

	mu       sync.Mutex
	unstored []string

	// Stored counts the entries chosen, Unchanged those left out.
	Stored, Unchanged int64
}

// Tops implements archive.Index.
func (t *Tracker) Tops(tops []archive.Child) ([]bool, error) {
	var old []Entry
	if t.old != nil {
		r, err := t.old.next()
		if err != nil {
			return nil, err
		}
		if r.kind != recTops {
			return nil, fmt.Errorf("%w: no tops block", errDamaged)
		}
		if old, err = t.blockEntries(); err != nil {
			return nil, err
		}
	}
	t.new.tops()
	store := make([]bool, len(tops))
	for i, c := range tops {
		e := entryOf(c)
		t.new.entry(&e)
		store[i] = true
		for j := range old {
			if old[j].Name == c.Name {
				store[i] = t.changed(&old[j], &e, c.Name)
				break
			}
		}
		t.count(store[i], &e, c.Name)
	}
	return store, t.new.err
}

// List implements archive.Index.
func (t *Tracker) List(top int, dir string, children []archive.Child) ([]bool, error) {
	old, err := t.oldBlock(top, dir)
	if err != nil {
		return nil, err
	}
	t.new.block(top, dir)
	store := make([]bool, len(children))
	j := 0
	for i, c := range children {
		e := entryOf(c)
		t.new.entry(&e)
		for j < len(old) && old[j].Name < c.Name {
			j++
		}
		store[i] = true
		name := path.Join(dir, c.Name)
		if j < len(old) && old[j].Name == c.Name {
			store[i] = t.changed(&old[j], &e, name)
		}
		t.count(store[i], &e, name)
	}
	return store, t.new.err
}

// count counts an entry; an unchanged large file keeps its chunk list.
func (t *Tracker) count(stored bool, e *Entry, name string) {
	if stored {
		t.Stored++
		return
	}
	t.Unchanged++
	if e.Type == 'f' && e.Size >= archive.DeltaMin {
		t.chunks.carry(name)
	}
}

// Base implements archive.Deltas: the chunk list of the version the
// parent stored, unless it could not store it whole.
func (t *Tracker) Base(name string) *archive.FileChunks {
	if t.old == nil || t.poison[name] {
		return nil
	}
	return t.chunks.base(name)
}

// Keep implements archive.Deltas.
func (t *Tracker) Keep(name string, fc *archive.FileChunks) { t.chunks.keep(name, fc) }

// DeltasMissing says why the large files that changed are stored whole
// this time, when the chunk lists of an incremental's parent are missing or
// damaged; else "". Worth a warning unless the state is merely older than
// chunk lists.
func (t *Tracker) DeltasMissing() (why string, warn bool) {
	if t.old == nil {
		return "", false
	}
	return t.chunks.Missing, t.chunks.Missing != "" && !t.chunks.Older
}

// changed says whether an entry must be stored again.
func (t *Tracker) changed(old, cur *Entry, name string) bool {
	return !old.same(cur) || old.Mtime >= t.racy || old.Ctime >= t.racy || t.poison[name]
}

// Unstored implements archive.Index.
func (t *Tracker) Unstored(name string) {
	t.mu.Lock()
	t.unstored = append(t.unstored, name)
	t.mu.Unlock()
}

// oldBlock skips the old index forward to the block of dir and returns its
// entries, or none when the old index has no such block (a new directory).
func (t *Tracker) oldBlock(top int, dir string) ([]Entry, error) {
	if t.old == nil {
		return nil, nil
	}
	for {
		r, err := t.old.peek()
		if err != nil {
			return nil, err
		}
		if r.kind != recBlock {
			return nil, nil // past the last block
		}
		c := compareWalk(t.tops, r.top, r.name, top, dir)
		if c > 0 {
			return nil, nil
		}
		t.old.next()
		entries, err := t.blockEntries()
		if err != nil || c == 0 {
			return entries, err
		}
	}
}

// blockEntries reads the entries of the block just started.
func (t *Tracker) blockEntries() ([]Entry, error) {
	var entries []Entry
	for {
		r, err := t.old.peek()
		if err != nil {
			return nil, err
		}
		if r.kind != recEntry {
			return entries, nil
		}
		entries = append(entries, r.entry)
		t.old.next()
	}
}

// finish writes the names that could not be stored and ends the new index.
func (t *Tracker) finish() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.unstored {
		t.new.poison(n)
	}
	if err := t.chunks.finish(); err != nil {
		t.new.f.Close()
		return "", err
	}
	return t.new.finish()
}

// compareWalk orders two directories (by top index and member name) as the
// walk visits them: tops in the order given; under a top, the top itself
// first, then depth first with the entries of each directory in byte order.
// That is byte order of the names with "/" below every other byte.
func compareWalk(tops []string, topA int, a string, topB int, b string) int {
	switch {
	case topA != topB:
		return cmpInt(topA, topB)
	case a == b:
		return 0
	case topA < len(tops) && a == tops[topA]:
		return -1
	case topB < len(tops) && b == tops[topB]:
		return 1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		return cmpInt(int(ca), int(cb))
	}
	return cmpInt(len(a), len(b))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// racyFrom is the start of the second in which a walk started: a file
// modified within it may change again without its times changing.
func racyFrom(start time.Time) int64 { return start.Truncate(time.Second).UnixNano() }
