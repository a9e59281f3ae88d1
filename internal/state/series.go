package state

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Files in a state folder.
const (
	lockFile    = "lock"
	indexFile   = "index"      // the index of the last stored backup
	chainFile   = "chain.json" // the chain the last stored backup belongs to
	nextIndex   = "index.next" // the index of the run in progress
	pendingFile = "pack.json"  // what bk-pack recorded about the run in progress
)

// Chain is the committed state of a series (chain.json): the backups of the
// current chain, the full one first, and the checksum of the index of the
// last one.
type Chain struct {
	Format    string   `json:"format"` // "bk-state-chain"
	Version   int      `json:"version"`
	Chain     string   `json:"chain"`
	IndexHash string   `json:"index_hash"`
	Members   []Member `json:"members"`
}

// Member is one backup of a chain.
type Member struct {
	Pack        string    `json:"pack"`
	Level       int       `json:"level"`
	Start       time.Time `json:"start"`
	ArchiveSize int64     `json:"archive_size"`
	// Filled in by bk-push when it stored the backup.
	ID         string `json:"id,omitempty"`
	SetID      string `json:"set_id,omitempty"`
	StreamHash string `json:"stream_hash,omitempty"`
}

// Pending is what bk-pack records about its run (pack.json), for bk-push.
type Pending struct {
	Format      string    `json:"format"` // "bk-state-pack"
	Version     int       `json:"version"`
	Pid         int       `json:"pid"`
	Chain       string    `json:"chain"`
	Pack        string    `json:"pack"`
	Parent      string    `json:"parent,omitempty"`
	Level       int       `json:"level"`
	Start       time.Time `json:"start"`
	Finished    bool      `json:"finished"`
	ArchiveSize int64     `json:"archive_size"`
	IndexHash   string    `json:"index_hash,omitempty"`
}

// Series is an open, locked state folder.
type Series struct {
	dir  string
	lock *os.File
}

// ErrBusy is returned by Open when another run holds the folder.
var ErrBusy = errors.New("is in use")

// Open creates (mode 0700) or opens the state folder dir and locks it for
// this process; who tells, in the lock, which program holds it. A folder
// another run holds is refused at once, naming the holder.
func Open(dir, who string) (*Series, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	return lock(dir, who, 0)
}

// OpenWait opens an existing state folder, waiting up to wait for the run
// that holds it (bk-pack, finishing) to let it go.
func OpenWait(dir, who string, wait time.Duration) (*Series, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	return lock(dir, who, wait)
}

func lock(dir, who string, wait time.Duration) (*Series, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "another run"
			}
			return nil, fmt.Errorf("state folder %s %w by %s", dir, ErrBusy, h)
		}
		return nil, fmt.Errorf("state folder %s: lock: %w", dir, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%s (pid %d) since %s\n", who, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	return &Series{dir: dir, lock: f}, nil
}

// Close unlocks the folder.
func (s *Series) Close() error { return s.lock.Close() }

func (s *Series) path(name string) string { return filepath.Join(s.dir, name) }

// PlanOptions say when a run starts a new chain.
type PlanOptions struct {
	Full        bool          // a full backup, whatever the state
	FullAfter   int           // a full backup after this many incrementals
	FullIfOlder time.Duration // a full backup when the chain's full is older
	Paths       []string      // member names of the paths to pack
	Now         time.Time
}

// Plan is what a run will make: a full backup (Level 0) or an incremental
// one on top of Parent.
type Plan struct {
	Level  int
	Chain  string
	Parent string
	Start  time.Time // the backup's, on the tools' calendar (PlanOptions.Now)
	// Walk is when the walk starts on the system clock, which the file
	// times it is compared with keep.
	Walk time.Time
	// Why a full backup, when it could have been incremental; Warn when
	// that is a problem (a state lost or damaged), not a schedule.
	Why  string
	Warn bool

	members   []Member
	oldHeader Header
	poison    map[string]bool
}

