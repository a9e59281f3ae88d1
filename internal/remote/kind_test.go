package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
)

// A kind of host is one package-sized type and its registration: this one
// keeps files in memory, and passes the conformance suite. A real kind
// (S3, a command) is this plus its wire protocol.

func init() {
	remote.Register(remote.Kind{Scheme: "mem", Parse: parseMem, Example: "mem://name"})
}

// memStores are the hosts by name, so that two dials of one name see the
// same files, as two connections to one server do.
var memStores sync.Map

func parseMem(dest, _ string) (remote.Location, error) {
	name, ok := strings.CutPrefix(dest, "mem://")
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("bad memory host %q (want mem://name)", dest)
	}
	return memLocation(name), nil
}

type memLocation string

func (l memLocation) String() string { return "mem:" + string(l) }
func (l memLocation) URL() string    { return "mem://" + string(l) }

func (l memLocation) Dial(_ context.Context, opts remote.DialOptions) (remote.Remote, error) {
	s, _ := memStores.LoadOrStore(string(l), &memStore{files: map[string]*memFile{}, dirs: map[string]bool{"": true}})
	return &memHost{memStore: s.(*memStore), name: l.String(), verify: opts.Verify}, nil
}

type memStore struct {
	mu    sync.Mutex
	files map[string]*memFile // by slash path, temp files included
	dirs  map[string]bool
}

type memFile struct {
	data    []byte
	modTime time.Time
}

type memHost struct {
	*memStore
	name   string
	verify bool
}

func (h *memHost) String() string      { return h.name }
func (h *memHost) err(err error) error { return remote.HostError(h.name, err) }
func (h *memHost) notExist(name string) error {
	return h.err(fmt.Errorf("%s: %w", name, remote.ErrNotExist))
}
func (h *memHost) Close() error                        { return nil }
func (h *memHost) Free(context.Context) (int64, error) { return 1 << 40, nil }

func (h *memHost) Create(_ context.Context, name string) (remote.Upload, error) {
	if err := remote.CheckNewName(name); err != nil {
		return nil, h.err(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		h.dirs[d] = true
	}
	tmp := remote.TempName(name)
	h.files[tmp] = &memFile{modTime: time.Now()}
	return &memUpload{h: h, name: name, tmp: tmp, sum: remote.VerifyHash(remote.DialOptions{Verify: h.verify})}, nil
}

func (h *memHost) Open(_ context.Context, name string, offset int64) (io.ReadCloser, error) {
	if err := remote.CheckName(name); err != nil {
		return nil, h.err(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[name]
	if !ok || remote.IsTemp(path.Base(name)) {
		return nil, h.notExist(name)
	}
	return io.NopCloser(bytes.NewReader(f.data[min(offset, int64(len(f.data))):])), nil
}

func (h *memHost) Stat(_ context.Context, name string) (remote.Info, error) {
	if err := remote.CheckName(name); err != nil {
		return remote.Info{}, h.err(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.files[name]; ok {
		return remote.Info{Name: name, Size: int64(len(f.data)), ModTime: f.modTime}, nil
	}
	if h.dirs[name] {
		return remote.Info{Name: name, Dir: true}, nil
	}
	return remote.Info{}, h.notExist(name)
}

func (h *memHost) List(_ context.Context, dir string) ([]remote.Info, error) {
	return h.list(dir, false)
}

func (h *memHost) ListTemp(_ context.Context, dir string) ([]remote.Info, error) {
	return h.list(dir, true)
}

func (h *memHost) list(dir string, temp bool) ([]remote.Info, error) {
	if err := remote.CheckDir(dir); err != nil {
		return nil, h.err(err)
	}
	dir = strings.TrimPrefix(dir, ".")
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.dirs[dir] {
		return nil, h.notExist(dir)
	}
	var infos []remote.Info
	for name, f := range h.files {
		if parent(name) == dir {
			infos = append(infos, remote.Info{Name: path.Base(name), Size: int64(len(f.data)), ModTime: f.modTime})
		}
	}
	for d := range h.dirs {
		if d != "" && parent(d) == dir {
			infos = append(infos, remote.Info{Name: path.Base(d), Dir: true})
		}
	}
	return remote.Filter(infos, temp), nil
}

// parent is the folder of name, "" for the top.
func parent(name string) string {
	if d := path.Dir(name); d != "." {
		return d
	}
	return ""
}

func (h *memHost) Remove(_ context.Context, name string) error {
	if err := remote.CheckName(name); err != nil {
		return h.err(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.files[name]; ok {
		delete(h.files, name)
		return nil
	}
	if !h.dirs[name] {
		return h.notExist(name)
	}
	for other := range h.files {
		if strings.HasPrefix(other, name+"/") {
			return h.err(fmt.Errorf("%s: folder not empty", name))
		}
	}
	delete(h.dirs, name)
	return nil
}

// flip changes a byte of a stored file, as a failing disk would.
func (h *memHost) flip(name string, at int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[name]
	if !ok || at >= int64(len(f.data)) {
		return h.notExist(name)
	}
	f.data[at] ^= 1
	return nil
}

type memUpload struct {
	h         *memHost
	name, tmp string
	sum       hash.Hash
	done      bool // committed or aborted
}

func (u *memUpload) Write(p []byte) (int, error) {
	u.h.mu.Lock()
	defer u.h.mu.Unlock()
	f, ok := u.h.files[u.tmp]
	if u.done || !ok {
		return 0, u.h.err(fmt.Errorf("upload %s: %w", u.name, remote.ErrNotExist))
	}
	f.data = append(f.data, p...)
	f.modTime = time.Now()
	if u.sum != nil {
		u.sum.Write(p)
	}
	return len(p), nil
}

func (u *memUpload) Commit(context.Context) error {
	u.h.mu.Lock()
	defer u.h.mu.Unlock()
	f, ok := u.h.files[u.tmp]
	switch {
	case u.done || !ok:
		return u.h.err(fmt.Errorf("upload %s: %w", u.name, remote.ErrNotExist))
	case u.h.verify && remote.SumOf(sumOf(f.data)) != remote.SumOf(u.sum):
		delete(u.h.files, u.tmp)
		u.done = true
		return u.h.err(fmt.Errorf("%s: %w", u.name, remote.ErrChanged))
	}
	if _, taken := u.h.files[u.name]; taken {
		return u.h.err(fmt.Errorf("%s: %w", u.name, remote.ErrExist))
	}
	u.h.files[u.name] = f
	delete(u.h.files, u.tmp)
	u.done = true
	return nil
}

func (u *memUpload) Abort() error {
	u.h.mu.Lock()
	defer u.h.mu.Unlock()
	if !u.done {
		delete(u.h.files, u.tmp)
		u.done = true
	}
	return nil
}

func TestMemKindPassesSuite(t *testing.T) {
	remotetest.Run(t, func(t *testing.T, opts remote.DialOptions) (remote.Remote, remotetest.Flip) {
		loc, err := remote.ParseLocation("mem://"+strings.ReplaceAll(t.Name(), "/", "-"), "")
		if err != nil {
			t.Fatal(err)
		}
		if back, err := remote.ParseLocation(loc.URL(), ""); err != nil || back != loc {
			t.Fatalf("URL %s reads back as %v, %v", loc.URL(), back, err)
		}
		r, err := loc.Dial(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return r, r.(*memHost).flip
	})
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a second kind with scheme mem was registered")
		}
	}()
	remote.Register(remote.Kind{Scheme: "mem", Parse: parseMem})
}

func sumOf(data []byte) hash.Hash {
	h := remote.NewHash()
	h.Write(data)
	return h
}
