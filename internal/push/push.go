// Package push sends the shares of a share stream to their hosts: it picks
// the hosts (swapping in spares for those that fail before data flows),
// checks their free space and quotas, uploads all shares at once, and writes
// the backup's manifest to every host that stored a share, or, when too few
// did, removes what this run stored.
package push

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
)

// Options configure one push.
type Options struct {
	Hosts []hostsfile.Host
	// Dial connects to a host.
	Dial func(ctx context.Context, h hostsfile.Host) (remote.Remote, error)
	Name string // backup name, for the ID
	// Parent is the ID of the backup this one builds on, or "".
	Parent string
	// MinShares is the fewest shares that make a backup worth keeping; 0
	// means K+1.
	MinShares int
	// ExpectSize is the size of the stream bk-split read, used to check
	// space before data flows; negative when unknown.
	ExpectSize int64
	// StaleAge is how old a temp file must be to count as a leftover of a
	// killed run and be removed.
	StaleAge time.Duration
	Env      *cli.Env
}

// Push reads a share stream from r and stores its shares. It returns the
// manifest of the stored backup; with fewer than N but at least MinShares
// shares stored, also a cli.DegradedError naming the failed hosts. With
// fewer, it removes the shares it stored and returns an error.
func Push(ctx context.Context, r io.Reader, opt Options) (*manifest.Manifest, error) {
	sr, err := shard.NewStreamReader(r)
	if err != nil {
		return nil, streamError(err)
	}
	p := &pusher{opt: opt, msg: opt.Env.Msg, info: sr.Info(), start: time.Now().UTC().Truncate(time.Second)}
	if err := p.checkParams(); err != nil {
		return nil, err
	}
	p.id = manifest.NewID(opt.Name, p.start, p.info.SetID)
	targets, err := p.pickHosts(ctx)
	defer closeAll(targets)
	if err != nil {
		return nil, err
	}
	return p.run(ctx, sr, targets)
}

func streamError(err error) error {
	if errors.Is(err, shard.ErrIsShare) || errors.Is(err, shard.ErrNotShare) {
		return cli.WithHint(fmt.Errorf("stdin: %w", err), "bk-push reads what bk-split writes to stdout: bk-split -k 2 -n 3 < archive | bk-push hosts.txt")
	}
	return fmt.Errorf("reading the share stream: %w", err)
}

type pusher struct {
	opt   Options
	msg   *cli.Messages
	info  shard.SetInfo
	start time.Time
	id    string
	min   int
	// need is the space a host needs for its share and the manifest;
	// negative when the stream's size is unknown.
	need      int64
	shareSize int64
}

func (p *pusher) checkParams() error {
	k, n := p.info.K, p.info.N
	p.min = p.opt.MinShares
	if p.min == 0 {
		p.min = k + 1
	}
	if p.min < k || p.min > n {
		return cli.Usagef("--min-shares %d out of range: the stream has k=%d n=%d, so it must be from %d to %d", p.min, k, n, k, n)
	}
	if len(p.opt.Hosts) < n {
		return cli.WithHint(fmt.Errorf("the hosts file lists %d hosts, but the stream has n=%d shares", len(p.opt.Hosts), n),
			"add hosts, or split into fewer shares (bk-split -n)")
	}
	p.need, p.shareSize = -1, -1
	if p.opt.ExpectSize >= 0 {
		p.shareSize = ShareSize(p.info, p.opt.ExpectSize)
		p.need = p.shareSize + manifestAllowance(n)
	} else {
		p.msg.Warnf("backup size unknown: free space and quotas are checked only as data flows")
		p.msg.Hintf("give --expect-size, e.g. --expect-size $(du -sb DIR | cut -f1)")
	}
	return nil
}

// ShareSize is the size of each share of a stream of size bytes split
// with info's parameters.
func ShareSize(info shard.SetInfo, size int64) int64 {
	stripes := (size + info.StripeSize() - 1) / info.StripeSize()
	return shard.Header{SetInfo: info}.Offset(stripes) + shard.TrailerSize
}

// manifestAllowance is room kept for the manifest when checking space.
func manifestAllowance(n int) int64 { return 1024 + 512*int64(n) }

