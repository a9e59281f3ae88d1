package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarOf writes entries (a "/" suffix makes a directory, "->" a symlink,
// "=" a file's content, "#" a dumpdir) as a PAX tar stream.
func tarOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Mode: 0o755, Format: tar.FormatPAX}
		switch {
		case strings.Contains(e, "->"):
			name, target, _ := strings.Cut(e, "->")
			h.Name, h.Typeflag, h.Linkname = name, tar.TypeSymlink, target
		case strings.Contains(e, "#"):
			name, dd, _ := strings.Cut(e, "#")
			h.Name, h.Typeflag = name, tar.TypeDir
			h.PAXRecords = map[string]string{dumpdirRecord: strings.ReplaceAll(dd, ",", "\x00") + "\x00\x00"}
		case strings.HasSuffix(e, "/"):
			h.Name, h.Typeflag = e, tar.TypeDir
		default:
			name, content, _ := strings.Cut(e, "=")
			h.Name, h.Typeflag, h.Size = name, tar.TypeReg, int64(len(content))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, content, _ := strings.Cut(e, "=")
			if _, err := tw.Write([]byte(content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func membersOf(archives ...[]byte) Members {
	i := 0
	return func() (string, io.Reader, error) {
		if i == len(archives) {
			return "", nil, io.EOF
		}
		i++
		return "b" + string(rune('0'+i-1)), bytes.NewReader(archives[i-1]), nil
	}
}

// A dumpdir removes what the earlier archives left and the directory no
// longer lists, and a directory that became a file (and the reverse).
func TestExtractChainApplies(t *testing.T) {
	full := tarOf(t, "t/", "t/keep=k", "t/gone=g", "t/d/", "t/d/x=x", "t/f=f")
	inc := tarOf(t, "t/#Nkeep,Yd,Df", "t/d=now a file", "t/f/#Ynew", "t/f/new=n")
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := ExtractChain(context.Background(), membersOf(full, inc), dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := relSnapshot(t, dir); got != relSnapshotWant(t, "t/", "t/d=now a file", "t/f/", "t/f/new=n", "t/keep=k") {
		t.Fatalf("restored tree:\n%s", got)
	}
}

// relSnapshotWant is the snapshot of one archive of entries, restored.
func relSnapshotWant(t *testing.T, entries ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "want")
	if _, err := Extract(context.Background(), bytes.NewReader(tarOf(t, entries...)), dir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return relSnapshot(t, dir)
}

// relSnapshot is snapshot with names relative to dir.
func relSnapshot(t *testing.T, dir string) string {
	return strings.ReplaceAll(snapshot(t, dir), dir, "")
}

// A later archive of a chain cannot write through a symlink an earlier one
// left, even one that points inside the target.
func TestExtractChainRefusesSymlinkPath(t *testing.T) {
	full := tarOf(t, "d/", "l->d")
	inc := tarOf(t, "l/evil=e")
	dir := filepath.Join(t.TempDir(), "out")
	_, err := ExtractChain(context.Background(), membersOf(full, inc), dir, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "backup b1: ") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v, want a refusal naming backup b1", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("the target was left behind: %v", err)
	}
}

// A folder one archive of a chain wrote in, which a later one replaced by
// a symlink (to a folder beside it, inside the target), is no way through
// for the archive after: the restore's memory of the folders it looked at
// goes with what a dumpdir removes.
func TestExtractChainRefusesSymlinkInPlaceOfFolder(t *testing.T) {
	full := tarOf(t, "t/", "t/d/", "t/d/f=1")
	inc1 := tarOf(t, "t/#Dd", "t/d/#Nf,Yg", "t/d/g=2")
	inc2 := tarOf(t, "t/#Yd,De", "t/d->e", "t/e/")
	inc3 := tarOf(t, "t/d/evil=e")
	dir := filepath.Join(t.TempDir(), "out")
	_, err := ExtractChain(context.Background(), membersOf(full, inc1, inc2, inc3), dir, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "backup b3: ") || !strings.Contains(err.Error(), "would write through t/d") {
		t.Fatalf("got %v, want a refusal naming backup b3 and t/d", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("the target was left behind: %v", err)
	}
}
