// Package rclone is the remote backend for anything rclone reaches: it
// runs the system rclone, with the user's rclone config as it is, once for
// each operation. An upload streams into `rclone rcat` at a temp name and
// is moved to its own name with `rclone moveto` only when that name is
// absent; reads are `rclone cat --offset` (with `--count` for a part of a
// file, OpenRange), listings `rclone lsjson`.
//
// rclone has no rename that refuses to replace a file, so the check for
// the final name and the move are two steps: uploads of one process to one
// rclone path take turns at them, but another client may still slip in
// between (docs/FORMAT.md says so).
package rclone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/bk-backup/bk/internal/remote"
)

// Scheme starts a destination of this kind: "rclone:REMOTE:PATH".
const Scheme = "rclone:"

// Rclone stores files under an rclone path.
type Rclone struct {
	root    string // "REMOTE:PATH"
	command []string
	verify  bool

	mu     sync.Mutex
	unseen map[*upload]bool // uploads whose temp file no listing waited for
	// settling makes a listing of temp files wait for the uploads that
	// another one is waiting for.
	settling sync.Mutex
}

// commits serializes the check-then-move of every upload of this process
// to one rclone path, so bk's own uploads never replace each other.
var commits sync.Map // root -> *sync.Mutex

// Dial checks that rclone runs and knows the remote. The folder need not
// exist: on bucket stores folders appear with their first file.
func Dial(ctx context.Context, root string, opts remote.DialOptions) (*Rclone, error) {
	r := newRclone(root, opts)
	if _, err := r.stat(ctx, ""); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, r.err(err)
	}
	return r, nil
}

// newRclone is Dial without its check.
func newRclone(root string, opts remote.DialOptions) *Rclone {
	r := &Rclone{root: root, command: opts.RcloneCommand, verify: opts.Verify, unseen: map[*upload]bool{}}
	if len(r.command) == 0 {
		r.command = []string{"rclone"}
	}
	return r
}

func (r *Rclone) String() string { return Scheme + r.root }

func (r *Rclone) err(err error) error { return remote.HostError(r.String(), err) }

// path is the rclone path of name.
func (r *Rclone) path(name string) string {
	if name == "" || name == "." {
		return r.root
	}
	if strings.HasSuffix(r.root, ":") || strings.HasSuffix(r.root, "/") {
		return r.root + name
	}
	return r.root + "/" + name
}

// cmd builds an rclone command line. One try: bk retries and resumes on
// its own terms, and rclone's retries of a failed deletefile or moveto only
// repeat the failure.
func (r *Rclone) cmd(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, r.command[1:]...), args...), "--retries", "1")
	var c *exec.Cmd
	if ctx == nil {
		c = exec.Command(r.command[0], argv...)
	} else {
		c = exec.CommandContext(ctx, r.command[0], argv...)
	}
	c.Env = append(os.Environ(), lightStart)
	return c
}

// lightStart spares each rclone process the table of character widths
// that its terminal UI library (tcell) builds at start-up unless told not
// to: about a third of the CPU of an rclone start, for a UI that rclone's
// lsjson, cat, rcat, moveto and deletefile never draw.
const lightStart = "TCELL_MINIMIZE=1"

// Exit codes of rclone that mean the thing is absent.
const (
	exitDirNotFound  = 3
	exitFileNotFound = 4
)

