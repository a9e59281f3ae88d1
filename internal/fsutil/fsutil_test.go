package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenameNoReplace runs the system's rename and the link-and-unlink
// fallback that file systems without one take, onto a free name and onto a
// taken one.
func TestRenameNoReplace(t *testing.T) {
	for name, rename := range map[string]func(string, string) error{
		"system":      RenameNoReplace,
		"link+unlink": renameByLink,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			tmp, final := filepath.Join(dir, ".tmp-1-f"), filepath.Join(dir, "f")
			write(t, tmp, "new")
			write(t, final, "old")
			if err := rename(tmp, final); !errors.Is(err, os.ErrExist) {
				t.Fatalf("rename over an existing file: %v", err)
			}
			if b, _ := os.ReadFile(final); string(b) != "old" {
				t.Fatalf("the existing file now holds %q", b)
			}
			if b, _ := os.ReadFile(tmp); string(b) != "new" {
				t.Fatalf("the refused temp file now holds %q", b)
			}
			free := filepath.Join(dir, "g")
			if err := rename(tmp, free); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(free); string(b) != "new" {
				t.Fatalf("the moved file holds %q", b)
			}
			if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the temp name is still there: %v", err)
			}
		})
	}
}

func TestFreeSpace(t *testing.T) {
	n, err := FreeSpace(t.TempDir())
	if err != nil || n <= 0 {
		t.Fatalf("free space of a temp dir: %d, %v", n, err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if _, err := FreeSpace(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("free space of a missing folder: %v", err)
	}
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
