// Package catalog is the backups on a set of hosts: it dials each host when
// first needed, lists what every host holds (manifests, shares, temp
// leftovers), judges which manifests count under the reading rules of
// docs/FORMAT.md (section 5), picks a backup by name or ID, opens its
// shares as shard sources, and writes and removes files. bk-push and
// bk-join use it; tools that check, repair or prune backups build on the
// same listing.
package catalog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/metacache"
	"github.com/bk-backup/bk/internal/remote"
	_ "github.com/bk-backup/bk/internal/remote/kinds" // every kind of host a hosts file may name
)

// Options configure a catalog.
type Options struct {
	// Dial is passed to every host's kind when it is dialled.
	Dial remote.DialOptions
	// Connect replaces dialling a host's location: the tools add hints to
	// its errors, tests make hosts fail. nil dials.
	Connect func(ctx context.Context, h hostsfile.Host) (remote.Remote, error)
	// Warn receives what the reader should know: a skipped backup, a
	// manifest that does not count. nil drops them.
	Warn func(format string, args ...any)
	// Cache keeps the manifests and tombstones read from hosts whose
	// reads cost a request (not a local folder) for later runs; nil reads
	// every one from its host. With Cache.Fresh every one is read from
	// its host and replaces what the cache held.
	Cache *metacache.Dir
	// Now is the tools' clock, which tombstones' ages are measured by, as
	// bk-prune measures them; nil is the system clock.
	Now func() time.Time
}

// Catalog is a set of hosts: those of the hosts files, in their order,
// and those that only a manifest names, added when first asked for.
type Catalog struct {
	opts  Options
	hosts []*Host

	mu     sync.Mutex
	byURL  map[string]*Host
	extras []*Host
	// passedOver are the later revisions that do not count that were
	// warned of, by their bytes' sum.
	passedOver map[[32]byte]bool

	parsed *parsed
}

// New makes a catalog of hosts. Lines naming the same place (the same
// URL) are one host; the first line counts.
func New(hosts []hostsfile.Host, opts Options) *Catalog {
	c := &Catalog{opts: opts, byURL: map[string]*Host{}, passedOver: map[[32]byte]bool{}, parsed: &parsed{byteSum: map[[32]byte]*parse{}}}
	if c.opts.Warn == nil {
		c.opts.Warn = func(string, ...any) {}
	}
	if c.opts.Now == nil {
		c.opts.Now = time.Now
	}
	for _, h := range hosts {
		if _, dup := c.byURL[h.URL()]; dup {
			continue
		}
		host := c.newHost(h)
		c.byURL[h.URL()] = host
		c.hosts = append(c.hosts, host)
	}
	return c
}

// Hosts are the hosts of the hosts files, in order, each place once.
func (c *Catalog) Hosts() []*Host { return c.hosts }

// hostAt returns the host at url: one of the catalog's, or one that only a
// manifest names, made on first use.
func (c *Catalog) hostAt(url string) (*Host, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.byURL[url]; ok {
		return h, nil
	}
	loc, err := remote.ParseLocation(url, "")
	if err != nil {
		return nil, err
	}
	h := c.newHost(hostsfile.Host{Location: loc})
	c.byURL[url] = h
	c.extras = append(c.extras, h)
	return h, nil
}

func (c *Catalog) newHost(h hostsfile.Host) *Host {
	connect := c.opts.Connect
	if connect == nil {
		connect = func(ctx context.Context, h hostsfile.Host) (remote.Remote, error) {
			return h.Dial(ctx, h.DialOptions(c.opts.Dial))
		}
	}
	return &Host{Host: h, connect: connect, parsed: c.parsed, cacheDir: c.opts.Cache}
}

// Close closes every connection made, and writes back the cache of each
// host listed.
func (c *Catalog) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	// All at once: the close of an SFTP host waits for its ssh to end, a
	// round trip to the host and more (three loopback hosts in turn took
	// 6.3-7.2 ms, at once 4.3-6.2 ms; three distant ones a round trip, not
	// three).
	var wg sync.WaitGroup
	for _, h := range append(c.hosts, c.extras...) {
		wg.Go(func() {
			h.close()
			h.saveCache()
		})
	}
	wg.Wait()
}

// Host is one host, dialled once on first use: a host that is down costs
// one timeout, not one per file read.
type Host struct {
	hostsfile.Host
	connect func(ctx context.Context, h hostsfile.Host) (remote.Remote, error)
	parsed  *parsed // the catalog's
	// cacheDir is the catalog's cache, nil for none; cache is the host's
	// part of it, read when the host is listed.
	cacheDir *metacache.Dir
	cache    *metacache.Host

	mu    sync.Mutex // held while dialling: every caller wants the same connection
	tried bool
	r     remote.Remote
	err   error

	listMu sync.Mutex // held while listing: every caller wants the same listing
	listed *folder
	readMu sync.Mutex
	reads  map[string]*read // by file name
}

// Remote is the connection to the host, dialled on the first call.
func (h *Host) Remote(ctx context.Context) (remote.Remote, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.tried {
		h.tried = true
		h.r, h.err = h.connect(ctx, h.Host)
	}
	return h.r, h.err
}

// Failed reports whether the host was dialled and could not be reached.
func (h *Host) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tried && h.err != nil
}

func (h *Host) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r != nil {
		h.r.Close()
		h.r = nil
		h.err = errClosed
	}
}

// cacheKey names the host in the cache: its location with its kind (the
// URL), and append-only=admin, which reads what the client stored rather
// than what the host shows now (an S3 bucket's first versions).
func (h *Host) cacheKey() string {
	if h.AppendOnly == hostsfile.AppendOnlyAdmin {
		return h.URL() + " append-only=admin"
	}
	return h.URL()
}

// saveCache writes back the host's cache, dropping what the host no
// longer lists. A cache that cannot be written costs the next run reads,
// nothing else: no error.
func (h *Host) saveCache() {
	h.listMu.Lock()
	defer h.listMu.Unlock()
	if h.cache == nil || h.listed == nil || h.listed.err != nil {
		return
	}
	listed := make([]remote.Info, len(h.listed.kept))
	for i, fi := range h.listed.kept {
		listed[i] = fi.Info
	}
	_ = h.cache.Save(listed)
}

// Put stores data as name on the host, whole or not at all, never
// replacing a file.
func (h *Host) Put(ctx context.Context, name string, data []byte) error {
	r, err := h.Remote(ctx)
	if err != nil {
		return err
	}
	up, err := r.Create(ctx, name)
	if err != nil {
		return err
	}
	defer up.Abort()
	// Lent whole where the upload keeps what it is lent until Commit: no
	// copy into a buffer of a MiB for a manifest of a few hundred bytes.
	if k, ok := up.(remote.Keeper); ok {
		err = k.WriteKept(data, func([]byte) {})
	} else {
		_, err = up.Write(data)
	}
	if err != nil {
		return err
	}
	return up.Commit(ctx)
}

// Remove deletes name on the host; a file already gone is no error. On an
// append-only host (append-only=yes) it asks nothing and the error wraps
// remote.ErrAppendOnly.
func (h *Host) Remove(ctx context.Context, name string) error {
	if h.AppendOnly == hostsfile.AppendOnlyClient {
		return remote.HostError(h.String(), fmt.Errorf("%s: not removed: %w (append-only=yes)", name, remote.ErrAppendOnly))
	}
	r, err := h.Remote(ctx)
	if err != nil {
		return err
	}
	if err := r.Remove(ctx, name); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}
