// Package push sends the shares of a share stream to their hosts: it picks
// the hosts (swapping in spares for those that fail before taking data),
// checks their free space and quotas, uploads all shares at once, and writes
// the backup's manifest to every host that stored a share, or, when too few
// did, removes what this run stored.
package push

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/units"
)

// Options configure one push.
type Options struct {
	// Catalog holds the hosts, in hosts-file order: the first N take the
	// shares, the rest are spares.
	Catalog *catalog.Catalog
	Name    string // backup name, for the ID
	// Parent is the ID of the backup this one builds on, or "".
	Parent string
	// MinShares is the fewest shares that make a backup worth keeping; 0
	// means K: anything restorable is kept (and reported degraded). A
	// share counts only when its host also holds the manifest.
	MinShares int
	// ExpectSize is the size of the stream bk-split read, used to check
	// space before data flows; negative when unknown: then the size of
	// the newest full backup of Name on the hosts stands in for it.
	ExpectSize int64
	// StaleAge is how old a temp file must be to count as a leftover of a
	// killed run and be removed.
	StaleAge time.Duration
	// Warn receives what went wrong but was worked around; Note what
	// else is worth a line. Either may be nil.
	Warn, Note func(format string, args ...any)
	// BeforeManifest, when set, is called once the shares are stored with
	// the manifest about to be written; it may fill in the fields of an
	// incremental backup. An error from it removes what was stored, and
	// Push returns it.
	BeforeManifest func(m *manifest.Manifest) error
	// Progress, when not nil, is called once data starts to flow with the
	// bytes expected in all (-1 when unknown), and returns the function
	// that counts the bytes sent, from any goroutine.
	Progress func(total int64) func(n int)
	// Now is the time the backup's ID carries, and the now that temp
	// files' ages on the hosts are measured from; zero means the system
	// clock.
	Now time.Time
}

