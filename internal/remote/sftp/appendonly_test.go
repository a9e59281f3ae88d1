package sftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// appendOnlyServer starts the real sshd with an append-only account,
// refused extraDenied requests too, or skips saying why it cannot.
func appendOnlyServer(t *testing.T, extraDenied ...string) *sshtest.Server {
	t.Helper()
	if !sshtest.HaveSSH() {
		t.Skip("no ssh client")
	}
	dir := filepath.Join(t.TempDir(), "ao")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := sshtest.StartAppendOnly(dir, extraDenied...)
	if errors.Is(err, sshtest.ErrNoAppendOnly) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// client dials the append-only account's folder, through a proxy that can
// cut the connection.
func client(t *testing.T, s *sshtest.Server, opts remote.DialOptions) (*SFTP, *sshtest.Proxy) {
	t.Helper()
	opts.AppendOnly, opts.Retry = true, fastRetry
	return dialProxied(t, s, Location{Host: s.AppendOnly.Alias, Path: "/bk"}, opts)
}

// TestAppendOnlyCommit: a file is created read-only by the account and
// named by a hard link that its temp name keeps; a second upload of the
// name fails and leaves the first; the probe finds the host append-only
// for the account and not for the admin; the account cannot remove,
// truncate, overwrite, rename over or chmod what it stored; an upload cut
// goes on in a new temp file and stores the bytes sent.
func TestAppendOnlyCommit(t *testing.T) {
	t.Parallel()
	s := appendOnlyServer(t)
	ctx := context.Background()
	r, p := client(t, s, remote.DialOptions{})
	first := []byte("the first manifest\n")
	if err := remotetest.TryPut(r, "b.manifest.json", first); err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	final := filepath.Join(s.AppendOnly.Folder, "b.manifest.json")
	st, err := os.Stat(final)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o444 || st.Sys().(*syscall.Stat_t).Uid == 0 {
		t.Fatalf("stored as %v, uid %d: want 0444, the account's", st.Mode(), st.Sys().(*syscall.Stat_t).Uid)
	}
	temps, err := r.ListTemp(ctx, "")
	if err != nil || len(temps) != 1 {
		t.Fatalf("ListTemp = %v, %v; want the temp name kept", temps, err)
	}
	if tst, err := os.Stat(filepath.Join(s.AppendOnly.Folder, temps[0].Name)); err != nil || !os.SameFile(st, tst) {
		t.Fatalf("temp name %s is not the file's second name (%v)", temps[0].Name, err)
	}
	if used, err := remote.Used(ctx, r, "", nil); err != nil || used != int64(len(first)) {
		t.Fatalf("Used = %d, %v; want %d, the inode once", used, err, len(first))
	}

	err = remotetest.TryPut(r, "b.manifest.json", []byte("a forged manifest\n"))
	if !errors.Is(err, remote.ErrExist) {
		t.Fatalf("second upload: %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(final); !bytes.Equal(got, first) {
		t.Fatalf("the first manifest now holds %q", got)
	}

	if allowed, err := r.ProbeAppendOnly(ctx); err != nil || len(allowed) != 0 {
		t.Fatalf("client's probe: allowed %q, %v; want nothing", allowed, err)
	}
	admin := dial(t, s, Location{Host: s.Alias, Path: s.AppendOnly.Folder}, remote.DialOptions{AppendOnly: true})
	defer admin.Close()
	allowed, err := admin.ProbeAppendOnly(ctx)
	if err != nil || !slices.Equal(allowed, []string{"overwrite", "truncate", "chmod", "rename", "remove"}) {
		t.Fatalf("admin's probe: allowed %q, %v; want everything", allowed, err)
	}

	c, err := r.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "/bk/b.manifest.json"
	if err := remotetest.TryPut(r, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	attempts := map[string]func() error{
		"remove":   func() error { return c.c.Remove(name) },
		"truncate": func() error { return c.c.Truncate(name, 0) },
		"chmod":    func() error { return c.c.Chmod(name, 0o644) },
		"overwrite": func() error {
			f, err := c.c.OpenFile(name, os.O_WRONLY|os.O_TRUNC)
			if err == nil {
				f.Close()
			}
			return err
		},
		"rename away":       func() error { return c.c.Rename(name, "/bk/moved") },
		"rename over":       func() error { return c.c.Rename("/bk/other", name) },
		"posix-rename over": func() error { return c.c.PosixRename("/bk/other", name) },
		"remove the folder": func() error { return c.c.RemoveDirectory("/bk") },
	}
	for what, attempt := range attempts {
		if err := attempt(); err == nil {
			t.Errorf("%s: allowed", what)
		}
	}
	if got, _ := os.ReadFile(final); !bytes.Equal(got, first) {
		t.Fatalf("after the attempts the manifest holds %q", got)
	}

	// Cut after a chunk is acknowledged: the reconnect reads it back into
	// a new temp file, as the old one cannot be opened again.
	data := make([]byte, ChunkSize+100)
	rand.Read(data)
	commitAfterCut(t, r, p, "s.share0", data)
	got, err := os.ReadFile(filepath.Join(s.AppendOnly.Folder, "s.share0"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	temps, _ = r.ListTemp(ctx, "")
	if n := countSuffix(temps, "-s.share0"); n != 2 {
		t.Fatalf("%d temp files of s.share0, want 2 (one a connection)", n)
	}
}

func countSuffix(infos []remote.Info, suffix string) int {
	n := 0
	for _, fi := range infos {
		if strings.HasSuffix(fi.Name, suffix) {
			n++
		}
	}
	return n
}

// TestAppendOnlyDenied: a host that refuses hard links, or creating files
// at all, fails the upload with an error saying so at once, and no file
// takes the name.
func TestAppendOnlyDenied(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ deny, want string }{
		{"hardlink", "does not offer hard links"},
		{"open", "create x: .*permission denied"},
	} {
		t.Run(tc.deny, func(t *testing.T) {
			t.Parallel()
			s := appendOnlyServer(t, tc.deny)
			r, _ := client(t, s, remote.DialOptions{})
			err := returnsSoon(t, func() error { return remotetest.TryPut(r, "x", []byte("data")) })
			if err == nil || !regexpMatch(tc.want, err.Error()) || !strings.HasPrefix(err.Error(), "host "+r.String()+": ") {
				t.Fatalf("error %v, want one naming the host that matches %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(s.AppendOnly.Folder, "x")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("x exists after the failed upload (%v)", err)
			}
			_, err = r.ProbeAppendOnly(context.Background())
			if tc.deny == "open" && err == nil {
				t.Fatal("probe of a host that refuses to create files succeeded")
			}
		})
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

type bufCloser struct{ bytes.Buffer }

func (*bufCloser) Close() error { return nil }

// TestCreateModeSplits: an exclusive create gets the permissions whatever
// the writes it comes in; other requests, and an open that is not an
// exclusive create, pass as they are.
func TestCreateModeSplits(t *testing.T) {
	pkt := func(typ byte, body ...byte) []byte {
		out := []byte{0, 0, 0, byte(len(body) + 1), typ}
		return append(out, body...)
	}
	path := []byte{0, 0, 0, 1, 'x'}
	open := func(pflags byte) []byte {
		body := append([]byte{0, 0, 0, 7}, path...)
		return pkt(fxpOpen, append(body, 0, 0, 0, pflags, 0, 0, 0, 0)...)
	}
	write := pkt(6, 0, 0, 0, 8, 1, 2, 3)
	in := slices.Concat(write, open(fxfCreat|fxfExcl|2), open(fxfCreat|2), write)
	want := slices.Concat(write,
		pkt(fxpOpen, append(append([]byte{0, 0, 0, 7}, path...), 0, 0, 0, fxfCreat|fxfExcl|2, 0, 0, 0, attrPermission, 0, 0, 1, 0x24)...),
		open(fxfCreat|2), write)
	inSteps(t, in, want, func(out io.WriteCloser) io.Writer { return &createMode{w: out, perm: 0o444} })
}

// inSteps writes in to the writer that wrap makes, in pieces of every size
// from 1 byte to all of it, and checks that what passes is want.
func inSteps(t *testing.T, in, want []byte, wrap func(io.WriteCloser) io.Writer) {
	t.Helper()
	for step := 1; step <= len(in); step++ {
		var out bufCloser
		w := wrap(&out)
		for rest := in; len(rest) > 0; {
			n := min(step, len(rest))
			if m, err := w.Write(rest[:n]); m != n || err != nil {
				t.Fatalf("Write = %d, %v", m, err)
			}
			rest = rest[n:]
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("writes of %d: got %x, want %x", step, out.Bytes(), want)
		}
	}
}
