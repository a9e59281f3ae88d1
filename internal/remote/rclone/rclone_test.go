package rclone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/remotetest"
)

// config points rclone at a config file of this test's own, with one
// remote "nas" of type local, so no test reads the user's.
func config(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("rclone"); err != nil {
		t.Skip("rclone not installed (apt-get install rclone)")
	}
	file := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(file, []byte("[nas]\ntype = local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RCLONE_CONFIG", file)
	// Each operation starts rclone, about 0.05 s of CPU, a third of it
	// in the garbage collector of its start-up; the suite starts it 200
	// times and no run holds more than a few tens of megabytes.
	t.Setenv("GOGC", "off")
}

func folder(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dial(t *testing.T, root string, opts remote.DialOptions) *Rclone {
	t.Helper()
	r, err := Dial(context.Background(), root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSuite leaves Dial's check out, one rclone start a test: TestStarts,
// TestDialErrors and TestReplacedCommand dial.
func TestSuite(t *testing.T) {
	config(t)
	remotetest.Run(t, func(t *testing.T, opts remote.DialOptions) (remote.Remote, remotetest.Flip) {
		dir := folder(t)
		return newRclone("nas:"+dir, opts), remotetest.InDir(dir)
	})
}

// TestOnTheFly reaches a folder through an on-the-fly remote, which needs
// no config, and a relative path on a named one.
func TestOnTheFly(t *testing.T) {
	config(t)
	dir := folder(t)
	data := remotetest.Data(300<<10, 1)
	remotetest.Put(t, dial(t, ":local:"+dir, remote.DialOptions{}), "a/b", data)
	t.Chdir(filepath.Dir(dir))
	r := dial(t, "nas:store", remote.DialOptions{})
	if got := remotetest.Get(t, r, "a/b", 1000); !bytes.Equal(got, data[1000:]) {
		t.Fatalf("read %d bytes, want %d", len(got), len(data)-1000)
	}
}

func TestParse(t *testing.T) {
	for dest, want := range map[string]string{
		"rclone:nas:backups":      "nas:backups",
		"rclone:nas:":             "nas:",
		"rclone::local:/srv/x":    ":local:/srv/x",
		"rclone:b2:bucket/folder": "b2:bucket/folder",
	} {
		loc, err := remote.ParseLocation(dest, "")
		if err != nil || loc != (Location{Path: want}) || loc.URL() != dest {
			t.Errorf("ParseLocation(%q) = %#v, %v; want rclone path %q", dest, loc, err, want)
		}
	}
	for _, dest := range []string{"rclone:", "rclone:nas"} {
		if _, err := remote.ParseLocation(dest, ""); err == nil {
			t.Errorf("ParseLocation(%q) succeeded", dest)
		}
	}
}

// TestReplacedCommand runs rclone through a command line that carries its
// own config, as --rclone or $BK_RCLONE would give it.
func TestReplacedCommand(t *testing.T) {
	config(t)
	file := os.Getenv("RCLONE_CONFIG")
	t.Setenv("RCLONE_CONFIG", filepath.Join(t.TempDir(), "none.conf"))
	dir := folder(t)
	if _, err := Dial(context.Background(), "nas:"+dir, remote.DialOptions{}); err == nil {
		t.Fatal("the remote was found without the config")
	}
	r := dial(t, "nas:"+dir, remote.DialOptions{RcloneCommand: []string{"rclone", "--config", file}})
	remotetest.Put(t, r, "f", []byte("x"))
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "x" {
		t.Fatalf("f holds %q, %v", b, err)
	}
}

func TestDialErrors(t *testing.T) {
	config(t)
	_, err := Dial(context.Background(), "nope:x", remote.DialOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "host rclone:nope:x: ") || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown remote: %v", err)
	}
	_, err = Dial(context.Background(), "nas:"+folder(t), remote.DialOptions{RcloneCommand: []string{"/nonexistent/rclone"}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/rclone") {
		t.Fatalf("missing command: %v", err)
	}
}

// TestDeadRcat kills rclone in the middle of an upload: Commit fails and
// nothing appears under the name.
func TestDeadRcat(t *testing.T) {
	config(t)
	r := dial(t, "nas:"+folder(t), remote.DialOptions{})
	ctx := context.Background()
	up, err := r.Create(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write(remotetest.Data(1<<20, 2)); err != nil {
		t.Fatal(err)
	}
	if err := up.(*upload).cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = up.Write(remotetest.Data(64<<10, 3))
	}
	cerr := up.Commit(ctx)
	if cerr == nil || !strings.Contains(cerr.Error(), r.String()) {
		t.Fatalf("Commit after rclone died: %v (write: %v)", cerr, werr)
	}
	if _, err := r.Stat(ctx, "s"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("s appeared: %v", err)
	}
	if err := up.Abort(); err != nil {
		t.Fatal(err)
	}
	if temps, err := r.ListTemp(ctx, ""); err != nil || len(temps) != 0 {
		t.Fatalf("ListTemp after Abort = %+v, %v", temps, err)
	}
}

// A ranged read of a share set asks rclone for the parts it needs alone:
// what rclone cat prints adds up to what the reader fetched.
func TestReaderAtReadsStripesOnly(t *testing.T) {
	config(t)
	count := filepath.Join(t.TempDir(), "count")
	script := filepath.Join(t.TempDir(), "rclone-counting")
	const counting = `#!/bin/sh
[ "$1" = cat ] || exec rclone "$@"
out=$(mktemp) || exit 1
rclone "$@" > "$out"
rc=$?
wc -c < "$out" >> "$BK_TEST_COUNT"
cat "$out"
rm -f "$out"
exit $rc
`
	if err := os.WriteFile(script, []byte(counting), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BK_TEST_COUNT", count)
	down := func() int64 {
		b, _ := os.ReadFile(count)
		var sum int64
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum += n
		}
		return sum
	}
	dir := folder(t)
	r := dial(t, "nas:"+dir, remote.DialOptions{RcloneCommand: []string{script}})
	store, err := local.New(dir, remote.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	remotetest.ReaderAtReadsStripesOnly(t, localUploads{r, store}, down, 0, 0)
}

// localUploads reads through rclone but stores through the local backend,
// into the folder rclone reads: the reads are under test, and the suite
// covers rclone's uploads (28 rclone starts fewer).
type localUploads struct {
	*Rclone
	store remote.Remote
}

func (l localUploads) Create(ctx context.Context, name string) (remote.Upload, error) {
	return l.store.Create(ctx, name)
}

// TestStarts counts the rclone processes each operation starts, what a
// host of this kind costs: about 0.05 s of CPU each, each started light
// (TCELL_MINIMIZE=1, which halves that).
func TestStarts(t *testing.T) {
	config(t)
	t.Setenv("TCELL_MINIMIZE", "")
	argv := filepath.Join(t.TempDir(), "argv")
	script := filepath.Join(t.TempDir(), "rclone-logging")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 light=$TCELL_MINIMIZE\" >> \"$BK_TEST_ARGV\"\nexec rclone \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BK_TEST_ARGV", argv)
	starts := func() string {
		b, _ := os.ReadFile(argv)
		if err := os.Remove(argv); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		var ops []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			op, light, _ := strings.Cut(line, " ")
			if line != "" && light != "light=1" {
				t.Errorf("rclone %s started with %s, want light=1", op, light)
			}
			ops = append(ops, op)
		}
		return strings.Join(ops, " ")
	}
	ctx := context.Background()
	r := dial(t, "nas:"+folder(t), remote.DialOptions{RcloneCommand: []string{script}})
	if got := starts(); got != "lsjson" {
		t.Errorf("dial started rclone %q, want lsjson", got)
	}
	data := remotetest.Data(100<<10, 50)
	for _, step := range []struct {
		what, want string
		do         func() error
	}{
		{"upload", "rcat moveto lsjson", func() error { return remotetest.TryPut(r, "d/f", data) }},
		{"read", "cat", func() error {
			if got := remotetest.Get(t, r, "d/f", 10); !bytes.Equal(got, data[10:]) {
				return fmt.Errorf("read %d bytes, want %d", len(got), len(data)-10)
			}
			return nil
		}},
		{"read a folder", "cat lsjson", func() error {
			rc, err := r.Open(ctx, "d", 0)
			if err == nil {
				rc.Close()
				return errors.New("opened a folder")
			}
			if !strings.Contains(err.Error(), "d is a folder") {
				return err
			}
			return nil
		}},
		{"list", "lsjson", func() error {
			infos, err := r.List(ctx, "d")
			if err == nil && (len(infos) != 1 || infos[0].Size != int64(len(data))) {
				err = fmt.Errorf("listed %+v", infos)
			}
			return err
		}},
		{"list files and leftovers", "lsjson", func() error {
			files, leftovers, err := remote.ListBoth(ctx, r, "d")
			if err == nil && (len(files) != 1 || len(leftovers) != 0) {
				err = fmt.Errorf("listed %+v and %+v", files, leftovers)
			}
			return err
		}},
		{"remove", "deletefile", func() error { return r.Remove(ctx, "d/f") }},
	} {
		if err := step.do(); err != nil {
			t.Errorf("%s: %v", step.what, err)
		}
		if got := starts(); got != step.want {
			t.Errorf("%s started rclone %q, want %q", step.what, got, step.want)
		}
	}
}
