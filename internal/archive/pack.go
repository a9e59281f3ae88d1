package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
)

// PackOptions tune Pack.
type PackOptions struct {
	// Excludes are tar-like patterns: a pattern matches the base name or the
	// whole stored path (path.Match); a matching directory is skipped whole.
	Excludes []string
	// OneFileSystem keeps Pack from descending into directories on other
	// file systems than the path given (their mount point is still stored).
	OneFileSystem bool
	// Warn receives warnings: unreadable entries (skipped), files whose
	// read failed part way (stored damaged), files changed while read,
	// special files skipped. It is called from one goroutine.
	Warn func(format string, args ...any)
	// Progress receives the number of bytes of file content read, may be nil.
	Progress func(n int)
	// Index, when set, chooses the entries to store: those that changed
	// since an earlier backup (directories are always stored).
	Index Index
	// Deltas, when set, keeps the chunk lists of large files, and stores
	// one that changed as a delta against its version in the backup
	// before (see DeltaMin).
	Deltas Deltas
	// Dumpdirs adds a GNU.dumpdir record to each directory whose content
	// was listed, so that the archive applies as an incremental one (tar -G).
	Dumpdirs bool
	// Entry, when set, is told where each stored entry starts in the tar
	// stream: its header (a sparse file's with the file's size) and the
	// offset of its first header block; at the end, once more with a nil
	// header and the offset of the end-of-archive marker. An error ends
	// the Pack.
	Entry func(h *tar.Header, offset int64) error
}

// PackStats counts what Pack stored. Links counts symbolic and hard links;
// Skipped counts entries that could not be read and were left out; Damaged
// counts files whose read failed part way: stored with zeros for the rest
// and marked damaged (see damagedPath).
type PackStats struct {
	Files, Dirs, Links, Bytes int64
	Skipped, Damaged          int
}

// Read-ahead limits: memory stays within about readBudget plus one
// copyChunk, whatever the tree.
const (
	smallFile   = 256 << 10 // read whole by a worker
	headChunk   = 256 << 10 // read ahead from the start of a bigger file
	copyChunk   = 1 << 20   // buffer streaming the rest of a big file
	readBudget  = 8 << 20   // bytes read ahead at once
	readWorkers = 4
	queueLen    = 256 // entries walked ahead of the writer
	// Entries go to the workers and the writer in batches, so that a tree
	// of small files costs a few channel hand-offs per batch, not per file.
	batchLen   = 32
	batchBytes = 256 << 10
	// Batches kept for reuse: as many as can be queued, read and written.
	freeBatches = queueLen/batchLen + readWorkers + 2
)

type kind int

const (
	kindFile kind = iota
	kindDir
	kindSymlink
	kindNote // a warning from the walker, kept in stream order
)

type devIno struct{ dev, ino uint64 }

func keyOf(fi fs.FileInfo) devIno {
	return devIno{devOf(fi), statOf(fi).Ino}
}

// top is a path given to Pack. Paths may overlap (home, home/alice): each
// entry is stored once, by whichever walk reaches it first.
type top struct {
	key    devIno // what the path named when Pack started
	stored bool   // stored in full by an earlier walk
}

// item is one walked entry on its way from the walker to the writer.
type item struct {
	kind   kind
	path   string // on disk
	name   string // member name
	fi     fs.FileInfo
	target string // symlink target
	xattrs map[string]string
	// xattrErr: the extended attributes of a file a worker read could not
	// all be listed; the writer warns.
	xattrErr error
	note     string
	skipped  bool   // the note reports a skipped entry
	dumpdir  string // a directory's GNU.dumpdir record, if any

	// Regular files. A file whose inode was already queued is not read
	// again: the writer stores it as a hard link (or reads it itself if the
	// first one could not be read).
	again bool
	key   devIno
	// noDelta: the name a delta of this file would take is a file of the
	// directory too.
	noDelta bool
	// Filled by a read worker before its batch's done is closed.
	fd     int // once st is set: open for the rest and the final fstat, or -1
	st     *statInfo
	data   []byte
	end    bool     // the read that filled data met the end of the file
	grew   bool     // there was more than st.Size()
	sparse []region // the data regions of a file with holes, else nil
	err    error    // the file could not be opened or read at all: skipped
	// readErr stopped the read of the head after some bytes: the file is
	// stored with them, marked damaged.
	readErr error
	budget  int64
	load    bool // read by a worker
}

