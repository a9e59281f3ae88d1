package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bk-backup/bk/internal/archive/archivetest"
)

// TestPackUnreadable packs a tree holding a file its reader may not open.
// Root reads any file whatever its mode, and CI runs as root: there the test
// runs Pack in a copy of the test binary started as user nobody, so the
// refusal comes from the kernel, not from a stand-in.
func TestPackUnreadable(t *testing.T) {
	if dir := os.Getenv("BK_ARCHIVE_UNREADABLE"); dir != "" {
		unreadableChild(dir)
		return
	}
	base, err := os.MkdirTemp("", "bk-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	src := filepath.Join(base, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	for _, n := range []string{"a", "m", "z", "sub/x"} {
		os.WriteFile(filepath.Join(src, n), []byte(n), 0o644)
	}
	os.Chmod(filepath.Join(src, "m"), 0o000)
	os.Mkdir(filepath.Join(src, "closed"), 0o000)

	var res unreadableResult
	if os.Geteuid() != 0 {
		res = packUnreadable(src)
	} else {
		bin := filepath.Join(base, "archive.test")
		exe, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, exe, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^TestPackUnreadable$")
		cmd.Env = append(os.Environ(), "BK_ARCHIVE_UNREADABLE="+src)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("cannot run as nobody: %v", err)
		}
		i := bytes.IndexByte(out, '{')
		if i < 0 {
			t.Fatalf("child said %s", out)
		}
		if err := json.NewDecoder(bytes.NewReader(out[i:])).Decode(&res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	if res.Stats.Skipped != 2 || res.Stats.Files != 3 {
		t.Errorf("stats %+v", res.Stats)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "src/closed") || !strings.Contains(res.Warnings[1], "src/m") {
		t.Errorf("warnings %q", res.Warnings)
	}
	var list bytes.Buffer
	if _, err := List(context.Background(), bytes.NewReader(res.Tar), &list, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"src/a", "src/z", "src/sub/x", "src/closed/"} {
		if !strings.Contains(list.String(), want) {
			t.Errorf("%s not archived:\n%s", want, list.String())
		}
	}
	if strings.Contains(list.String(), "src/m\n") {
		t.Errorf("unreadable file archived:\n%s", list.String())
	}
}

type unreadableResult struct {
	Stats    PackStats
	Warnings []string
	Tar      []byte
	Err      string
}

func packUnreadable(src string) unreadableResult {
	var res unreadableResult
	var buf bytes.Buffer
	os.Chdir(filepath.Dir(src))
	st, err := Pack(context.Background(), &buf, []string{"src"}, PackOptions{
		Warn: func(f string, a ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(f, a...)) },
	})
	res.Stats, res.Tar = st, buf.Bytes()
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

func unreadableChild(src string) {
	json.NewEncoder(os.Stdout).Encode(packUnreadable(src))
}

// TestPackChangedWhileRead shrinks and grows a big file while Pack streams
// it: the member keeps the size of its header, padded or cut, with a warning.
func TestPackChangedWhileRead(t *testing.T) {
	for _, grow := range []bool{false, true} {
		t.Run(fmt.Sprintf("grow=%v", grow), func(t *testing.T) {
			dir := t.TempDir()
			big := filepath.Join(dir, "big")
			content := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
			os.WriteFile(big, content, 0o644)
			os.WriteFile(filepath.Join(dir, "next"), []byte("next"), 0o644)
			var warnings []string
			changed := false
			var buf bytes.Buffer
			st, err := Pack(context.Background(), &buf, []string{dir}, PackOptions{
				Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) },
				Progress: func(int) {
					if changed {
						return
					}
					changed = true
					if grow {
						f, _ := os.OpenFile(big, os.O_APPEND|os.O_WRONLY, 0)
						f.Write(content)
						f.Close()
					} else {
						os.Truncate(big, 1<<20)
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.Skipped != 0 || st.Files != 2 {
				t.Errorf("stats %+v", st)
			}
			if len(warnings) != 2 || !strings.Contains(warnings[1], "big: file changed as we read it") {
				t.Errorf("warnings %q", warnings)
			}
			out := t.TempDir()
			if _, err := Extract(context.Background(), &buf, out, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(out, dir[1:], "big"))
			want := content
			if !grow {
				want = append(append([]byte{}, content[:1<<20]...), make([]byte, len(content)-1<<20)...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("stored %d bytes, not the expected %d", len(got), len(want))
			}
			if b, _ := os.ReadFile(filepath.Join(out, dir[1:], "next")); string(b) != "next" {
				t.Errorf("next: %q", b)
			}
		})
	}
}

func TestPackExcludesAndSpecial(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"keep", "skip.o", "sub/skip.o", "sub/keep", "cache/big", "other/cache/x"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	t.Chdir(dir)
	var warnings []string
	var buf bytes.Buffer
	st, err := Pack(context.Background(), &buf, []string{"."}, PackOptions{
		Excludes: []string{"*.o", "./cache", "cache"},
		Warn:     func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "fifo") {
		t.Errorf("stats %+v, warnings %q", st, warnings)
	}
	var list bytes.Buffer
	List(context.Background(), &buf, &list, nil, nil)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(list.String()), "\n") {
		f := strings.Fields(l)
		names = append(names, f[len(f)-1])
	}
	if got := strings.Join(names, " "); got != "./ keep other/ sub/ sub/keep" {
		t.Errorf("stored %s", got)
	}
	if _, err := Pack(context.Background(), io.Discard, []string{"missing"}, PackOptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: %v", err)
	}
}

// Issue 8 item 15: paths that overlap (home home/alice, or the other way
// round, or one path twice) are stored once, so hard links inside restore,
// and GNU tar reads the same archive into the same tree.
func TestPackOverlappingPaths(t *testing.T) {
	base := t.TempDir()
	alice := filepath.Join(base, "home/alice")
	os.MkdirAll(filepath.Join(alice, "docs"), 0o755)
	os.WriteFile(filepath.Join(alice, "docs/a"), []byte("linked"), 0o644)
	os.Link(filepath.Join(alice, "docs/a"), filepath.Join(alice, "b"))
	os.WriteFile(filepath.Join(base, "home/top"), []byte("top"), 0o644)
	t.Chdir(base)
	for _, paths := range [][]string{
		{"home", "home/alice"},
		{"home/alice", "home"},
		{"home", "home/alice/docs/a", "./home/"},
		{"home/alice/b", "home/alice/docs/a", "home"},
	} {
		data, st := pack(t, paths, PackOptions{})
		if st.Files != 2 || st.Links != 1 || st.Dirs != 3 {
			t.Errorf("%q: stats %+v, want 2 files, 1 link, 3 directories", paths, st)
		}
		out := t.TempDir()
		if _, err := Extract(context.Background(), bytes.NewReader(data), out, RestoreOptions{}); err != nil {
			t.Errorf("%q: %v", paths, err)
			continue
		}
		sameTree(t, "home", filepath.Join(out, "home"), archivetest.Options{NoRoot: true})
		gnu := t.TempDir()
		cmd := exec.Command("tar", "-x", "-f", "-", "-C", gnu)
		cmd.Stdin = bytes.NewReader(data)
		if outb, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%q: GNU tar: %v\n%s", paths, err, outb)
		}
		sameTree(t, "home", filepath.Join(gnu, "home"), archivetest.Options{NoRoot: true})
	}
}

// failReads makes reads of path fail with EIO once after bytes of it were
// read.
func failReads(t *testing.T, path string, after int) {
	read := 0
	readContent = func(fd int, p string, b []byte) (int, error) {
		if p != path {
			return readFd(fd, p, b)
		}
		if read >= after {
			return 0, &os.PathError{Op: "read", Path: p, Err: syscall.EIO}
		}
		n, err := readFd(fd, p, b[:min(len(b), after-read)])
		read += n
		return n, err
	}
	t.Cleanup(func() { readContent = readFd })
}

// Issue 8 item 14: a read error part way through a file stores it with
// zeros for the rest, marked damaged in the archive: bk-pack's warning says
// so (not "skipped"), and a restore, list or check warns naming the file
// and counts it. GNU tar still restores the archive.
func TestPackReadErrorMarksDamaged(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	data := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	os.MkdirAll("src", 0o755)
	os.WriteFile("src/bad", data, 0o644)
	os.WriteFile("src/good", []byte("fine"), 0o644)
	failReads(t, "src/bad", 1<<20)

	var warnings []string
	warn := func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }
	archive, st := pack(t, []string{"src"}, PackOptions{Warn: warn})
	if st.Damaged != 1 || st.Skipped != 0 || st.Files != 2 {
		t.Errorf("stats %+v", st)
	}
	head := 1 << 20
	want := fmt.Sprintf("src/bad: read error after %d of %d bytes: input/output error; stored with zeros for the rest, marked damaged", head, len(data))
	if len(warnings) != 1 || warnings[0] != want {
		t.Errorf("pack warnings %q, want %q", warnings, want)
	}
	restored := append(append([]byte{}, data[:head]...), make([]byte, len(data)-head)...)

	warnings = nil
	out := t.TempDir()
	rst, err := Extract(context.Background(), bytes.NewReader(archive), out, RestoreOptions{Warn: warn})
	if err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("src/bad: damaged when packed (read error after %d of %d bytes: input/output error): the part that could not be read is zeros", head, len(data))
	if rst.Damaged != 1 || len(warnings) != 1 || warnings[0] != want {
		t.Errorf("restore: %+v, warnings %q", rst, warnings)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "src/bad")); !bytes.Equal(got, restored) {
		t.Error("restored content is not what was read followed by zeros")
	}
	for name, run := range map[string]func(func(string, ...any)) (RestoreStats, error){
		"list": func(w func(string, ...any)) (RestoreStats, error) {
			return List(context.Background(), bytes.NewReader(archive), io.Discard, nil, w)
		},
		"check": func(w func(string, ...any)) (RestoreStats, error) {
			return Check(context.Background(), bytes.NewReader(archive), nil, w)
		},
		"check src/good": func(w func(string, ...any)) (RestoreStats, error) {
			return Check(context.Background(), bytes.NewReader(archive), []string{"src/good"}, w)
		},
	} {
		warnings = nil
		st, err := run(warn)
		wantDamaged := 1
		if name == "check src/good" {
			wantDamaged = 0 // the damaged file was not selected
		}
		if err != nil || st.Damaged != wantDamaged || len(warnings) != wantDamaged {
			t.Errorf("%s: %v %+v %q", name, err, st, warnings)
		}
	}

	gnu := t.TempDir()
	cmd := exec.Command("tar", "-x", "-f", "-", "-C", gnu)
	cmd.Stdin = bytes.NewReader(archive)
	if outb, err := cmd.CombinedOutput(); err != nil || len(outb) > 0 {
		t.Errorf("GNU tar: %v %s", err, outb)
	}
	if got, _ := os.ReadFile(filepath.Join(gnu, "src/bad")); !bytes.Equal(got, restored) {
		t.Error("GNU tar restored other content")
	}
}

// A read error in the head that a read worker reads ahead (all of a small
// file) stores what was read, marked damaged; one before the first byte
// skips the file.
func TestPackReadErrorInHead(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		size, after int
		damaged     bool
	}{
		{100 << 10, 10 << 10, true},    // a small file, read whole ahead
		{3 << 20, headChunk / 2, true}, // in the head of a big one
		{3 << 20, 0, false},            // nothing readable: skipped
	} {
		os.RemoveAll("src")
		os.MkdirAll("src", 0o755)
		os.WriteFile("src/f", bytes.Repeat([]byte{7}, tc.size), 0o644)
		failReads(t, "src/f", tc.after)
		var warnings []string
		archive, st := pack(t, []string{"src"}, PackOptions{Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }})
		if !tc.damaged {
			if st.Skipped != 1 || st.Damaged != 0 || len(warnings) != 1 || !strings.HasPrefix(warnings[0], "skipping src/f: ") {
				t.Errorf("%+v: stats %+v, warnings %q", tc, st, warnings)
			}
			continue
		}
		want := fmt.Sprintf("src/f: read error after %d of %d bytes: input/output error; stored with zeros for the rest, marked damaged", tc.after, tc.size)
		if st.Damaged != 1 || st.Skipped != 0 || len(warnings) != 1 || warnings[0] != want {
			t.Errorf("%+v: stats %+v, warnings %q", tc, st, warnings)
		}
		out := t.TempDir()
		if _, err := Extract(context.Background(), bytes.NewReader(archive), out, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		want2 := append(bytes.Repeat([]byte{7}, tc.after), make([]byte, tc.size-tc.after)...)
		if got, _ := os.ReadFile(filepath.Join(out, "src/f")); !bytes.Equal(got, want2) {
			t.Errorf("%+v: restored content is not what was read followed by zeros", tc)
		}
	}
}

// A damage marker must follow the entry of the file it names.
func TestDamageMarkerMisplaced(t *testing.T) {
	for name, marked := range map[string]string{"other file": "b", "directory": "d", "unsafe": "../a"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "b", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX})
		tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX})
		tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX})
		if name == "directory" {
			tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX})
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Format: tar.FormatPAX,
			PAXRecords: map[string]string{damagedPath: marked, damagedReason: "x"}})
		tw.Close()
		_, err := Check(context.Background(), bytes.NewReader(buf.Bytes()), nil, nil)
		if err == nil || !strings.Contains(err.Error(), "damage marker") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