// Push reads a share stream from r and stores its shares. It returns the
// manifest of the stored backup; with fewer than N but at least MinShares
// shares stored, also a *DegradedError naming the failed hosts. With
// fewer, it removes the shares it stored and returns a *TooFewError.
//
// When r is also an io.ReaderAt whose offset 0 is the stream's first byte
// (a stream saved to a file), each upload reads its own share at its
// host's pace (readShares), at most 16 shares of blocks of 64 KiB or more.
func Push(ctx context.Context, r io.Reader, opt Options) (*manifest.Manifest, error) {
	sr, err := shard.NewStreamReader(r)
	if err != nil {
		return nil, &StreamError{err}
	}
	for _, f := range []*func(string, ...any){&opt.Warn, &opt.Note} {
		if *f == nil {
			*f = func(string, ...any) {}
		}
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	p := &pusher{opt: opt, info: sr.Info(), start: opt.Now.UTC().Truncate(time.Second)}
	if err := p.checkParams(); err != nil {
		return nil, err
	}
	p.learnSize(ctx)
	p.id = manifest.NewID(opt.Name, p.start, p.info.SetID)
	p.probes = remote.ProbePrefix + hex.EncodeToString(randomBytes(4)) + "-"
	at, _ := r.(io.ReaderAt)
	if !p.readsShares() {
		at = nil
	}
	if sf, ok := r.(StreamFile); ok && at != nil {
		p.file, p.fileBase = sf.File()
	}
	return p.run(ctx, sr, at)
}

// StreamFile is a stream in a regular file, read at offsets: File returns
// the file and where the stream starts in it, so that an upload that can
// (remote.RangeWriter) sends its share's bytes from the file itself.
type StreamFile interface {
	File() (f *os.File, base int64)
}

type pusher struct {
	opt   Options
	info  shard.SetInfo
	start time.Time
	id    string
	// probes starts the names of this run's test files.
	probes string
	min    int
	// need is the space a host needs for its share and the manifest;
	// negative when the stream's size is unknown.
	need      int64
	shareSize int64
	// file holds the stream from fileBase on, for the uploads that send
	// from it (framesSent); else nil.
	file     *os.File
	fileBase int64
}

func (p *pusher) checkParams() error {
	k, n := p.info.K, p.info.N
	p.min = p.opt.MinShares
	if p.min != 0 && (p.min < k || p.min > n) {
		return &MinSharesError{Min: p.min, K: k, N: n}
	}
	hosts := len(p.opt.Catalog.Hosts())
	if hosts < n {
		return &HostCountError{Hosts: hosts, N: n}
	}
	need := catalog.Vouchers(k, hosts)
	if n < need {
		return &VouchError{N: n, Need: need, Hosts: hosts}
	}
	// Fewer shares than need would be a backup bk-join skips, so the
	// default is need (k, except 2 for k=1), and a lower M is refused.
	if p.min == 0 {
		p.min = need
	}
	if p.min < need {
		return &MinVouchError{Min: p.min, Need: need, Hosts: hosts}
	}
	p.need, p.shareSize = -1, -1
	return nil
}

// learnSize sets the space each host needs: from ExpectSize, else from
// the newest full backup of the same name on the first N hosts (a backup
// is much the size of the one before; the quota is still kept as data
// flows). Only when neither is known does it say so.
func (p *pusher) learnSize(ctx context.Context) {
	size := p.opt.ExpectSize
	if size < 0 {
		hosts := p.opt.Catalog.Hosts()[:p.info.N]
		if b := p.opt.Catalog.FindNewest(ctx, hosts, p.opt.Name, (*manifest.Manifest).Full); b != nil {
			size = b.StreamSize
			p.opt.Note("backup size taken from %s: %s", b.ID, units.Bytes(size))
		}
	}
	if size < 0 {
		p.opt.Warn("%s", ErrSizeUnknown)
		return
	}
	p.shareSize = ShareSize(p.info, size)
	p.need = p.shareSize + manifestAllowance(p.info.N)
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
	host *catalog.Host
	r    remote.Remote
	// budget is what the quota still allows; negative without a quota.
	budget atomic.Int64
	probe  string // the test file the preflight left there, "" when none
	// free is the space left on its file system (negative when not known),
	// fs names that file system ("" when the host can't say).
	free int64
	fs   string
}

// pick connects to the first N hosts at once and checks them, and puts a
// spare in the place of each that fails, in hosts-file order. Slot i takes
// share i: its upload is handed its host as soon as the host passes its
// checks and no later check could put a spare in its place (startsEarly),
// the others once all hosts are picked; a slot left without a host, or
// every slot not yet handed one when picking fails, is handed nil.
//
// So data flows to the first host ready while the others still log in:
// three ssh logins at once end 60–140 ms apart, about a tenth of a 256 MiB
// push to them. Each of the first N hosts' checks calls begun.Done as it
// starts.
func (p *pusher) pick(ctx context.Context, ups []*upload, begun *sync.WaitGroup) (err error) {
	hosts := p.opt.Catalog.Hosts()
	slots := make([]*target, p.info.N)
	handed := make([]bool, p.info.N)
	hand := func(slot int, t *target) {
		handed[slot] = true
		ups[slot].picked <- t
	}
	defer func() {
		for slot, t := range slots {
			if !handed[slot] {
				if err != nil {
					t = nil
				}
				hand(slot, t)
			}
		}
		p.removeProbes(slots)
	}()
	tries := make([]int, p.info.N) // the host each slot tries now
	pending := make([]int, p.info.N)
	for i := range pending {
		pending[i], tries[i] = i, i
	}
	next := p.info.N // the next spare
	for len(pending) > 0 {
		errs := make([]error, p.info.N)
		var wg sync.WaitGroup
		for _, slot := range pending {
			wg.Go(func() {
				if begun != nil {
					begun.Done()
				}
				slots[slot], errs[slot] = p.prepare(ctx, hosts[tries[slot]])
				if errs[slot] == nil && p.startsEarly(slots[slot]) {
					hand(slot, slots[slot])
				}
			})
		}
		wg.Wait()
		begun = nil
		if err := ctx.Err(); err != nil {
			return err
		}
		for slot, err := range p.sharedSpace(slots, handed) {
			p.removeProbes(slots[slot : slot+1])
			slots[slot], errs[slot] = nil, err
		}
		var again []int
		for slot, err := range errs {
			if err == nil {
				continue
			}
			p.opt.Warn("%s", err)
			if next < len(hosts) {
				p.opt.Note("share %d goes to spare host %s instead", slot, hosts[next])
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
		return &TooFewError{Stored: ready, N: p.info.N, Min: p.min}
	}
	return p.sameFolders(ctx, slots)
}

// startsEarly reports whether t may take data before the other hosts are
// picked: when no check after its own can put a spare in its place. That
// is the check of hosts on one file system against its space, unless the
// space is unknown or would hold all N shares. Not on an append-only
// host, where a backup given up would leave what it sent.
func (p *pusher) startsEarly(t *target) bool {
	if t.host.AppendOnly == hostsfile.AppendOnlyClient {
		return false
	}
	return p.need < 0 || t.fs == "" || t.free < 0 || t.free/int64(p.info.N) >= p.need
}

// sharedSpace checks hosts that are folders on one file system against
// its free space together: each alone may have room for its share while
// all of them do not. The slots that don't fit, the later ones, fail;
// those already taking data (started) count first and keep their place.
func (p *pusher) sharedSpace(slots []*target, started []bool) map[int]error {
	if p.need < 0 {
		return nil
	}
	groups := map[string][]int{}
	for i, t := range slots {
		if t != nil && t.fs != "" && t.free >= 0 {
			groups[t.fs] = append(groups[t.fs], i)
		}
	}
	errs := map[int]error{}
	for _, group := range groups {
		if len(group) < 2 {
			continue
		}
		free := slots[group[0]].free
		var names []string
		for _, i := range group {
			free = min(free, slots[i].free)
			names = append(names, slots[i].host.String())
		}
		slices.SortStableFunc(group, func(a, b int) int {
			return cmp.Compare(boolInt(!started[a]), boolInt(!started[b]))
		})
		fit := free / p.need
		for k, i := range group {
			if int64(k) >= fit && !started[i] {
				errs[i] = remote.HostError(slots[i].host.String(), fmt.Errorf("shares one file system with %s: %s free, %d shares need %s",
					strings.Join(slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == slots[i].host.String() }), ", "),
					units.Bytes(free), len(group), units.Bytes(p.need*int64(len(group)))))
			}
		}
	}
	return errs
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// prepare connects to h, removes stale temp files, checks that the share
// fits in its free space and quota, and stores a test file there: a host
// that is read-only, full or otherwise refuses files fails now, while a
// spare can still take its place, not once data flows.
//
// The test file goes while the stale temps are removed and the checks
// run: each is a few round trips to the host, which add up at every push
// to a distant one.
func (p *pusher) prepare(ctx context.Context, h *catalog.Host) (*target, error) {
	r, err := h.Remote(ctx)
	if err != nil {
		return nil, err
	}
	t := &target{host: h, r: r, free: -1}
	name := p.probes + hex.EncodeToString(randomBytes(8))
	var probeErr error
	var wg sync.WaitGroup
	wg.Go(func() { p.cleanTemps(ctx, t) })
	wg.Go(func() { probeErr = h.Put(ctx, name, []byte("bk-push test file\n")) })
	checkErr := p.check(ctx, t)
	wg.Wait()
	if probeErr == nil {
		t.probe = name
	}
	switch {
	case checkErr != nil:
		p.removeProbes([]*target{t})
		return nil, checkErr
	case probeErr != nil:
		return nil, fmt.Errorf("%w (the test file written before data flows)", probeErr)
	}
	if s, ok := r.(remote.Syncer); ok && !h.NoFsync {
		if can, err := s.CanFsync(ctx); err == nil && !can {
			p.opt.Note("host %s: its SFTP server cannot fsync (no fsync@openssh.com): files there are not "+
				"made durable before they are named; fsync=no on its line says so and ends this note", h)
		}
	}
	return t, nil
}

// isProbe reports whether name is one of this run's test files.
func (p *pusher) isProbe(name string) bool { return strings.HasPrefix(name, p.probes) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// sameFolders refuses hosts that are one folder under two names (a
// symlink, a bind mount, a host by two names): each sees the other's test
// file. Two shares there are lost together, which defeats k-of-n.
//
// The hosts look at once, each for the test files of those before it.
func (p *pusher) sameFolders(ctx context.Context, slots []*target) error {
	same := make([]int, len(slots)) // for each host, the first before it that is one folder with it, plus 1
	var wg sync.WaitGroup
	for j, b := range slots {
		if b == nil || b.probe == "" {
			continue
		}
		wg.Go(func() {
			for i, a := range slots[:j] {
				if a == nil || a.probe == "" {
					continue
				}
				if _, err := b.r.Stat(ctx, a.probe); err == nil {
					same[j] = i + 1
					return
				}
			}
		})
	}
	wg.Wait()
	for j, i := range same {
		if i == 0 {
			continue
		}
		a, b := slots[i-1], slots[j]
		nameA, nameB := a.host.String(), b.host.String()
		if nameA == nameB { // one host, two paths
			nameA, nameB = a.host.URL(), b.host.URL()
		}
		return &SameFolderError{A: nameA, B: nameB}
	}
	return ctx.Err()
}

// removeProbes removes the test files, even when ctx was cancelled; on
// an append-only host they stay, leftovers that bk-prune with the admin
// hosts file removes.
func (p *pusher) removeProbes(slots []*target) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range slots {
		if t != nil && t.probe != "" && t.host.AppendOnly == hostsfile.AppendOnlyClient {
			t.probe = ""
		}
		if t != nil && t.probe != "" {
			wg.Go(func() {
				if err := t.host.Remove(ctx, t.probe); err != nil {
					p.opt.Warn("removing the test file: %v", err)
				}
				t.probe = ""
			})
		}
	}
	wg.Wait()
}

// cleanTemps removes the temp files that earlier runs left on t, not this
// run's test files and shares, which hosts may be writing there meanwhile
// (one folder reached as two hosts is refused only once they are).
func (p *pusher) cleanTemps(ctx context.Context, t *target) {
	if t.host.AppendOnly == hostsfile.AppendOnlyClient {
		return // its leftovers are for bk-prune with the admin hosts file
	}
	ours := func(name string) bool { return p.isProbe(name) || strings.HasPrefix(name, p.id) }
	n, err := remote.CleanTemp(ctx, t.r, "", p.opt.Now.Add(-p.opt.StaleAge), ours)
	switch {
	case err != nil && ctx.Err() != nil:
		// The push is given up, and says why.
	case err != nil:
		p.opt.Warn("host %s: removing stale temp files: %v", t.host, err)
	case n > 0:
		p.opt.Note("host %s: removed %d temp files left by an earlier run", t.host, n)
	}
}

// check checks that the share fits in t's quota and free space.
func (p *pusher) check(ctx context.Context, t *target) error {
	t.budget.Store(-1)
	if q := t.host.Quota; q.Bytes > 0 {
		// This run's test file, written meanwhile, is not counted.
		used, err := remote.Used(ctx, t.r, "", p.isProbe)
		if err != nil {
			return err
		}
		left := max(0, q.Bytes-used)
		t.budget.Store(left)
		switch {
		case p.need >= 0 && left < p.need:
			return remote.HostError(t.host.String(), fmt.Errorf("quota %s has %s left (%s used), the share needs %s",
				q, q.Format(left), q.Format(used), q.Format(p.need)))
		case left == 0:
			return remote.HostError(t.host.String(), fmt.Errorf("quota %s used up", q))
		}
	}
	if p.need < 0 {
		return nil
	}
	// The file system's name is asked for at once: a second round trip
	// that needs no wait for the first.
	var fs string
	var wg sync.WaitGroup
	if fsr, ok := t.r.(remote.FileSystemer); ok {
		wg.Go(func() { fs, _ = fsr.FileSystem(ctx) })
	}
	defer wg.Wait()
	free, err := t.r.Free(ctx)
	if errors.Is(err, remote.ErrUnknownSpace) {
		p.opt.Note("host %s: free space unknown, not checked", t.host)
		return nil
	}
	if err != nil {
		return err
	}
	if free < p.need {
		return remote.HostError(t.host.String(), fmt.Errorf("%s free, the share needs %s", units.Bytes(free), units.Bytes(p.need)))
	}
	wg.Wait()
	t.free, t.fs = free, fs
	return nil
}

// upload is one share on its way to its host. The stream's frames are read
// straight into batches, several whole frames of the share each, which
// reach the upload through a bounded queue, so a slow host slows the
// stream rather than filling memory. An upload that can keep what it is
// given (remote.Keeper, SFTP) sends the batches themselves, without a copy.
type upload struct {
	index int
	// picked hands the upload its host, or nil for none (see pick); t is
	// that host, for the upload's worker and, once it is done, the rest.
	picked chan *target
	t      *target
	// host is t for the stream's reader, which charges the host's quota
	// for each frame: what it read before the host was picked is owed.
	host    atomic.Pointer[target]
	owed    atomic.Int64
	path    string
	up      remote.Upload
	keeper  remote.Keeper // up, when it keeps the batches it is lent; else nil
	size    int64
	batch   []byte      // being filled by the stream's reader
	batches chan []byte // full ones, for the worker
	// room holds a token for each batch the queue may take: a batch
	// queued or being written holds one. A host not yet picked may be
	// sent earlyLen batches, a picked one queueLen.
	room chan struct{}
	// meta hashes the share's frames, a unit each, as the manifest pins
	// the share: the uploads need not hash what they send.
	meta   *shard.MetaHash
	failed atomic.Bool
	mu     sync.Mutex
	err    error // the first failure, set before failed
	// committed: the share is in place; manifest: so is the manifest.
	committed, manifest bool
}

// queueBytes bounds the frames queued for all hosts together: a batch of
// about a MiB and one more a host smooth out a slow host's pauses at
// small N, but at 256 hosts of 1 MiB blocks even one frame a host is 256
// MiB.
const queueBytes = 32 << 20

// batchBytes is the size a batch reaches at small N: an SFTP upload sends
// it in about four requests, a folder in one write.
const batchBytes = 1 << 20

// earlyBatches is how many batches may wait for a host not yet picked: a
// host that takes 100 MiB/s gets 8 MiB ahead of the others in the 80 ms
// by which their logins end later.
const earlyBatches = 8

// batchFrames is how many frames of a share make a batch: about
// batchBytes, fewer when two batches a host would pass queueBytes, never
// below 1.
func batchFrames(info shard.SetInfo) int {
	return int(max(1, min(batchBytes/int64(info.RecordSize()), queueBytes/(2*info.StripeMemory()))))
}

// queueLen is how many batches a host may have queued or being written,
// besides the one being filled: 2, fewer when that many would pass
// queueBytes, never below 1.
func queueLen(info shard.SetInfo) int {
	return int(max(1, min(2, queueBytes/(info.StripeMemory()*int64(batchFrames(info))))))
}

// earlyLen is queueLen for a host not yet picked: earlyBatches, fewer
// when that many for every host would pass queueBytes, never fewer than
// queueLen.
func earlyLen(info shard.SetInfo) int {
	return int(max(int64(queueLen(info)), min(earlyBatches, queueBytes/(info.StripeMemory()*int64(batchFrames(info))))))
}

// pool holds the emptied batches of all uploads, for the next ones: there
// are only as many as the queues, the batches being written and those the
// uploads keep hold at once.
type pool struct {
	mu   sync.Mutex
	bufs [][]byte
}

// get returns an empty buffer of at least size bytes.
func (p *pool) get(size int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.bufs) - 1; i >= 0; i-- {
		if b := p.bufs[i]; cap(b) >= size {
			p.bufs = slices.Delete(p.bufs, i, i+1)
			return b
		}
	}
	return make([]byte, 0, size)
}

// put takes b back: it may be handed out again at once.
func (p *pool) put(b []byte) {
	p.mu.Lock()
	p.bufs = append(p.bufs, b[:0])
	p.mu.Unlock()
}

// fail gives the share up: it says why at once and removes the temp file.
// Only the goroutine writing the upload may call it.
func (p *pusher) fail(u *upload, err error) {
	p.stop(u, err)
	if u.up != nil {
		u.up.Abort()
	}
}

// stop gives the share up, from any goroutine: it says why at once, the
// first time; the worker removes the temp file.
func (p *pusher) stop(u *upload, err error) {
	u.mu.Lock()
	first := u.err == nil
	if first {
		u.err = err
	}
	u.mu.Unlock()
	u.failed.Store(true)
	if first {
		p.opt.Warn("share %d: %v", u.index, err)
	}
}

// send waits for the upload's host, starts the upload there and writes
// the queued batches until the queue closes. Of the room tokens the
// batches free, it keeps debt: the queue then shrinks from earlyLen to
// queueLen. An upload handed no host fails, its batches dropped.
func (p *pusher) send(ctx context.Context, u *upload, free *pool, debt int) {
	if t := <-u.picked; !p.begin(ctx, t, u) && t == nil {
		debt = 0
	}
	release := free.put
	for buf := range u.batches {
		p.write(u, buf, release)
		if debt > 0 {
			debt--
		} else {
			u.room <- struct{}{}
		}
	}
	if u.failed.Load() && u.up != nil { // stopped by the stream's reader
		u.up.Abort()
	}
}

// begin hands the upload its host t, charges what was read for it before,
// and starts the upload there. It reports whether the upload goes on: not
// with no host (t nil), not when the host refuses.
func (p *pusher) begin(ctx context.Context, t *target, u *upload) bool {
	if t == nil {
		u.failed.Store(true)
		return false
	}
	u.t = t
	u.host.Store(t)
	if err := t.charge(int(u.owed.Swap(0))); err != nil {
		p.fail(u, err)
		return false
	}
	up, err := t.r.Create(ctx, u.path)
	switch {
	case err != nil && ctx.Err() != nil:
		u.failed.Store(true) // the push is given up, and says why
		return false
	case err != nil:
		p.fail(u, err)
		return false
	}
	u.up = up
	u.keeper, _ = up.(remote.Keeper)
	return true
}

// write writes a batch. It goes back to the pool once written, or, lent
// to an upload that keeps it, once the host has acknowledged it.
func (p *pusher) write(u *upload, buf []byte, release func([]byte)) {
	if u.failed.Load() {
		release(buf)
		return
	}
	var err error
	if u.keeper != nil {
		err = u.keeper.WriteKept(buf, release)
	} else {
		_, err = u.up.Write(buf)
		release(buf)
	}
	if err != nil {
		p.fail(u, err)
	} else {
		u.size += int64(len(buf))
	}
}

// queue hands a full batch to the upload's worker, once there is room.
func (u *upload) queue(buf []byte) {
	<-u.room
	u.batches <- buf
}

// charge takes n bytes from the quota of the upload's host; what is read
// before the host is picked is charged once it is.
func (u *upload) charge(n int) error {
	t := u.host.Load()
	if t == nil {
		u.owed.Add(int64(n))
		if t = u.host.Load(); t == nil {
			return nil
		}
		n = int(u.owed.Swap(0))
	}
	return t.charge(n)
}

// charge takes n bytes from the host's quota: running over it fails the
// upload, as a full disk would.
func (t *target) charge(n int) error {
	if t.budget.Load() >= 0 && t.budget.Add(-int64(n)) < 0 {
		return remote.HostError(t.host.String(), fmt.Errorf("quota %s reached", t.host.Quota))
	}
	return nil
}

// run picks the hosts (pick) while it reads the stream into the uploads'
// queues, and stores the shares. With at, the stream read at any offset,
// each upload reads its own share instead (readShares).
func (p *pusher) run(ctx context.Context, sr *shard.StreamReader, at io.ReaderAt) (*manifest.Manifest, error) {
	ups := make([]*upload, p.info.N)
	queue, early := queueLen(p.info), earlyLen(p.info)
	free := &pool{}
	var wg sync.WaitGroup
	for i := range ups {
		u := &upload{index: i, picked: make(chan *target, 1), path: manifest.SharePath(p.id, i),
			meta: shard.NewMetaHash(p.info.BlockSize)}
		ups[i] = u
		if at != nil {
			continue
		}
		u.batches, u.room = make(chan []byte, early), make(chan struct{}, early)
		for range early {
			u.room <- struct{}{}
		}
		wg.Go(func() { p.send(ctx, u, free, early-queue) })
	}
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	pickCtx, stopPick := context.WithCancel(ctx)
	defer stopPick()
	picked := make(chan error, 1)
	var begun sync.WaitGroup
	begun.Add(p.info.N)
	go func() {
		err := p.pick(pickCtx, ups, &begun)
		if err != nil {
			stopFeed()
		}
		picked <- err
	}()
	// The stream is read ahead only once every host's check has begun:
	// on one processor the reader would otherwise keep it through
	// megabytes of reads a host before the first ssh starts.
	begun.Wait()
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
	progress := func(int) {}
	if p.opt.Progress != nil {
		progress = p.opt.Progress(total)
	}
	var err error
	trailer := sr.Trailer
	if at != nil {
		trailer, err = p.readShares(feedCtx, at, ups, free, progress, func() { stopPick(); stopFeed() })
	} else {
		err = p.feed(feedCtx, sr, ups, free, progress)
		if err != nil {
			stopPick()
		}
		for _, u := range ups {
			if err == nil && len(u.batch) > 0 {
				u.queue(u.batch)
			}
			u.batch = nil
			close(u.batches)
		}
		wg.Wait()
	}
	// A failed pick stopped the stream; a stream that failed first
	// stopped the pick.
	if perr := <-picked; perr != nil && (ctx.Err() != nil || !errors.Is(perr, context.Canceled)) {
		return nil, perr
	}
	for i, u := range ups {
		if u.t == nil {
			ups[i] = nil // no host
		}
	}
	if errors.Is(err, errTooFew) {
		return nil, p.tooFew(ups, true)
	}
	if err != nil {
		return nil, err
	}
	tr, err := trailer()
	if err != nil {
		return nil, &StreamError{err}
	}
	p.commit(ctx, ups)
	return p.finish(ctx, ups, tr)
}

// maxShareReaders is the most shares, and minShareBlock the smallest
// blocks, for which each upload reads its own share from a stream in a
// file (readsShares): each reader reads the header of every frame, 6
// bytes, to skip the other shares' frames; past 16 shares of 64 KiB
// blocks those reads would cost about as much as the reading of the
// share itself. minShareBlock is a variable for the tests, which run both
// ways.
const maxShareReaders = 16

var minShareBlock = 64 << 10

// readsShares reports whether a stream that can be read at any offset
// is read by each upload for itself.
func (p *pusher) readsShares() bool {
	return p.info.N <= maxShareReaders && p.info.BlockSize >= minShareBlock
}

// readShares has each upload read its own share of the stream in at and
// write it, at its host's pace: a slow host no longer holds the others
// back, as a queue of the one stream does, nor is anything read ahead
// for a host still logging in. The first error that ends the push (a
// damaged stream, too few shares left) calls stop, which ends the pick
// and ctx, and so the other readers. It returns the trailer that
// the shares' trailers agree on, as the stream's one reader would.
func (p *pusher) readShares(ctx context.Context, at io.ReaderAt, ups []*upload, free *pool, progress func(int), stop func()) (func() (shard.Trailer, error), error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	var ended *shard.StreamReader // of a share read to its end
	for _, u := range ups {
		wg.Go(func() {
			sr, err := p.readShare(ctx, at, u, ups, free, progress)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case sr != nil && ended == nil:
				ended = sr
			case err != nil && first == nil && ctx.Err() == nil:
				first = err
				stop()
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if first == nil && ended == nil {
		first = errTooFew // every share failed
	}
	if first != nil {
		return nil, first
	}
	return ended.Trailer, nil
}

// readShare waits for the upload's host, then reads the upload's share
// from the stream in at and writes it: read into batches, or sent from the
// stream's file by an upload that can (framesSent). It returns the
// share's reader once it has read the stream to its end; nil and no error
// when the upload failed.
func (p *pusher) readShare(ctx context.Context, at io.ReaderAt, u *upload, ups []*upload, free *pool, progress func(int)) (*shard.StreamReader, error) {
	if !p.begin(ctx, <-u.picked, u) {
		return nil, nil
	}
	sr, err := shard.NewStreamReaderAt(at)
	if err != nil {
		return nil, &StreamError{err}
	}
	var f shareFrames
	if rw, ok := u.up.(remote.RangeWriter); ok && p.file != nil {
		f = p.framesSent(sr, at, u, rw)
	} else {
		f = p.framesRead(sr, u, free)
		defer func() {
			if u.batch != nil {
				free.put(u.batch)
				u.batch = nil
			}
		}()
	}
	for !u.failed.Load() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		index, length, err := f.next()
		if err == io.EOF {
			f.end()
			return sr, nil
		}
		if err != nil {
			return nil, &StreamError{err}
		}
		if index != u.index {
			continue
		}
		if p.countOK(ups) < p.min {
			return nil, errTooFew
		}
		progress(length)
		if err := u.t.charge(length); err != nil {
			p.fail(u, err)
			break
		}
		if err := f.take(length); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// shareFrames is how readShare takes the frames of its upload's share.
type shareFrames struct {
	next func() (index, length int, err error) // reads the next frame
	// take writes the frame next read, one of the share's; an error
	// (the stream's) ends the push.
	take func(length int) error
	end  func() // after the last frame
}

// framesRead reads the share's frames into batches, and writes them.
func (p *pusher) framesRead(sr *shard.StreamReader, u *upload, free *pool) shareFrames {
	record := p.info.RecordSize()
	size := batchFrames(p.info) * record
	write := func(b []byte) { p.write(u, b, free.put) }
	var payload []byte
	return shareFrames{
		next: func() (int, int, error) {
			index, p, err := sr.NextInto(func(index, length int) []byte {
				if index != u.index {
					return nil
				}
				return u.into(length, size, free, write)
			})
			payload = p
			return index, len(p), err
		},
		take: func(int) error {
			u.add(payload, record, write)
			return nil
		},
		end: func() {
			if len(u.batch) > 0 {
				write(u.batch)
				u.batch = nil
			}
		},
	}
}

// framesSent leaves the share's frames in the stream's file for an upload
// that sends the bytes of a file from the file itself: of each only what
// the manifest's hash takes is read, a record's checksums but not its
// block.
func (p *pusher) framesSent(sr *shard.StreamReader, at io.ReaderAt, u *upload, rw remote.RangeWriter) shareFrames {
	var off int64
	var payload, hashed []byte
	return shareFrames{
		next: func() (index, length int, err error) {
			index, length, off, payload, err = sr.NextAt()
			return index, length, err
		},
		take: func(length int) error {
			from := u.meta.Hashed(length)
			if payload == nil {
				hashed = slices.Grow(hashed[:0], length-from)[:length-from]
				if _, err := at.ReadAt(hashed, off+int64(from)); err != nil {
					if errors.Is(err, io.EOF) {
						err = fmt.Errorf("share stream %w", shard.ErrTruncated)
					}
					return &StreamError{err}
				}
				payload = hashed
			} else {
				payload = payload[from:]
			}
			u.meta.WriteHashed(payload)
			err := rw.WriteRange(p.file, p.fileBase+off, length)
			switch {
			case errors.Is(err, remote.ErrSource): // the stream's file changed
				return &StreamError{err}
			case err != nil:
				p.fail(u, err)
			default:
				u.size += int64(length)
			}
			return nil
		},
		end: func() {},
	}
}

// into returns the room in the upload's batch for a frame of n bytes,
// handing a batch with less to flush first and starting one of size
// bytes (n, if more).
func (u *upload) into(n, size int, free *pool, flush func([]byte)) []byte {
	if cap(u.batch)-len(u.batch) < n {
		if len(u.batch) > 0 {
			flush(u.batch)
		}
		u.batch = free.get(max(size, n))
	}
	return u.batch[len(u.batch):cap(u.batch)]
}

// add takes in payload, read into the batch's room, and hands the batch
// to flush once it has no room for another record.
func (u *upload) add(payload []byte, record int, flush func([]byte)) {
	u.batch = u.batch[:len(u.batch)+len(payload)]
	u.meta.Write(payload)
	if cap(u.batch)-len(u.batch) < record {
		flush(u.batch)
		u.batch = nil
	}
}

// errTooFew stops the stream once too many shares have failed.
var errTooFew = errors.New("too few shares left")

// feed reads each frame of the stream into its share's batch, and queues
// the batch once it has no room for another record. It stops early when
// too many shares have failed for the backup to be kept.
func (p *pusher) feed(ctx context.Context, sr *shard.StreamReader, ups []*upload, free *pool, progress func(int)) error {
	record := p.info.RecordSize()
	size := batchFrames(p.info) * record
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.countOK(ups) < p.min {
			return errTooFew
		}
		// Payloads are read straight into the batches, after the frames
		// there already.
		var to *upload // the upload the frame goes to, if any
		_, payload, err := sr.NextInto(func(index, length int) []byte {
			u := ups[index]
			if u == nil || u.failed.Load() {
				return nil
			}
			to = u
			return u.into(length, size, free, u.queue)
		})
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &StreamError{err}
		}
		progress(len(payload))
		if u := to; u != nil {
			// The quota is kept as frames are read, not as batches go:
			// a share over it stops at once, the stream too when too
			// few are left.
			if err := u.charge(len(payload)); err != nil {
				p.stop(u, err)
				continue
			}
			u.add(payload, record, u.queue)
		}
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
				} else {
					u.committed = true
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
		return nil, p.tooFew(ups, false)
	}
	m := &manifest.Manifest{
		Format: manifest.Format, Version: manifest.Version,
		ID: p.id, Name: p.opt.Name, Time: p.start, Label: p.info.Label, Parent: p.opt.Parent,
		K: p.info.K, N: p.info.N, BlockSize: p.info.BlockSize, SetID: p.info.ID(),
		StreamSize: trailer.Length, StreamHash: hex.EncodeToString(trailer.StreamHash[:]),
	}
	for _, u := range ups {
		if u != nil && !u.failed.Load() {
			s := manifest.Share{Index: u.index, Host: u.t.host.URL(), Path: u.path, Size: u.size,
				ObjectVersion: remote.UploadVersion(u.up)}
			sum := u.meta.Sum()
			m.SetSum(&s, sum[:])
			m.Shares = append(m.Shares, s)
		}
	}
	if p.opt.BeforeManifest != nil {
		if err := p.opt.BeforeManifest(m); err != nil {
			p.removeStored(ups)
			return nil, err
		}
	}
	data, err := m.Marshal()
	if err != nil {
		p.removeStored(ups)
		return nil, err
	}
	// A share whose host lacks the manifest fails: the catalog does not
	// find the backup through that host.
	p.writeManifests(ctx, ups, data)
	if p.countOK(ups) < p.min {
		return nil, p.tooFew(ups, false)
	}
	if failed := p.failures(ups); len(failed) > 0 {
		stored := p.countOK(ups)
		return m, &DegradedError{ID: m.ID, Stored: stored, N: p.info.N, Manifests: stored, Failed: failed}
	}
	return m, nil
}

// writeManifests stores the manifest on every host that stored a share;
// the share of a host that refuses it fails.
func (p *pusher) writeManifests(ctx context.Context, ups []*upload, data []byte) {
	var wg sync.WaitGroup
	for _, u := range ups {
		if u == nil || u.failed.Load() {
			continue
		}
		wg.Go(func() {
			if err := u.t.put(ctx, manifest.ManifestPath(p.id), data); err != nil {
				p.fail(u, fmt.Errorf("manifest not stored, so the share does not count: %w", err))
				return
			}
			u.manifest = true
		})
	}
	wg.Wait()
}

// put stores a small file within the host's quota.
func (t *target) put(ctx context.Context, name string, data []byte) error {
	if err := t.charge(len(data)); err != nil {
		return err
	}
	return t.host.Put(ctx, name, data)
}

// tooFew removes what this run stored and says why.
func (p *pusher) tooFew(ups []*upload, early bool) error {
	p.removeStored(ups)
	return &TooFewError{Stored: p.countOK(ups), N: p.info.N, Min: p.min, Picked: true, Early: early, Failed: p.failures(ups)}
}

// removeStored deletes the shares and manifests this run stored, so
// nothing of a failed backup looks complete. It runs even when ctx was
// cancelled. On an append-only host they stay: shares without a manifest
// are listed as orphans, and a manifest on fewer than max(2, k) hosts does
// not count (on more it does: a whole backup below --min-shares;
// docs/FORMAT.md, append-only hosts).
func (p *pusher) removeStored(ups []*upload) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kept := 0
	for _, u := range ups {
		if u != nil && (u.manifest || u.committed) && u.t.host.AppendOnly == hostsfile.AppendOnlyClient {
			u.manifest, u.committed = false, false
			kept++
		}
	}
	if kept > 0 {
		p.opt.Note("%d append-only hosts keep what this run stored there, as orphans for bk-prune with the admin hosts file", kept)
	}
	for _, u := range ups {
		if u != nil && u.manifest {
			if err := u.t.host.Remove(ctx, manifest.ManifestPath(p.id)); err != nil {
				p.opt.Warn("could not remove the manifest of the failed backup: %v", err)
			}
		}
	}
	for _, u := range ups {
		if u == nil || !u.committed {
			continue
		}
		if err := u.t.host.Remove(ctx, u.path); err != nil {
			p.opt.Warn("could not remove share %d of the failed backup: %v", u.index, err)
		}
	}
}

func (p *pusher) failures(ups []*upload) []Failure {
	var out []Failure
	for i, u := range ups {
		switch {
		case u == nil:
			out = append(out, Failure{i, "", errors.New("no host")})
		case u.failed.Load():
			out = append(out, Failure{i, u.t.host.String(), u.err})
		}
	}
	return out
}