// target is a host that takes a share, connected and checked.
type target struct {
	host hostsfile.Host
	r    remote.Remote
	// budget is what the quota still allows; negative without a quota.
	budget atomic.Int64
}

func closeAll(targets []*target) {
	for _, t := range targets {
		if t != nil {
			t.r.Close()
		}
	}
}

// pickHosts connects to the first N hosts at once and checks them, and
// puts a spare in the place of each that fails, in hosts-file order. Slot i
// takes share i; a slot left nil has no host.
func (p *pusher) pickHosts(ctx context.Context) ([]*target, error) {
	hosts := p.opt.Hosts
	slots := make([]*target, p.info.N)
	tries := make([]int, p.info.N) // the host each slot tries now
	pending := make([]int, p.info.N)
	for i := range pending {
		pending[i], tries[i] = i, i
	}
	next := p.info.N // the next spare
	for len(pending) > 0 {
		errs := make([]error, len(pending))
		var wg sync.WaitGroup
		for j, slot := range pending {
			wg.Go(func() { slots[slot], errs[j] = p.prepare(ctx, hosts[tries[slot]]) })
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return slots, err
		}
		var again []int
		for j, slot := range pending {
			if errs[j] == nil {
				continue
			}
			p.msg.Warnf("%s", errs[j])
			if next < len(hosts) {
				p.msg.Notef("share %d goes to spare host %s instead", slot, hosts[next])
				tries[slot] = next
				next++
				again = append(again, slot)
			}
		}
		pending = again
	}
	ready := 0
	for _, t := range slots {
		if t != nil {
			ready++
		}
	}
	if ready < p.min {
		return slots, cli.WithHint(fmt.Errorf("only %d of %d hosts can take a share, fewer than --min-shares %d; nothing was sent", ready, p.info.N, p.min),
			"fix or replace the hosts above, add spare hosts to the hosts file, or lower --min-shares")
	}
	return slots, nil
}

// prepare connects to h, removes stale temp files and checks that the share
// fits in its free space and quota.
func (p *pusher) prepare(ctx context.Context, h hostsfile.Host) (*target, error) {
	r, err := p.opt.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	t := &target{host: h, r: r}
	if err := p.check(ctx, t); err != nil {
		r.Close()
		return nil, err
	}
	return t, nil
}

func (p *pusher) check(ctx context.Context, t *target) error {
	if n, err := remote.CleanTemp(ctx, t.r, "", p.opt.StaleAge); err != nil {
		p.msg.Warnf("host %s: removing stale temp files: %v", t.host, err)
	} else if n > 0 {
		p.msg.Notef("host %s: removed %d temp files left by an earlier run", t.host, n)
	}
	t.budget.Store(-1)
	if q := t.host.Quota; q > 0 {
		used, err := remote.Used(ctx, t.r, "")
		if err != nil {
			return err
		}
		left := max(0, q-used)
		t.budget.Store(left)
		switch {
		case p.need >= 0 && left < p.need:
			return remote.HostError(t.host.String(), fmt.Errorf("quota %s has %s left (%s used), the share needs %s",
				cli.Bytes(q), cli.Bytes(left), cli.Bytes(used), cli.Bytes(p.need)))
		case left == 0:
			return remote.HostError(t.host.String(), fmt.Errorf("quota %s used up", cli.Bytes(q)))
		}
	}
	if p.need < 0 {
		return nil
	}
	free, err := t.r.Free(ctx)
	if errors.Is(err, remote.ErrUnknownSpace) {
		p.msg.Notef("host %s: free space unknown, not checked", t.host)
		return nil
	}
	if err != nil {
		return err
	}
	if free < p.need {
		return remote.HostError(t.host.String(), fmt.Errorf("%s free, the share needs %s", cli.Bytes(free), cli.Bytes(p.need)))
	}
	return nil
}

// upload is one share on its way to its host. Frames reach it through a
// bounded queue, so a slow host slows the stream rather than filling memory.
type upload struct {
	index  int
	t      *target
	path   string
	up     remote.Upload
	size   int64
	frames chan []byte
	free   chan []byte // empty buffers, so frames are copied without garbage
	failed atomic.Bool
	err    error // set by the worker before failed
}

const queueLen = 8