// batch is a run of consecutive entries, in stream order. Its files are
// read by one worker into buf, reused from batch to batch.
type batch struct {
	items  []*item
	done   chan struct{} // closed once the files are read
	buf    []byte
	budget int64 // taken for its files
	files  int
}

// budget is a byte semaphore that the walker takes from in stream order, so
// the files the writer waits for always got theirs.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	free int64
	ctx  context.Context
}

func newBudget(ctx context.Context, n int64) *budget {
	b := &budget{free: n, ctx: ctx}
	b.cond = sync.NewCond(&b.mu)
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	return b
}

func (b *budget) take(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.free < n {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		b.cond.Wait()
	}
	b.free -= n
	return nil
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.free += n
	b.cond.Broadcast()
	b.mu.Unlock()
}

type packer struct {
	opts   PackOptions
	ctx    context.Context
	budget *budget
	order  chan *batch
	jobs   chan *batch
	inodes map[devIno]bool // walker only: hard-linked inodes queued so far
	// walker only: names of hard-linked inodes the Index left out as
	// unchanged, while no name of theirs is in the archive (see keep)
	kept map[devIno][]keptName
	tops map[string]*top // walker only: the paths given, by member name
	top  int             // walker only: the index of the path being walked
	// walker only: member names whose delta name is taken (see noDelta)
	deltaTaken map[string]bool
	cancel     context.CancelFunc
	err        error  // the walker's own failure (an Index's), read after it ended
	cur        *batch // walker only: being filled
	// Batches done with, kept with their buffers for the walker to fill
	// again: a sync.Pool would drop them at each garbage collection, and
	// the buffers, made again, were a fifth of the bytes a pack allocated.
	free chan *batch
}

// Pack walks paths and writes one PAX tar stream to w. Paths are stored
// tar-style: as given, cleaned, leading "/" and "../" removed (with one
// warning, as GNU tar does). Directory entries are stored in sorted order.
// Unreadable entries are skipped with a warning naming them and counted in
// Skipped; Pack still returns nil then. A path that does not exist at the
// start is an error, and nothing is written.
func Pack(ctx context.Context, w io.Writer, paths []string, opts PackOptions) (PackStats, error) {
	if opts.Warn == nil {
		opts.Warn = func(string, ...any) {}
	}
	if opts.Progress == nil {
		opts.Progress = func(int) {}
	}
	tops, err := checkArgs(paths, opts)
	if err != nil {
		return PackStats{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &packer{
		opts:   opts,
		ctx:    ctx,
		budget: newBudget(ctx, readBudget),
		order:  make(chan *batch, queueLen/batchLen),
		jobs:   make(chan *batch, readWorkers),
		free:   make(chan *batch, freeBatches),
		inodes: map[devIno]bool{},
		cancel: cancel,
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(p.order)
		defer close(p.jobs)
		if p.walk(paths, tops) {
			p.flush()
		}
	})
	for range readWorkers {
		wg.Go(func() {
			for b := range p.jobs {
				p.loadBatch(b)
			}
		})
	}
	out := &CountWriter{W: w}
	w2 := &writer{p: p, tw: tar.NewWriter(out), out: out, links: map[devIno]string{},
		users: map[uint32]string{}, groups: map[uint32]string{}}
	err = w2.run()
	cancel()
	wg.Wait()
	for b := range p.order { // left over after an error: release open files
		<-b.done
		for _, it := range b.items {
			it.close()
		}
	}
	if p.err != nil {
		err = p.err
	}
	return w2.stats, err
}

// CheckArgs returns the error Pack would return for its arguments before
// writing anything: a bad exclude pattern, a path that does not exist. A
// caller checks them before it writes the layers around the archive.
func CheckArgs(paths []string, opts PackOptions) error {
	_, err := checkArgs(paths, opts)
	return err
}

func checkArgs(paths []string, opts PackOptions) ([]fs.FileInfo, error) {
	for _, p := range opts.Excludes {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad exclude pattern %q: %v", p, err)
		}
	}
	tops := make([]fs.FileInfo, len(paths))
	for i, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		tops[i] = fi
	}
	return tops, nil
}

// fail ends the walk with err, which Pack returns.
func (p *packer) fail(err error) {
	p.err = err
	p.cancel()
}

