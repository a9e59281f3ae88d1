package metacache

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/remote"
)

var (
	t0 = time.Date(2026, 11, 30, 3, 0, 0, 5, time.UTC)
	a  = remote.Info{Name: "a.manifest", Size: 3, ModTime: t0}
	b  = remote.Info{Name: "b.tombstone", Size: 4, ModTime: t0.Add(time.Second)}
)

// saved is a cache of host key in a fresh folder holding a and b.
func saved(t *testing.T, key string) *Dir {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	h := d.Host(key)
	h.Put(a, []byte("aaa"))
	h.Put(b, []byte("bbbb"))
	if err := h.Save([]remote.Info{a, b}); err != nil {
		t.Fatal(err)
	}
	return d
}

// only is the one cache file of d.
func only(t *testing.T, d *Dir) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(d.path, "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("cache files %v, %v; want one", files, err)
	}
	return files[0]
}

func TestRoundTrip(t *testing.T) {
	d := saved(t, "sftp://nas/bk")
	h := d.Host("sftp://nas/bk")
	if got, ok := h.Get(a); !ok || string(got) != "aaa" {
		t.Errorf("Get(a) = %q, %v", got, ok)
	}
	if got, ok := h.Get(b); !ok || string(got) != "bbbb" {
		t.Errorf("Get(b) = %q, %v", got, ok)
	}
	// Only the same size and time stand for the same file.
	for _, fi := range []remote.Info{
		{Name: a.Name, Size: 4, ModTime: a.ModTime},
		{Name: a.Name, Size: a.Size, ModTime: a.ModTime.Add(time.Nanosecond)},
		{Name: "c.manifest", Size: 3, ModTime: t0},
	} {
		if got, ok := h.Get(fi); ok {
			t.Errorf("Get(%v) = %q: want nothing", fi, got)
		}
	}
	if got, ok := d.Host("s3://nas/bk").Get(a); ok {
		t.Errorf("another host's cache gives %q", got)
	}
	d.Fresh = true
	if got, ok := d.Host("sftp://nas/bk").Get(a); ok {
		t.Errorf("a fresh cache gives %q", got)
	}
}

// A cache file written by the same run's reads and listing is not written
// again; one whose files are gone from the listing loses them.
func TestSave(t *testing.T) {
	d := saved(t, "k")
	file := only(t, d)
	old := time.Unix(1, 0)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	h := d.Host("k")
	h.Put(a, []byte("aaa"))
	if err := h.Save([]remote.Info{a, b}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || !st.ModTime().Equal(old) {
		t.Errorf("an unchanged cache was written again (%v)", err)
	}
	moved := b
	moved.ModTime = moved.ModTime.Add(time.Second)
	if err := h.Save([]remote.Info{moved}); err != nil {
		t.Fatal(err)
	}
	h = d.Host("k")
	if _, ok := h.Get(a); ok {
		t.Error("a file no longer listed stays cached")
	}
	if _, ok := h.Get(b); ok {
		t.Error("a file listed at another time stays cached")
	}
	h.Put(a, []byte("aaa"))
	h.Drop(a.Name)
	if _, ok := h.Get(a); ok {
		t.Error("Drop kept the file")
	}
}

// A damaged, foreign or other-version cache file is an empty cache, which
// Save then rewrites.
func TestUnusableFile(t *testing.T) {
	for name, spoil := range map[string]func([]byte) []byte{
		"flipped byte": func(f []byte) []byte { f[len(header)+5] ^= 1; return f },
		"cut":          func(f []byte) []byte { return f[:len(f)-40] },
		"empty":        func([]byte) []byte { return nil },
		"version 2": func(f []byte) []byte {
			body := bytes.Replace(f[:len(f)-32], []byte("cache 1\n"), []byte("cache 2\n"), 1)
			return encodeRaw(body)
		},
		"another host": func(f []byte) []byte {
			return encodeRaw(bytes.Replace(f[:len(f)-32], []byte("\nk\n"), []byte("\nj\n"), 1))
		},
		"entry cut short": func(f []byte) []byte { return encodeRaw(f[:len(f)-32-2]) },
	} {
		t.Run(name, func(t *testing.T) {
			d := saved(t, "k")
			file := only(t, d)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, spoil(data), 0o600); err != nil {
				t.Fatal(err)
			}
			h := d.Host("k")
			if got, ok := h.Get(a); ok {
				t.Fatalf("Get(a) = %q from a spoilt file", got)
			}
			if err := h.Save(nil); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, encode("k", nil)) {
				t.Errorf("the spoilt file was not rewritten: %q, %v", got, err)
			}
		})
	}
}

// encodeRaw is body with its checksum.
func encodeRaw(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

func TestOpenFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "cache")); err == nil {
		t.Error("Open under a file succeeded")
	}
}

func TestLocation(t *testing.T) {
	t.Setenv(EnvDir, "/x/y")
	if dir, explicit, err := Location(); dir != "/x/y" || !explicit || err != nil {
		t.Errorf("Location() = %q, %v, %v", dir, explicit, err)
	}
	t.Setenv(EnvDir, Off)
	if dir, _, err := Location(); dir != "" || err != nil {
		t.Errorf("Location() with %s=off = %q, %v", EnvDir, dir, err)
	}
	t.Setenv(EnvDir, "")
	t.Setenv("XDG_CACHE_HOME", "/c")
	t.Setenv("HOME", "/h")
	if dir, explicit, err := Location(); (dir != "/c/bk" && dir != "/h/Library/Caches/bk") || explicit || err != nil {
		t.Errorf("Location() = %q, %v, %v", dir, explicit, err)
	}
}

// Open removes the cache and temp files left unwritten for Unused, and
// nothing else.
func TestOpenRemovesUnused(t *testing.T) {
	d := saved(t, "k")
	fresh := only(t, d)
	var stale []string
	for _, name := range []string{"0123456789abcdef0123456789abcdef", ".tmp-123", "notes.txt"} {
		f := filepath.Join(d.path, name)
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-Unused - time.Hour)
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, f)
	}
	if _, err := Open(d.path); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{stale[0], stale[1], stale[2], fresh} {
		_, err := os.Stat(f)
		if gone := err != nil; gone != slices.Contains(stale[:2], f) {
			t.Errorf("%s: gone %v", filepath.Base(f), gone)
		}
	}
}