// fail gives the share up: it says why at once and removes the temp file.
func (p *pusher) fail(u *upload, err error) {
	u.err = err
	u.failed.Store(true)
	if u.up != nil {
		u.up.Abort()
	}
	p.msg.Warnf("share %d: %v", u.index, err)
}

// work writes queued frames until the queue closes.
func (p *pusher) work(u *upload) {
	for buf := range u.frames {
		if !u.failed.Load() {
			if err := u.t.write(u.up, buf); err != nil {
				p.fail(u, err)
			} else {
				u.size += int64(len(buf))
			}
		}
		u.free <- buf
	}
}

// write sends p to w within the host's quota: running over it fails the
// upload, as a full disk would.
func (t *target) write(w io.Writer, p []byte) error {
	if t.budget.Load() >= 0 && t.budget.Add(-int64(len(p))) < 0 {
		return remote.HostError(t.host.String(), fmt.Errorf("quota %s reached", cli.Bytes(t.host.Quota)))
	}
	_, err := w.Write(p)
	return err
}

func (p *pusher) run(ctx context.Context, sr *shard.StreamReader, targets []*target) (*manifest.Manifest, error) {
	ups := make([]*upload, p.info.N)
	var wg sync.WaitGroup
	for i, t := range targets {
		if t == nil {
			continue
		}
		u := &upload{index: i, t: t, path: manifest.SharePath(p.id, i),
			frames: make(chan []byte, queueLen), free: make(chan []byte, queueLen+1)}
		ups[i] = u
		for range queueLen + 1 {
			u.free <- nil
		}
		if up, err := t.r.Create(ctx, u.path); err != nil {
			p.fail(u, err)
		} else {
			u.up = up
		}
		wg.Go(func() { p.work(u) })
	}
	defer func() {
		for _, u := range ups {
			if u != nil && u.up != nil {
				u.up.Abort()
			}
		}
	}()
	total := int64(-1)
	if p.shareSize >= 0 {
		total = p.shareSize * int64(p.info.N)
	}
	bar := p.opt.Env.NewProgress(total, "pushing")
	err := p.feed(ctx, sr, ups, bar)
	for _, u := range ups {
		if u != nil {
			close(u.frames)
		}
	}
	wg.Wait()
	bar.Done()
	if errors.Is(err, errTooFew) {
		return nil, p.tooFew(ups, " (stopped early)")
	}
	if err != nil {
		return nil, err
	}
	trailer, err := sr.Trailer()
	if err != nil {
		return nil, streamError(err)
	}
	p.commit(ctx, ups)
	return p.finish(ctx, ups, trailer)
}

// errTooFew stops the stream once too many shares have failed.
var errTooFew = errors.New("too few shares left")

// feed copies each frame of the stream to its share's queue. It stops
// early when too many shares have failed for the backup to be kept.
func (p *pusher) feed(ctx context.Context, sr *shard.StreamReader, ups []*upload, bar *cli.Progress) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.countOK(ups) < p.min {
			return errTooFew
		}
		index, payload, err := sr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return streamError(err)
		}
		bar.Add(len(payload))
		u := ups[index]
		if u == nil || u.failed.Load() {
			continue
		}
		buf := append((<-u.free)[:0], payload...)
		u.frames <- buf
	}
}

func (p *pusher) countOK(ups []*upload) int {
	ok := 0
	for _, u := range ups {
		if u != nil && !u.failed.Load() {
			ok++
		}
	}
	return ok
}

// commit moves every healthy share into place, all at once. With --verify
// the hosts read each share back first (remote.DialOptions.Verify), so one
// that differs from what was sent fails here and never takes its name.
func (p *pusher) commit(ctx context.Context, ups []*upload) {
	var wg sync.WaitGroup
	for _, u := range ups {
		if u != nil && !u.failed.Load() {
			wg.Go(func() {
				if err := u.up.Commit(ctx); err != nil {
					p.fail(u, err)
				}
			})
		}
	}
	wg.Wait()
}