// emit queues an item for the writer, in stream order, in the current
// batch; a full batch is sent on.
func (p *packer) emit(it *item) bool {
	if p.cur == nil {
		select {
		case p.cur = <-p.free:
		default:
			p.cur = &batch{}
		}
	}
	b := p.cur
	b.items = append(b.items, it)
	if it.load {
		b.files++
		b.budget += it.budget
	}
	if len(b.items) >= batchLen || b.budget >= batchBytes {
		return p.flush()
	}
	return true
}

// flush sends the current batch to the writer and, if it has files to
// read, to a worker.
func (p *packer) flush() bool {
	b := p.cur
	if b == nil {
		return true
	}
	p.cur = nil
	b.done = make(chan struct{})
	select {
	case p.order <- b:
	case <-p.ctx.Done():
		p.budget.give(b.budget)
		return false
	}
	if b.files == 0 {
		close(b.done)
		return true
	}
	select {
	case p.jobs <- b:
		return true
	case <-p.ctx.Done():
		for _, it := range b.items {
			it.err = p.ctx.Err()
		}
		close(b.done)
		return false
	}
}

func (p *packer) notef(skipped bool, format string, args ...any) bool {
	return p.emit(&item{kind: kindNote, note: fmt.Sprintf(format, args...), skipped: skipped})
}

func (p *packer) walk(paths []string, tops []fs.FileInfo) bool {
	p.tops = map[string]*top{}
	for i, disk := range paths {
		name, _ := storedName(disk)
		if p.tops[name] == nil {
			p.tops[name] = &top{key: keyOf(tops[i])}
		}
	}
	warned := map[string]bool{}
	names := make([]string, len(paths))
	for i, disk := range paths {
		name, removed := storedName(disk)
		if removed != "" && !warned[removed] {
			warned[removed] = true
			if !p.notef(false, "removing leading '%s' from member names", removed) {
				return false
			}
		}
		names[i] = name
	}
	store, err := p.chooseTops(paths, names, tops)
	if err != nil {
		p.fail(err)
		return false
	}
	for i, disk := range paths {
		if !store[i] && !tops[i].IsDir() {
			continue
		}
		p.top = i
		if !p.visit(disk, names[i], tops[i], devOf(tops[i])) {
			return false
		}
	}
	return true
}

// chooseTops asks the Index, if any, which paths to store.
func (p *packer) chooseTops(paths, names []string, tops []fs.FileInfo) ([]bool, error) {
	store := make([]bool, len(paths))
	if p.opts.Index == nil {
		for i := range store {
			store[i] = true
		}
		return store, nil
	}
	listing := make([]Child, len(paths))
	for i, disk := range paths {
		listing[i], _ = childOf(names[i], disk, tops[i])
	}
	return p.opts.Index.Tops(listing)
}

// visit queues the entry at disk (already Lstat'ed as fi) and, for a
// directory, its content. It returns false once the context is done.
func (p *packer) visit(disk, name string, fi fs.FileInfo, dev uint64) bool {
	if p.ctx.Err() != nil {
		return false
	}
	if name != "." && excluded(p.opts.Excludes, name) {
		return true
	}
	mode := fi.Mode()
	if t := p.tops[name]; t != nil && t.key == keyOf(fi) {
		if t.stored {
			return true
		}
		// A directory on another file system is stored without its
		// content by -x: the walk of that path, if given, still goes in.
		t.stored = !(mode.IsDir() && p.opts.OneFileSystem && devOf(fi) != dev)
	}
	it := &item{path: disk, name: name, fi: fi}
	switch {
	case mode.IsRegular(), mode.IsDir(), mode&fs.ModeSymlink != 0:
	case mode&fs.ModeSocket != 0:
		return p.notef(false, "%s: socket ignored", disk)
	default:
		return p.notef(false, "%s: special file (%v) not stored", disk, mode.Type())
	}
	if mode.IsRegular() {
		return p.queueFile(it)
	}
	if skip, ok := p.pathXattrs(it); skip || !ok {
		return ok
	}
	var err error
	switch {
	case mode&fs.ModeSymlink != 0:
		it.kind = kindSymlink
		if it.target, err = os.Readlink(disk); err != nil {
			p.unstored(name)
			return p.notef(true, "skipping %s: %v", disk, err)
		}
		return p.emit(it)
	}
	it.kind = kindDir
	if p.opts.OneFileSystem && devOf(fi) != dev {
		return p.emit(it)
	}
	kids, listing, err := p.listDir(disk, name)
	if err != nil {
		if p.ctx.Err() != nil {
			return false
		}
		return p.emit(it) && p.notef(true, "skipping content of %s: %v", disk, err)
	}
	store := make([]bool, len(listing))
	if p.opts.Index == nil {
		for i := range store {
			store[i] = true
		}
	} else if store, err = p.opts.Index.List(p.top, name, listing); err != nil {
		p.fail(err)
		return false
	}
	if p.opts.Dumpdirs {
		it.dumpdir = dumpdir(listing, store)
	}
	if !p.emit(it) {
		return false
	}
	taken := p.takeDeltaNames(kids)
	for _, k := range kids {
		if k.listed >= 0 && !store[k.listed] && !k.fi.IsDir() {
			if !p.keep(k, dev) {
				return false
			}
			continue
		}
		if !p.visit(k.disk, k.name, k.fi, dev) {
			return false
		}
	}
	for _, name := range taken {
		delete(p.deltaTaken, name)
	}
	return true
}