// run runs rclone and returns its output; a failure says what rclone said
// last, and wraps fs.ErrNotExist for rclone's "not found" exit codes.
func (r *Rclone) run(ctx context.Context, args ...string) ([]byte, error) {
	c := r.cmd(ctx, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	return out, runError(args[0], err, stderr.String())
}

func runError(op string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	msg := lastLine(stderr)
	if msg == "" {
		msg = err.Error()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && (exit.ExitCode() == exitDirNotFound || exit.ExitCode() == exitFileNotFound) {
		return fmt.Errorf("rclone %s: %w (%s)", op, fs.ErrNotExist, msg)
	}
	return fmt.Errorf("rclone %s: %s", op, msg)
}

// lastLine is rclone's last message, without its time stamp.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	// "2026/11/29 20:18:03 Failed to ...": drop date and time.
	if f := strings.SplitN(line, " ", 3); len(f) == 3 && strings.Count(f[0], "/") == 2 && strings.Count(f[1], ":") == 2 {
		line = f[2]
	}
	return line
}

// entry is one item of `rclone lsjson`.
type entry struct {
	Name    string
	Size    int64
	ModTime time.Time
	IsDir   bool
}

func (e entry) info(name string) remote.Info {
	return remote.Info{Name: name, Size: max(e.Size, 0), ModTime: e.ModTime, Dir: e.IsDir}
}

func (r *Rclone) stat(ctx context.Context, name string) (entry, error) {
	out, err := r.run(ctx, "lsjson", "--stat", r.path(name))
	if err != nil {
		return entry{}, err
	}
	var e entry
	if err := json.Unmarshal(out, &e); err != nil {
		return entry{}, fmt.Errorf("rclone lsjson --stat %s: %w", r.path(name), err)
	}
	return e, nil
}

// Create implements remote.Remote: it starts rcat, which streams what is
// written to the temp file.
func (r *Rclone) Create(ctx context.Context, name string) (remote.Upload, error) {
	if err := remote.CheckNewName(name); err != nil {
		return nil, r.err(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := &upload{r: r, name: name, tmp: remote.TempName(name), sum: remote.VerifyHash(remote.DialOptions{Verify: r.verify}), exited: make(chan struct{})}
	// The upload outlives ctx; Abort ends it. --ignore-checksum leaves out
	// rclone's hash of the upload, not its check of the size; with Verify,
	// Commit compares the bytes.
	u.cmd = r.cmd(nil, "rcat", "--streaming-upload-cutoff", "0", "--ignore-checksum", r.path(u.tmp))
	u.cmd.Stderr = &u.stderr
	stdin, err := u.cmd.StdinPipe()
	if err != nil {
		return nil, r.err(err)
	}
	u.stdin = stdin
	if err := u.cmd.Start(); err != nil {
		return nil, r.err(fmt.Errorf("create %s: %w", name, err))
	}
	go func() {
		u.waitErr = u.cmd.Wait()
		close(u.exited)
	}()
	r.mu.Lock()
	r.unseen[u] = true
	r.mu.Unlock()
	return u, nil
}

// settle waits for the temp files of this process's uploads to the host
// to be there to list, once for each upload: a listing of temp files then
// shows every upload Create started, and a clean-up that removes one
// fails that upload. Uploads nothing lists cost no wait.
func (r *Rclone) settle(ctx context.Context) error {
	r.settling.Lock()
	defer r.settling.Unlock()
	r.mu.Lock()
	ups := make([]*upload, 0, len(r.unseen))
	for u := range r.unseen {
		ups = append(ups, u)
	}
	clear(r.unseen)
	r.mu.Unlock()
	for _, u := range ups {
		// An upload that failed says so at its Commit.
		_ = u.appear(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// appear waits for rcat to make the temp file. Folder-like backends make
// it when rcat starts; bucket-like ones only at the end, and there an
// empty placeholder takes its place until then. An upload that Commit or
// Abort has begun to end is left alone, and they wait for appear, so
// that no placeholder comes after the upload.
func (u *upload) appear(ctx context.Context) error {
	u.ending.Lock()
	defer u.ending.Unlock()
	if u.ended {
		return nil
	}
	for pause := 10 * time.Millisecond; pause < 2*time.Second; pause *= 2 {
		// Any error means not yet: rclone's lsjson --stat of a name that
		// becomes a file while it looks fails as "not a directory".
		if _, err := u.r.stat(ctx, u.tmp); err == nil {
			return nil
		}
		select {
		case <-u.exited:
			return runError("rcat", u.waitErr, u.stderr.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	_, err := u.r.run(ctx, "touch", u.r.path(u.tmp))
	return err
}

// end marks the upload as ending, after any appear under way.
func (u *upload) end() {
	u.r.mu.Lock()
	delete(u.r.unseen, u)
	u.r.mu.Unlock()
	u.ending.Lock()
	u.ended = true
	u.ending.Unlock()
}

type upload struct {
	r       *Rclone
	name    string
	tmp     string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  bytes.Buffer // read only after rclone has exited
	exited  chan struct{}
	waitErr error // set before exited closes
	written int64
	sum     hash.Hash // of all that was written, with Verify; else nil
	err     error     // sticky: after a failure the upload is given up
	done    bool      // committed or aborted
	ending  sync.Mutex
	ended   bool // Commit or Abort began: appear leaves it alone
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, u.r.err(os.ErrClosed)
	}
	if u.err != nil {
		return 0, u.err
	}
	n, err := u.stdin.Write(p)
	u.written += int64(n)
	if u.sum != nil {
		u.sum.Write(p[:n])
	}
	if err != nil {
		u.err = u.r.err(fmt.Errorf("upload %s: %w", u.name, u.exitError(err)))
	}
	return n, u.err
}

// exitError is rclone's own account of a failure, once it has exited.
func (u *upload) exitError(err error) error {
	u.stdin.Close()
	select {
	case <-u.exited:
		if u.waitErr != nil {
			return runError("rcat", u.waitErr, u.stderr.String())
		}
	case <-time.After(10 * time.Second):
	}
	return err
}

func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return u.r.err(os.ErrClosed)
	}
	if u.err != nil {
		return u.err
	}
	if err := u.commit(ctx); err != nil {
		u.err = u.r.err(err)
		return u.err
	}
	u.done = true
	return nil
}

func (u *upload) commit(ctx context.Context) error {
	u.end()
	if err := u.stdin.Close(); err != nil {
		return err
	}
	select {
	case <-u.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	// rcat exits cleanly only when it read all that was written and the
	// stored file has that size (rclone's own check, which
	// --ignore-checksum leaves on): asking the size again buys nothing.
	if u.waitErr != nil {
		return fmt.Errorf("upload %s: %w", u.name, runError("rcat", u.waitErr, u.stderr.String()))
	}
	if u.r.verify {
		if err := u.verify(ctx); err != nil {
			return err
		}
	}
	return u.moveIntoPlace(ctx)
}

// verify reads the temp file back and compares it with what was written;
// one that differs is removed at once.
func (u *upload) verify(ctx context.Context) error {
	rc, err := u.r.open(u.tmp, u.tmp, 0, nil)
	if err != nil {
		return err
	}
	h := remote.NewHash()
	_, err = io.Copy(h, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reading %s back: %w", u.tmp, err)
	}
	if remote.SumOf(h) == remote.SumOf(u.sum) {
		return nil
	}
	if _, err := u.r.run(ctx, "deletefile", u.r.path(u.tmp)); err != nil {
		return fmt.Errorf("%s: %w, and removing it failed: %v", u.name, remote.ErrChanged, err)
	}
	return fmt.Errorf("%s: %w", u.name, remote.ErrChanged)
}

// moveIntoPlace moves the temp file to its name if that is absent:
// `moveto --ignore-existing` checks the name and moves, and leaves the temp
// file where it was when the name is taken. Its exit status is the same
// either way, so a temp file still there afterwards says the name was
// taken (and one that moveto failed to find fails it: a clean-up removed
// it).
func (u *upload) moveIntoPlace(ctx context.Context) error {
	mu, _ := commits.LoadOrStore(u.r.root, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := u.r.run(ctx, "moveto", "--ignore-existing", u.r.path(u.tmp), u.r.path(u.name)); err != nil {
		return err
	}
	_, err := u.r.stat(ctx, u.tmp)
	switch {
	case err == nil:
		return fmt.Errorf("%s: %w", u.name, fs.ErrExist)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return err
}

// Abort stops rcat and removes the temp file, unless Commit has moved it.
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	u.end()
	select {
	case <-u.exited:
	default:
		_ = u.cmd.Process.Kill()
		<-u.exited
	}
	_, err := u.r.run(context.Background(), "deletefile", u.r.path(u.tmp))
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !strings.Contains(err.Error(), "doesn't exist") {
		return u.r.err(err)
	}
	return nil
}

// Open implements remote.Remote with `rclone cat --offset`, the file named
// in --files-from-raw so that a folder reads as nothing rather than as its
// files one after another. Open waits for the first bytes and asks
// lsjson what name is only when none come: a missing file, a folder and
// the end of a file all read as nothing (a missing file with exit status
// 0 on bucket stores). Every other read starts rclone once.
func (r *Rclone) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	if err := remote.CheckName(name); err != nil {
		return nil, r.err(err)
	}
	if !strings.ContainsAny(name, "\r\n") { // one line of --files-from-raw
		rd, err := r.open(name, "", offset, []byte(name+"\n"), "--files-from-raw", "-")
		if err != nil {
			return nil, r.err(err)
		}
		if rd.first(ctx) {
			return rd, nil
		}
		rd.Close()
	}
	st, err := r.stat(ctx, name)
	if err == nil && st.IsDir {
		err = fmt.Errorf("%s is a folder", name)
	}
	if err != nil {
		return nil, r.err(fmt.Errorf("open %s: %w", name, err))
	}
	rc, err := r.open(name, name, offset, nil)
	return rc, r.err(err)
}

// OpenRange implements remote.RangeOpener with `rclone cat --offset
// --count`: rclone asks the remote for that range alone. Unlike Open it
// does not check first that name exists (a missing file reads as empty),
// as its reader already opened the file.
func (r *Rclone) OpenRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := remote.CheckName(name); err != nil {
		return nil, r.err(err)
	}
	rc, err := r.open(name, name, offset, nil, "--count", fmt.Sprint(length))
	return rc, r.err(err)
}

// open starts `rclone cat` of the rclone path of at from offset on, with
// stdin (when not nil) on its standard input, to read name. The read
// outlives the Open call; Close ends it.
func (r *Rclone) open(name, at string, offset int64, stdin []byte, more ...string) (*reader, error) {
	args := append([]string{"cat", "--offset", fmt.Sprint(offset)}, more...)
	rd := &reader{name: name, cmd: r.cmd(nil, append(args, r.path(at))...)}
	if stdin != nil {
		rd.cmd.Stdin = bytes.NewReader(stdin)
	}
	rd.cmd.Stderr = &rd.stderr
	out, err := rd.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	rd.out = out
	if err := rd.cmd.Start(); err != nil {
		return nil, err
	}
	rd.r = r
	return rd, nil
}

type reader struct {
	r      *Rclone
	name   string
	cmd    *exec.Cmd
	out    io.ReadCloser
	head   []byte       // read by first, not yet by the caller
	stderr bytes.Buffer // read only after rclone has exited
	done   bool         // the process has been waited for
}

// first waits for the first bytes and keeps them for Read; false when the
// read ended (or failed, or ctx ended) before any came.
func (rd *reader) first(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() { _ = rd.cmd.Process.Kill() })
	defer stop()
	buf := make([]byte, 32<<10)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			rd.head = buf[:n]
			return true
		}
		if err != nil {
			return false
		}
	}
}

// Read reports rclone's failure at the end of the stream, so a cut-short
// read never looks like a whole file.
func (rd *reader) Read(p []byte) (int, error) {
	if len(rd.head) > 0 {
		n := copy(p, rd.head)
		rd.head = rd.head[n:]
		return n, nil
	}
	if rd.done {
		return 0, io.EOF
	}
	n, err := rd.out.Read(p)
	if err == io.EOF {
		rd.done = true
		if werr := rd.cmd.Wait(); werr != nil {
			return n, rd.r.err(fmt.Errorf("read %s: %w", rd.name, runError("cat", werr, rd.stderr.String())))
		}
	}
	return n, err
}

func (rd *reader) Close() error {
	rd.head = nil
	if !rd.done {
		rd.done = true
		_ = rd.cmd.Process.Kill()
		_ = rd.cmd.Wait()
	}
	return nil
}

// Stat implements remote.Remote.
func (r *Rclone) Stat(ctx context.Context, name string) (remote.Info, error) {
	if err := remote.CheckName(name); err != nil {
		return remote.Info{}, r.err(err)
	}
	e, err := r.stat(ctx, name)
	if err != nil {
		return remote.Info{}, r.err(fmt.Errorf("stat %s: %w", name, err))
	}
	return e.info(name), nil
}

// List implements remote.Remote.
func (r *Rclone) List(ctx context.Context, dir string) ([]remote.Info, error) {
	infos, err := r.list(ctx, dir, false)
	return remote.Filter(infos, false), err
}

// ListTemp implements remote.Remote.
func (r *Rclone) ListTemp(ctx context.Context, dir string) ([]remote.Info, error) {
	infos, err := r.list(ctx, dir, true)
	return remote.Filter(infos, true), err
}

// ListBoth implements remote.BothLister: one lsjson serves both.
func (r *Rclone) ListBoth(ctx context.Context, dir string) (files, leftovers []remote.Info, err error) {
	infos, err := r.list(ctx, dir, true)
	if err != nil {
		return nil, nil, err
	}
	return remote.Filter(infos, false), remote.Filter(infos, true), nil
}

// list is what `rclone lsjson` says is in dir; temp waits first for this
// process's temp files (settle), for a listing that shows them.
func (r *Rclone) list(ctx context.Context, dir string, temp bool) ([]remote.Info, error) {
	if err := remote.CheckDir(dir); err != nil {
		return nil, r.err(err)
	}
	if temp {
		if err := r.settle(ctx); err != nil {
			return nil, err
		}
	}
	out, err := r.run(ctx, "lsjson", r.path(dir))
	if errors.Is(err, fs.ErrNotExist) && (dir == "" || dir == ".") {
		return nil, nil // the top appears with the first file
	}
	if err != nil {
		return nil, r.err(fmt.Errorf("list %s: %w", dir, err))
	}
	var entries []entry
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, r.err(fmt.Errorf("rclone lsjson %s: %w", r.path(dir), err))
	}
	infos := make([]remote.Info, 0, len(entries))
	for _, e := range entries {
		infos = append(infos, e.info(e.Name))
	}
	return infos, nil
}

// Remove implements remote.Remote: deletefile for a file, rmdir for an
// empty folder. deletefile says the same of a folder and of a missing
// name, so only a failed one asks which it was.
func (r *Rclone) Remove(ctx context.Context, name string) error {
	if err := remote.CheckName(name); err != nil {
		return r.err(err)
	}
	_, err := r.run(ctx, "deletefile", r.path(name))
	if err == nil {
		return nil
	}
	e, serr := r.stat(ctx, name)
	switch {
	case serr != nil:
		err = serr
	case e.IsDir:
		_, err = r.run(ctx, "rmdir", r.path(name))
	}
	if err != nil {
		return r.err(fmt.Errorf("remove %s: %w", name, err))
	}
	return nil
}

// Free implements remote.Remote with `rclone about`, where the backend
// can say.
func (r *Rclone) Free(ctx context.Context) (int64, error) {
	out, err := r.run(ctx, "about", "--json", r.root)
	if err != nil {
		return 0, r.err(fmt.Errorf("%w: %v", remote.ErrUnknownSpace, err))
	}
	var about struct{ Free *int64 }
	if err := json.Unmarshal(out, &about); err != nil || about.Free == nil {
		return 0, r.err(remote.ErrUnknownSpace)
	}
	return *about.Free, nil
}

// Close implements remote.Remote; nothing stays open between operations.
func (r *Rclone) Close() error { return nil }
