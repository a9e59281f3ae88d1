package command_test

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rogpeppe/go-internal/testscript"
)

// hostileEntries are tar archives that bk-restore must refuse, each built
// from a list of entries so the scripts can name the attack.
var hostileEntries = map[string][]tar.Header{
	"absolute": {{Name: "/tmp/bk-evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}},
	"dotdot":   {{Name: "a/../../bk-evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}},
	"symlink-escape": {
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../outside", Mode: 0o777},
		{Name: "l/bk-evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
	},
	"symlink-inside": {
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "d", Mode: 0o777},
		{Name: "l/bk-evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
	},
	"hardlink-escape": {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/secret", Mode: 0o644}},
	"device":          {{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
	"setuid":          {{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 4}},
	"plain":           {{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}},
	// Not hostile: bk-pack's damage marker after a file (docs/FORMAT.md).
	"damaged": {
		{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
		{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{
			"BK.damaged.path": "f", "BK.damaged.reason": "read error after 2 of 4 bytes: input/output error"}},
	},
}

func init() {
	scriptCmds["mkfulltree"] = mkfulltree
	// mountns: a private mount namespace can be made, so a script can mount
	// a tmpfs without touching the machine (root, and not forbidden).
	scriptConds["mountns"] = func() (bool, error) {
		return os.Geteuid() == 0 && exec.Command("unshare", "-m", "true").Run() == nil, nil
	}
	// loopdev: as mountns, and a loop device can be set up, so a script can
	// make a real read error (a file system on a loop device whose backing
	// file is cut short under it).
	scriptConds["loopdev"] = func() (bool, error) {
		if os.Geteuid() != 0 || exec.Command("unshare", "-m", "true").Run() != nil {
			return false, nil
		}
		_, err := exec.LookPath("mkfs.ext2")
		return err == nil && exec.Command("losetup", "-f").Run() == nil, nil
	}
	// mkhostile OUT KIND: a plain tar archive with the entries of KIND.
	scriptCmds["mkhostile"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: mkhostile OUT KIND")
		}
		entries, ok := hostileEntries[args[1]]
		if !ok {
			ts.Fatalf("unknown kind %q", args[1])
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			h.Format = tar.FormatPAX
			ts.Check(tw.WriteHeader(&h))
			if h.Size > 0 {
				_, err := tw.Write([]byte("evil")[:h.Size])
				ts.Check(err)
			}
		}
		ts.Check(tw.Close())
		ts.Check(os.WriteFile(ts.MkAbs(args[0]), buf.Bytes(), 0o644))
	}
	// unprivileged PROG ARGS...: run a tool without the power to read
	// anything, so a chmod 000 file is really unreadable even when the tests
	// run as root: root keeps its uid but loses the capabilities that bypass
	// file permissions. Like exec, it fails the script when PROG fails
	// (unless !); its stdout, stderr and exit code land in
	// unprivileged.{stdout,stderr,exit}.
	scriptCmds["unprivileged"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) < 1 {
			ts.Fatalf("usage: unprivileged PROG ARGS...")
		}
		if os.Geteuid() == 0 {
			args = append([]string{"setpriv", "--bounding-set", "-dac_override,-dac_read_search"}, args...)
		}
		path, err := exec.LookPath(args[0])
		ts.Check(err)
		cmd := exec.Command(path, args[1:]...)
		cmd.Dir = ts.Getenv("WORK")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		code := 0
		if err != nil {
			code = -1
			if exit, ok := err.(*exec.ExitError); ok {
				code = exit.ExitCode()
			}
		}
		ts.Logf("[stderr]\n%s", stderr.String())
		ts.Check(os.WriteFile(ts.MkAbs("unprivileged.stdout"), []byte(stdout.String()), 0o644))
		ts.Check(os.WriteFile(ts.MkAbs("unprivileged.stderr"), []byte(stderr.String()), 0o644))
		ts.Check(os.WriteFile(ts.MkAbs("unprivileged.exit"), []byte(strconv.Itoa(code)+"\n"), 0o644))
		if err != nil && !neg {
			ts.Fatalf("%s: %v", args[0], err)
		}
		if err == nil && neg {
			ts.Fatalf("%s unexpectedly succeeded", args[0])
		}
	}
}

// mkfulltree DIR: a tree with every kind of entry bk-pack keeps: files
// (empty, binary, odd names, a long path), empty and nested directories,
// symlinks (to a file, to a directory, dangling), hard links, unusual modes,
// nanosecond mtimes (directories too), and a user xattr where the file system
// takes one.
func mkfulltree(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkfulltree DIR")
	}
	root := ts.MkAbs(args[0])
	long := filepath.Join(root, strings.Repeat("deep/", 12), strings.Repeat("n", 120)+".txt")
	files := map[string]string{
		"a.txt":              "hello\n",
		"empty":              "",
		"bin.dat":            string([]byte{0, 1, 2, 255, 254, 0, 10}),
		"sub/b.txt":          strings.Repeat("source-like line\n", 5000),
		"sub/deeper/c.txt":   "c\n",
		"with space & ü.txt": "odd name\n",
		"private/secret":     "0600\n",
		"scripts/run.sh":     "#!/bin/sh\necho hi\n",
		long[len(root)+1:]:   "long path\n",
	}
	for name, content := range files {
		path := filepath.Join(root, name)
		ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
		ts.Check(os.WriteFile(path, []byte(content), 0o644))
	}
	ts.Check(os.MkdirAll(filepath.Join(root, "emptydir"), 0o755))
	ts.Check(os.Chmod(filepath.Join(root, "private/secret"), 0o600))
	ts.Check(os.Chmod(filepath.Join(root, "scripts/run.sh"), 0o750))
	ts.Check(os.Chmod(filepath.Join(root, "private"), 0o700))
	ts.Check(os.Symlink("a.txt", filepath.Join(root, "link-to-file")))
	ts.Check(os.Symlink("sub", filepath.Join(root, "link-to-dir")))
	ts.Check(os.Symlink("no/such/target", filepath.Join(root, "dangling")))
	ts.Check(os.Link(filepath.Join(root, "sub/b.txt"), filepath.Join(root, "hard-b")))
	ts.Check(os.Link(filepath.Join(root, "sub/b.txt"), filepath.Join(root, "sub/deeper/hard-b2")))
	// A user xattr, where the file system supports them (tmpfs, ext4 do).
	_ = unix.Lsetxattr(filepath.Join(root, "a.txt"), "user.bk.test", []byte("kept"), 0)
	// Nanosecond times, set deepest first so parents keep theirs.
	when := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	var paths []string
	ts.Check(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		ts.Check(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano() + int64(i))}, unix.AT_SYMLINK_NOFOLLOW))
	}
}
