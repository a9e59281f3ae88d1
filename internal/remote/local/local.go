// Package local is the remote backend for a folder on this machine: a USB
// disk, a NAS mount, or a plain folder.
package local

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bk-backup/bk/internal/fsutil"
	"github.com/bk-backup/bk/internal/remote"
)

// Local stores files under a folder.
type Local struct {
	root    string
	verify  bool
	noFsync bool
}

// New opens the folder root, which must exist: a missing folder is more
// likely an unmounted disk or a typo than a place to start a backup. Of
// opts, only Verify and NoFsync apply.
func New(root string, opts remote.DialOptions) (*Local, error) {
	st, err := os.Stat(root)
	if err != nil {
		// The host's name is the path: say it once, as "host /x: no such file or directory".
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, remote.HostError(root, err)
	}
	if !st.IsDir() {
		return nil, remote.HostError(root, fmt.Errorf("%s is not a folder", root))
	}
	return &Local{root: root, verify: opts.Verify, noFsync: opts.NoFsync}, nil
}

func (l *Local) String() string { return l.root }

func (l *Local) path(name string) string { return filepath.Join(l.root, filepath.FromSlash(name)) }

func (l *Local) err(err error) error { return remote.HostError(l.root, err) }

// ready checks a name with check, and that ctx is still live.
func (l *Local) ready(ctx context.Context, check func(string) error, name string) error {
	if err := check(name); err != nil {
		return l.err(err)
	}
	return ctx.Err()
}

// Create implements remote.Remote.
func (l *Local) Create(ctx context.Context, name string) (remote.Upload, error) {
	if err := l.ready(ctx, remote.CheckNewName, name); err != nil {
		return nil, err
	}
	final := l.path(name)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, l.err(err)
	}
	f, err := os.OpenFile(l.path(remote.TempName(name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, l.err(err)
	}
	return &upload{l: l, f: f, final: final, sum: remote.VerifyHash(remote.DialOptions{Verify: l.verify}),
		fsync: !l.noFsync && !remote.IsProbe(filepath.Base(final))}, nil
}

// upload writes straight to the temp file: the kernel bounds the memory.
// Every writebackChunk bytes it has the kernel start writing them to
// disk, so that Commit's fsync, which a reader waits for, finds most of
// the file there already (on a 1 GiB backup's share it waited some 0.3 s
// for all of it). A goroutine of its own asks, as the call can wait for
// the file system's journal, which the writes need not.
type upload struct {
	l       *Local
	f       *os.File
	final   string
	written int64
	queued  int64         // bytes whose writeback has been asked for
	wb      chan [2]int64 // offset and length of each, to the writeback goroutine
	wbDone  chan struct{} // closed when that goroutine has ended
	sum     hash.Hash     // of what was written, with Verify; else nil
	fsync   bool          // Commit makes the file and its name durable
	err     error         // first write error, reported again by Commit
	done    bool          // committed or aborted
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, u.l.err(os.ErrClosed)
	}
	if u.err != nil {
		return 0, u.err
	}
	n, err := u.f.Write(p)
	u.written += int64(n)
	if u.sum != nil {
		u.sum.Write(p[:n])
	}
	if err != nil {
		u.err = u.l.err(err)
	}
	u.startWriteback()
	return n, u.err
}

// startWriteback hands the bytes written since the last time to the
// writeback goroutine, once they are writebackChunk or more; while it is
// still busy with earlier ones they wait, to go as a longer range.
func (u *upload) startWriteback() {
	if !u.fsync || u.written-u.queued < writebackChunk {
		return
	}
	if u.wb == nil {
		u.wb, u.wbDone = make(chan [2]int64, 4), make(chan struct{})
		go func(f *os.File, wb <-chan [2]int64, done chan<- struct{}) {
			defer close(done)
			for r := range wb {
				fsutil.StartWriteback(f, r[0], r[1])
			}
		}(u.f, u.wb, u.wbDone)
	}
	select {
	case u.wb <- [2]int64{u.queued, u.written - u.queued}:
		u.queued = u.written
	default:
	}
}

// stopWriteback ends the writeback goroutine, before the file is synced
// or closed.
func (u *upload) stopWriteback() {
	if u.wb != nil {
		close(u.wb)
		<-u.wbDone
		u.wb = nil
	}
}

// writebackChunk is how many bytes are written between two starts of
// their writeback: few calls, and little left for the fsync.
const writebackChunk = 8 << 20