// pathXattrs lists the extended attributes of an entry by its path: one
// the read workers do not open (a file they read gets them through its
// descriptor, see load). skip: the entry is gone, and a note says so; ok
// is false once the context is done.
func (p *packer) pathXattrs(it *item) (skip, ok bool) {
	xa, err := listXattrs(it.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			p.unstored(it.name)
			return true, p.notef(true, "skipping %s: %v", it.path, err)
		}
		if !p.notef(false, "%s: extended attributes not stored: %v", it.path, err) {
			return false, false
		}
	}
	it.xattrs = xa
	return false, true
}

// keptName is an unchanged name of a hard-linked file, and the device of
// its walk.
type keptName struct {
	walked
	dev uint64
}

// keep sees to an entry the Index left out as unchanged that is one name
// of a hard-linked file. The names of an inode must come back linked, yet a
// folder moved gives the files in it new names (stored) without touching
// their inodes, whose other names stay unchanged (left out). So once one
// name of an inode is in the archive, every unchanged name of it goes in
// too, as a hard link to it: now, if one is in already, else when one is.
func (p *packer) keep(k walked, dev uint64) bool {
	if !k.fi.Mode().IsRegular() || statOf(k.fi).Nlink < 2 {
		return true
	}
	key := keyOf(k.fi)
	if p.inodes[key] {
		return p.visit(k.disk, k.name, k.fi, dev)
	}
	if p.kept == nil {
		p.kept = map[devIno][]keptName{}
	}
	p.kept[key] = append(p.kept[key], keptName{k, dev})
	return true
}

// linkKept stores the unchanged names kept for an inode whose first name
// in the archive was just queued, as hard links to it.
func (p *packer) linkKept(key devIno) bool {
	kept := p.kept[key]
	delete(p.kept, key)
	for _, k := range kept {
		if !p.visit(k.disk, k.name, k.fi, k.dev) {
			return false
		}
	}
	return true
}

// takeDeltaNames marks the files of a directory listing whose delta's name
// (name + DeltaSuffix) is another entry of it, and returns their names.
func (p *packer) takeDeltaNames(kids []walked) []string {
	var taken []string
	for _, k := range kids {
		if base, ok := strings.CutSuffix(k.name, DeltaSuffix); ok {
			if p.deltaTaken == nil {
				p.deltaTaken = map[string]bool{}
			}
			p.deltaTaken[base] = true
			taken = append(taken, base)
		}
	}
	return taken
}

// queueFile hands a regular file to the read workers, unless its inode was
// queued before (a hard link), taking its read-ahead from the budget first.
func (p *packer) queueFile(it *item) bool {
	it.kind = kindFile
	it.noDelta = p.deltaTaken[it.name]
	st := statOf(it.fi)
	if st.Nlink > 1 {
		it.key = keyOf(it.fi)
		if p.inodes[it.key] {
			it.again = true
			if skip, ok := p.pathXattrs(it); skip || !ok {
				return ok
			}
			return p.emit(it)
		}
		p.inodes[it.key] = true
	}
	it.budget = min(it.fi.Size(), headChunk)
	// The batch being filled holds at most batchBytes of budget, so this
	// never waits for budget that only the batch's own writing would free.
	if err := p.budget.take(it.budget); err != nil {
		return false
	}
	it.load = true
	if !p.emit(it) {
		return false
	}
	return it.key == (devIno{}) || p.linkKept(it.key)
}

// CountWriter counts the bytes written through it: Pack's the bytes of
// the tar stream, for the offsets of PackOptions.Entry.
type CountWriter struct {
	W io.Writer
	N int64
}

func (c *CountWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}
