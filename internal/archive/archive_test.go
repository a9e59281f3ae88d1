package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bk-backup/bk/internal/archive/archivetest"
)

// mkTree builds a tree with every kind of entry Pack stores. It reports
// whether the file system took the user.* extended attributes.
func mkTree(t testing.TB, dir string) (xattrs bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string, mode fs.FileMode) {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o600))
		must(os.Chmod(p, mode))
	}
	must(os.MkdirAll(dir, 0o755))
	write("regular", "hello\n", 0o644)
	write("empty", "", 0o600)
	write("exec", "#!/bin/sh\n", 0o755)
	write("setuid", "s", 0o4755|fs.ModeSetuid)
	must(os.Chmod(filepath.Join(dir, "setuid"), 0o755|fs.ModeSetuid|fs.ModeSetgid))
	write("a/b/c/deep", strings.Repeat("deep ", 100000), 0o640) // bigger than one read-ahead chunk
	write("odd name\twith\\tab", "x", 0o644)
	must(os.MkdirAll(filepath.Join(dir, "emptydir"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sticky"), 0o777|fs.ModeSticky))
	write("readonly/inside", "ro", 0o444)
	must(os.Chmod(filepath.Join(dir, "readonly"), 0o555))
	must(os.Symlink("regular", filepath.Join(dir, "link")))
	must(os.Symlink("../nowhere/at/all", filepath.Join(dir, "a/dangling")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link")))
	must(os.Link(filepath.Join(dir, "regular"), filepath.Join(dir, "a/hard1")))
	must(os.Link(filepath.Join(dir, "regular"), filepath.Join(dir, "a/b/hard2")))
	if os.Geteuid() == 0 {
		write("unreadable", "only root reads this", 0o000)
	}
	xattrs = unix.Lsetxattr(filepath.Join(dir, "regular"), "user.bk", []byte("v\x00binary"), 0) == nil
	if xattrs {
		must(unix.Lsetxattr(filepath.Join(dir, "a"), "user.dir", []byte("d"), 0))
	}
	// mtimes last, deepest first, with nanoseconds.
	base := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	var all []string
	must(filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		all = append(all, p)
		return err
	}))
	for i := len(all) - 1; i >= 0; i-- {
		mt := base.Add(time.Duration(i) * 1001 * time.Millisecond)
		must(unix.UtimesNanoAt(unix.AT_FDCWD, all[i], []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()),
			unix.NsecToTimespec(mt.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return xattrs
}

func pack(t testing.TB, paths []string, opts PackOptions) ([]byte, PackStats) {
	t.Helper()
	var buf bytes.Buffer
	if opts.Warn == nil {
		opts.Warn = func(f string, a ...any) { t.Errorf("unexpected warning: "+f, a...) }
	}
	st, err := Pack(context.Background(), &buf, paths, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

func sameTree(t *testing.T, a, b string, opt archivetest.Options) {
	t.Helper()
	for _, d := range archivetest.Compare(a, b, opt) {
		t.Error(d)
	}
}

func TestRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	xattrs := mkTree(t, src)
	if !xattrs {
		t.Log("file system refuses user.* xattrs: not checking them")
	}
	t.Chdir(src)
	var progress int64
	data, st := pack(t, []string{"."}, PackOptions{Progress: func(n int) { progress += int64(n) }})
	if progress != st.Bytes {
		t.Errorf("progress reported %d bytes of %d", progress, st.Bytes)
	}
	if st.Skipped != 0 || st.Links != 5 || st.Dirs < 7 {
		t.Errorf("stats %+v", st)
	}
	again, _ := pack(t, []string{"."}, PackOptions{})
	if !bytes.Equal(data, again) {
		t.Error("two packs of the same tree differ")
	}

	out := filepath.Join(t.TempDir(), "out")
	rst, err := Extract(context.Background(), bytes.NewReader(data), out,
		RestoreOptions{SamePermissions: true, Owners: true, Warn: func(f string, a ...any) { t.Errorf(f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	if rst.Files != st.Files || rst.Dirs != st.Dirs || rst.Links != st.Links || rst.Bytes != st.Bytes {
		t.Errorf("restore stats %+v, pack stats %+v", rst, st)
	}
	sameTree(t, src, out, archivetest.Options{NoXattrs: !xattrs})

	// GNU tar reads the same stream into the same tree.
	gnu := t.TempDir()
	cmd := exec.Command("tar", "-x", "-p", "--xattrs", "--xattrs-include=user.*", "-f", "-", "-C", gnu)
	cmd.Stdin = bytes.NewReader(data)
	if outb, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GNU tar: %v\n%s", err, outb)
	}
	sameTree(t, src, gnu, archivetest.Options{NoXattrs: !xattrs})
}

func TestRoundTripNamedPaths(t *testing.T) {
	base := t.TempDir()
	mkTree(t, filepath.Join(base, "one"))
	mkTree(t, filepath.Join(base, "two/nested"))
	t.Chdir(base)
	var warnings []string
	data, _ := pack(t, []string{"one", "./two/nested/", filepath.Join(base, "one/a/b")}, PackOptions{
		Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }})
	if len(warnings) != 1 || warnings[0] != "removing leading '/' from member names" {
		t.Errorf("warnings %q", warnings)
	}
	out := t.TempDir()
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{SamePermissions: true}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "one", filepath.Join(out, "one"), archivetest.Options{})
	sameTree(t, "two/nested", filepath.Join(out, "two/nested"), archivetest.Options{})
	sameTree(t, "one/a/b", filepath.Join(out, base[1:], "one/a/b"), archivetest.Options{})
}

func TestListMatchesGNUTar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mkTree(t, src)
	t.Chdir(src)
	data, _ := pack(t, []string{"."}, PackOptions{})
	var got bytes.Buffer
	if _, err := List(context.Background(), bytes.NewReader(data), &got, nil, nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "-tv", "-f", "-")
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	cmd.Stdin = bytes.NewReader(data)
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("List:\n%s\ntar -tv:\n%s", got.String(), want)
	}
}

func TestPatterns(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mkTree(t, src)
	t.Chdir(src)
	data, _ := pack(t, []string{"."}, PackOptions{})

	out := t.TempDir()
	var warnings []string
	st, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{
		Patterns: []string{"a/b", "*/hard1", "./empty"},
		Warn:     func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 0 || len(warnings) != 0 {
		t.Errorf("stats %+v, warnings %q", st, warnings)
	}
	var got []string
	filepath.WalkDir(out, func(p string, _ fs.DirEntry, _ error) error {
		rel, _ := filepath.Rel(out, p)
		got = append(got, rel)
		return nil
	})
	want := ". a a/b a/b/c a/b/c/deep a/b/hard2 a/hard1 empty"
	if strings.Join(got, " ") != want {
		t.Errorf("restored %q, want %q", got, want)
	}
	sameTree(t, filepath.Join(src, "a/b"), filepath.Join(out, "a/b"), archivetest.Options{})

	// "regular" is stored as a hard link to a/b/hard2, which is not
	// selected: it is left out with a warning.
	warnings = nil
	st, err = Extract(context.Background(), bytes.NewReader(data), t.TempDir(), RestoreOptions{
		Patterns: []string{"regular"},
		Warn:     func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) },
	})
	if err != nil || st.Skipped != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "regular") {
		t.Errorf("err %v, stats %+v, warnings %q", err, st, warnings)
	}

	_, err = Check(context.Background(), bytes.NewReader(data), []string{"a", "nothere*"}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nothere*"`) {
		t.Errorf("pattern matching nothing: %v", err)
	}
}

func TestOverwrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mkTree(t, src)
	t.Chdir(src)
	data, _ := pack(t, []string{"."}, PackOptions{})

	out := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Existing entries: a file, a symlink where a file goes, a symlink where a
	// directory of the archive goes, and a file the archive does not have.
	os.WriteFile(filepath.Join(out, "regular"), []byte("old"), 0o644)
	os.Symlink(secret, filepath.Join(out, "exec"))
	os.Symlink(outside, filepath.Join(out, "a"))
	os.WriteFile(filepath.Join(out, "mine"), []byte("mine"), 0o644)

	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{}); err == nil ||
		!strings.Contains(err.Error(), "not empty") {
		t.Fatalf("without Overwrite: %v", err)
	}
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{Overwrite: true, SamePermissions: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "untouched" {
		t.Errorf("wrote through a symlink: %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside has %v", ents)
	}
	os.Remove(filepath.Join(out, "mine")) // changes the mtime of out
	sameTree(t, src, out, archivetest.Options{NoRoot: true})
}

func TestStaleStaging(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mkTree(t, src)
	data, _ := pack(t, []string{src}, PackOptions{Warn: func(string, ...any) {}})
	out := t.TempDir()
	stale := filepath.Join(out, stagingPrefix+"12345")
	os.MkdirAll(filepath.Join(stale, "x"), 0o700)
	if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(stale, "x")); err != nil {
		t.Errorf("stale staging directory removed: %v", err)
	}
}

func TestCancel(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mkTree(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if _, err := Pack(ctx, &buf, []string{src}, PackOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack: %v", err)
	}
	data, _ := pack(t, []string{src}, PackOptions{Warn: func(string, ...any) {}})
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Extract(ctx, bytes.NewReader(data), out, RestoreOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Extract: %v", err)
	}
	if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("target left behind: %v", err)
	}
}

// memberName refuses what the plain rule refuses (a ".." element) and
// otherwise returns path.Clean's name, taking its short cut or not.
func TestMemberNameIsClean(t *testing.T) {
	t.Parallel()
	names := []string{"a", "a/", "a//", "a/b/c/", "./a", "a/./b", "a//b", ".", "./", "a/.", "a/..", "../a", "a/../b",
		"..", "a/b/..", "...", "a/..b", ".a/b.", "a/.../b", "a/b//", "//a"}
	elems := []string{"a", "bc", ".", "..", "", "...", ".x"}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 3000 {
		n := make([]string, 1+rng.IntN(4))
		for i := range n {
			n[i] = elems[rng.IntN(len(elems))]
		}
		names = append(names, strings.Join(n, "/"))
	}
	for _, name := range names {
		if name == "" || strings.HasPrefix(name, "/") {
			continue
		}
		got, err := memberName(name)
		dotdot := slices.Contains(strings.Split(name, "/"), "..")
		if dotdot != (err != nil) || (err == nil && got != path.Clean(name)) {
			t.Fatalf("memberName(%q) = %q, %v; want %q, refused %v", name, got, err, path.Clean(name), dotdot)
		}
	}
}