// Plan decides the next run's level from the state and the options.
func (s *Series) Plan(o PlanOptions) (*Plan, error) {
	p := &Plan{Start: o.Now, Walk: time.Now()}
	full := func(why string, warn bool) (*Plan, error) {
		id, err := newID()
		if err != nil {
			return nil, err
		}
		*p = Plan{Chain: id, Start: o.Now, Walk: p.Walk, Why: why, Warn: warn}
		return p, nil
	}
	if o.Full {
		return full("--full was given", false)
	}
	c, err := s.readChain()
	if errors.Is(err, fs.ErrNotExist) {
		return full(fmt.Sprintf("no state in %s yet (a first run, or the state was lost)", s.dir), true)
	}
	if err != nil {
		return full(fmt.Sprintf("the state in %s is damaged (%v)", s.dir, err), true)
	}
	h, sum, poison, err := verifyIndex(s.path(indexFile))
	switch {
	case err != nil:
		return full(fmt.Sprintf("the index in %s is damaged or lost (%v)", s.dir, err), true)
	case sum != c.IndexHash:
		return full(fmt.Sprintf("the index in %s does not belong to its chain (an interrupted update?)", s.dir), true)
	case h.Chain != c.Chain || h.Pack != c.Members[len(c.Members)-1].Pack:
		return full(fmt.Sprintf("the index in %s does not belong to its chain", s.dir), true)
	case !slices.Equal(h.Paths, o.Paths):
		return full(fmt.Sprintf("the paths differ from the series' (%s)", strings.Join(h.Paths, " ")), true)
	}
	last := c.Members[len(c.Members)-1]
	if last.Level >= o.FullAfter {
		return full(fmt.Sprintf("the chain has %d incremental backups (--full-after %d)", last.Level, o.FullAfter), false)
	}
	if age := o.Now.Sub(c.Members[0].Start); o.FullIfOlder > 0 && age > o.FullIfOlder {
		return full(fmt.Sprintf("the chain's full backup is %s old (--full-if-older %s)", age.Round(time.Hour), o.FullIfOlder), false)
	}
	p.Level = last.Level + 1
	p.Chain = c.Chain
	p.Parent = last.Pack
	p.members = c.Members
	p.oldHeader = h
	p.poison = poison
	return p, nil
}

func (s *Series) readChain() (*Chain, error) {
	b, err := os.ReadFile(s.path(chainFile))
	if err != nil {
		return nil, err
	}
	var c Chain
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if c.Format != "bk-state-chain" {
		return nil, errors.New("chain.json: not a bk-state-chain file")
	}
	if c.Version != 1 {
		return nil, fmt.Errorf("chain.json: version %d not known to this bk", c.Version)
	}
	if len(c.Members) == 0 || c.Members[0].Level != 0 {
		return nil, errors.New("chain.json: the chain does not start with a full backup")
	}
	return &c, nil
}

// Run is a run in progress: its plan, the tracker Pack consults and the
// index being written.
type Run struct {
	s       *Series
	Plan    *Plan
	Tracker *Tracker
	Pending Pending
	oldFile *os.File
}

// Begin starts a run of the plan for the paths (member names): it records
// the run as unfinished in pack.json and opens the indexes.
func (s *Series) Begin(p *Plan, paths []string) (*Run, error) {
	pack, err := newID()
	if err != nil {
		return nil, err
	}
	r := &Run{s: s, Plan: p, Pending: Pending{Format: "bk-state-pack", Version: 1, Pid: os.Getpid(),
		Chain: p.Chain, Pack: pack, Parent: p.Parent, Level: p.Level, Start: p.Start.UTC()}}
	if err := r.writePending(); err != nil {
		return nil, err
	}
	t := &Tracker{poison: p.poison, tops: paths}
	if p.Level > 0 {
		if r.oldFile, err = os.Open(s.path(indexFile)); err != nil {
			return nil, err
		}
		if t.old, err = newIndexReader(r.oldFile, false); err != nil {
			r.oldFile.Close()
			return nil, err
		}
		t.racy = racyFrom(p.oldHeader.Start)
	}
	if t.chunks, err = createChunks(s.path(nextChunks), pack); err != nil {
		r.close()
		return nil, err
	}
	if p.Level > 0 {
		t.chunks.openOld(s.path(chunksFile), p.oldHeader.Pack)
	}
	f, err := os.OpenFile(s.path(nextIndex), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.chunks.abort()
		r.close()
		return nil, err
	}
	h := Header{Chain: p.Chain, Level: p.Level, Pack: pack, Parent: p.Parent, Start: p.Walk.UTC(), Paths: paths}
	if t.new, err = newIndexWriter(f, h); err != nil {
		f.Close()
		t.chunks.abort()
		r.close()
		return nil, err
	}
	r.Tracker = t
	return r, nil
}