func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return u.l.err(os.ErrClosed)
	}
	if u.err != nil {
		return u.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp := u.f.Name()
	u.stopWriteback()
	if u.fsync {
		if err := u.f.Sync(); err != nil {
			return u.l.err(err)
		}
	}
	if err := u.f.Close(); err != nil {
		u.err = u.l.err(err)
		return u.err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return u.l.err(err)
	}
	if st.Size() != u.written {
		u.err = u.l.err(fmt.Errorf("%s: stored %d bytes, wrote %d", tmp, st.Size(), u.written))
		return u.err
	}
	if u.l.verify {
		if err := u.verify(tmp); err != nil {
			u.err = u.l.err(err)
			return u.err
		}
	}
	if err := fsutil.RenameNoReplace(tmp, u.final); err != nil {
		u.err = u.l.err(err)
		return u.err
	}
	u.done = true
	if !u.fsync {
		return nil
	}
	// Make the new name durable too; a failure here loses no data that a
	// reader could see as whole.
	if d, err := os.Open(filepath.Dir(u.final)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// verify reads tmp back and compares it with what was written; one that
// differs is removed at once.
func (u *upload) verify(tmp string) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	h := remote.NewHash()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading %s back: %w", tmp, err)
	}
	if remote.SumOf(h) == remote.SumOf(u.sum) {
		return nil
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("%s: %w, and removing it failed: %v", u.final, remote.ErrChanged, err)
	}
	return fmt.Errorf("%s: %w", u.final, remote.ErrChanged)
}

func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	u.stopWriteback()
	u.f.Close()
	if err := os.Remove(u.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return u.l.err(err)
	}
	return nil
}

// Open implements remote.Remote.
func (l *Local) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	if err := l.ready(ctx, remote.CheckName, name); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, l.err(err)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, l.err(err)
	}
	return f, nil
}

// Stat implements remote.Remote.
func (l *Local) Stat(ctx context.Context, name string) (remote.Info, error) {
	if err := l.ready(ctx, remote.CheckName, name); err != nil {
		return remote.Info{}, err
	}
	st, err := os.Stat(l.path(name))
	if err != nil {
		return remote.Info{}, l.err(err)
	}
	return remote.Info{Name: name, Size: st.Size(), ModTime: st.ModTime(), Dir: st.IsDir()}, nil
}

// List implements remote.Remote.
func (l *Local) List(ctx context.Context, dir string) ([]remote.Info, error) {
	return l.list(ctx, dir, false)
}

// ListTemp implements remote.Remote.
func (l *Local) ListTemp(ctx context.Context, dir string) ([]remote.Info, error) {
	return l.list(ctx, dir, true)
}

// list lists the files and folders of dir that are leftovers, or that are
// not. It asks each entry's metadata only of those: List and ListTemp of a
// folder each look at all its entries' names, not twice at their inodes.
func (l *Local) list(ctx context.Context, dir string, temp bool) ([]remote.Info, error) {
	if err := l.ready(ctx, remote.CheckDir, dir); err != nil {
		return nil, err
	}
	d, err := os.Open(l.path(dir))
	if err != nil {
		return nil, l.err(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, l.err(err)
	}
	infos := make([]remote.Info, 0, len(names))
	for _, name := range names {
		if remote.IsLeftover(name) != temp {
			continue
		}
		st, err := lstatIn(d, name)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed while listing
		}
		if err != nil {
			return nil, l.err(err)
		}
		if st.regular || st.dir {
			infos = append(infos, remote.Info{Name: name, Size: st.size, ModTime: st.modTime, Dir: st.dir})
		}
	}
	return remote.Filter(infos, temp), nil
}

// stat is what a listing needs of an entry's metadata.
type stat struct {
	size         int64
	modTime      time.Time
	regular, dir bool
}

// Remove implements remote.Remote.
func (l *Local) Remove(ctx context.Context, name string) error {
	if err := l.ready(ctx, remote.CheckName, name); err != nil {
		return err
	}
	return l.err(os.Remove(l.path(name)))
}

// Free implements remote.Remote: the blocks left to unprivileged users.
func (l *Local) Free(ctx context.Context) (int64, error) {
	n, err := fsutil.FreeSpace(l.root)
	if err != nil {
		return 0, l.err(err)
	}
	return n, nil
}

// FileSystem implements remote.FileSystemer.
func (l *Local) FileSystem(ctx context.Context) (string, error) {
	id, err := fsutil.FileSystemID(l.root)
	if err != nil {
		return "", l.err(err)
	}
	return "local:" + id, nil
}

// Close implements remote.Remote; a folder holds nothing open.
func (l *Local) Close() error { return nil }