// finish keeps the backup if enough shares were stored: it writes the
// manifest to their hosts. Else it removes them.
func (p *pusher) finish(ctx context.Context, ups []*upload, trailer shard.Trailer) (*manifest.Manifest, error) {
	if p.countOK(ups) < p.min {
		return nil, p.tooFew(ups, "")
	}
	m := &manifest.Manifest{
		Format: manifest.Format, Version: manifest.Version,
		ID: p.id, Name: p.opt.Name, Time: p.start, Label: p.info.Label, Parent: p.opt.Parent,
		K: p.info.K, N: p.info.N, BlockSize: p.info.BlockSize, SetID: p.info.ID(),
		StreamSize: trailer.Length, StreamHash: hex.EncodeToString(trailer.StreamHash[:]),
	}
	for _, u := range ups {
		if u != nil && !u.failed.Load() {
			sum := u.up.Sum() // hashed as it was written
			m.Shares = append(m.Shares, manifest.Share{Index: u.index, Host: manifest.HostURL(u.t.host),
				Path: u.path, Size: u.size, SHA256: hex.EncodeToString(sum[:])})
		}
	}
	data, err := m.Marshal()
	if err != nil {
		p.removeStored(ups)
		return nil, err
	}
	written := p.writeManifests(ctx, ups, data)
	if written == 0 {
		p.removeStored(ups)
		return nil, errors.New("no host took the manifest; removed the shares of this run")
	}
	if failed := p.failures(ups); len(failed) > 0 || written < len(m.Shares) {
		return m, cli.Degradedf("backup %s: stored %d of %d shares (manifest on %d hosts)%s",
			m.ID, len(m.Shares), p.info.N, written, failedList(failed))
	}
	return m, nil
}

// writeManifests stores the manifest on every host that stored a share and
// returns on how many it succeeded.
func (p *pusher) writeManifests(ctx context.Context, ups []*upload, data []byte) int {
	var n atomic.Int32
	var wg sync.WaitGroup
	for _, u := range ups {
		if u == nil || u.failed.Load() {
			continue
		}
		wg.Go(func() {
			if err := u.t.put(ctx, manifest.ManifestPath(p.id), data); err != nil {
				p.msg.Warnf("%s", err)
				return
			}
			n.Add(1)
		})
	}
	wg.Wait()
	return int(n.Load())
}

func (t *target) put(ctx context.Context, name string, data []byte) error {
	up, err := t.r.Create(ctx, name)
	if err != nil {
		return err
	}
	defer up.Abort()
	if err := t.write(up, data); err != nil {
		return err
	}
	return up.Commit(ctx)
}

// tooFew removes what this run stored and says why.
func (p *pusher) tooFew(ups []*upload, how string) error {
	p.removeStored(ups)
	return cli.WithHint(fmt.Errorf("only %d of %d shares could be stored, fewer than --min-shares %d%s; nothing of this backup was kept%s",
		p.countOK(ups), p.info.N, p.min, how, failedList(p.failures(ups))),
		"fix or replace the failed hosts, add spare hosts, or lower --min-shares")
}

// removeStored deletes the shares this run committed, so nothing of a
// failed backup looks complete. It runs even when ctx was cancelled.
func (p *pusher) removeStored(ups []*upload) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, u := range ups {
		if u == nil || u.failed.Load() {
			continue
		}
		if err := u.t.r.Remove(ctx, u.path); err != nil && !errors.Is(err, remote.ErrNotExist) {
			p.msg.Warnf("could not remove share %d of the failed backup: %v", u.index, err)
		}
	}
}

// failure is a share that was not stored, and why.
type failure struct {
	index int
	host  string
	err   error
}

func (p *pusher) failures(ups []*upload) []failure {
	var out []failure
	for i, u := range ups {
		switch {
		case u == nil:
			out = append(out, failure{i, "", errors.New("no host")})
		case u.failed.Load():
			out = append(out, failure{i, u.t.host.String(), u.err})
		}
	}
	return out
}

func failedList(failed []failure) string {
	if len(failed) == 0 {
		return ""
	}
	var parts []string
	for _, f := range failed {
		if f.host == "" {
			parts = append(parts, fmt.Sprintf("share %d (no host left)", f.index))
		} else {
			parts = append(parts, fmt.Sprintf("share %d on %s", f.index, f.host))
		}
	}
	slices.Sort(parts)
	return "; failed: " + strings.Join(parts, ", ")
}