func (r *Run) close() {
	if r.oldFile != nil {
		r.oldFile.Close()
		r.oldFile = nil
	}
	if r.Tracker != nil {
		r.Tracker.chunks.close()
	}
}

// Finish records that the archive of archiveSize bytes was written whole:
// the index of this run is complete and pack.json says the pack finished.
func (r *Run) Finish(archiveSize int64) error {
	r.close()
	sum, err := r.Tracker.finish()
	if err != nil {
		return err
	}
	r.Pending.Finished = true
	r.Pending.ArchiveSize = archiveSize
	r.Pending.IndexHash = sum
	return r.writePending()
}

func (r *Run) writePending() error {
	return writeJSON(r.s.path(pendingFile), r.Pending)
}

// Commit advances the state to the finished run: its index becomes the
// series' index and the run joins the chain (starting a new chain when it
// is a full backup). m fills in what the storing side knows (ID, set ID,
// stream hash); the rest comes from the run.
func (s *Series) Commit(p Pending, m Member) error {
	if !p.Finished {
		return errors.New("the pack stage did not finish")
	}
	m.Pack, m.Level, m.Start, m.ArchiveSize = p.Pack, p.Level, p.Start, p.ArchiveSize
	c := &Chain{Format: "bk-state-chain", Version: 1, Chain: p.Chain, IndexHash: p.IndexHash}
	if p.Level > 0 {
		old, err := s.readChain()
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		if old.Chain != p.Chain || old.Members[len(old.Members)-1].Pack != p.Parent {
			return errors.New("the state moved on since this backup was packed")
		}
		c.Members = old.Members
	}
	c.Members = append(c.Members, m)
	// The chain names the checksum of its index, so a crash between the two
	// renames is seen as a damaged state (and the next run is full).
	if err := writeJSON(s.path(chainFile), c); err != nil {
		return err
	}
	if err := os.Rename(s.path(nextIndex), s.path(indexFile)); err != nil {
		return err
	}
	// The chunk lists name their backup: a crash before this rename leaves
	// lists the next run sees belong to another backup, and does not use.
	if err := os.Rename(s.path(nextChunks), s.path(chunksFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(s.path(pendingFile)); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// ReadPending reads what bk-pack recorded about the last run.
func (s *Series) ReadPending() (Pending, error) {
	var p Pending
	b, err := os.ReadFile(s.path(pendingFile))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s: %v", pendingFile, err)
	}
	if p.Format != "bk-state-pack" || p.Version != 1 {
		return p, fmt.Errorf("%s: not a version 1 bk-state-pack file", pendingFile)
	}
	return p, nil
}

// LastStored returns the ID of the last backup of the series' chain, the
// one its next incremental backup would build on, without taking the
// folder's lock (bk-backup asks before it starts bk-pack); "" when bk-push
// did not record it.
func LastStored(dir string) (string, error) {
	c, err := (&Series{dir: dir}).readChain()
	if err != nil {
		return "", err
	}
	return c.Members[len(c.Members)-1].ID, nil
}

// Chain returns the committed chain, for bk-push to name a backup's
// ancestors.
func (s *Series) Chain() (*Chain, error) { return s.readChain() }

// writeJSON replaces path atomically with v, mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Abort releases what a run holds; after a failure, nothing was committed
// and pack.json still says the pack did not finish. It does nothing after
// Finish.
func (r *Run) Abort() {
	r.close()
	if !r.Pending.Finished {
		r.Tracker.new.f.Close()
		r.Tracker.chunks.abort()
	}
}
