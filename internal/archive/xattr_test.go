package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/xattr"
)

// userXattrs reports whether the file system under dir takes user.*
// extended attributes.
func userXattrs(t *testing.T, dir string) bool {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return xattr.FSet(f, "user.probe", "1") == nil
}

// TestUnsettableXattrsOneWarning restores an archive made on a system whose
// attribute names this one has no place for: they are left out with one
// warning for the whole restore, and the rest is restored.
func TestUnsettableXattrsOneWarning(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	foreign := map[string]string{
		xattr.RecordPrefix + "com.apple.quarantine": "0081;5f1e",
		xattr.RecordPrefix + "user.kept":            "k",
	}
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{xattr.RecordPrefix + "com.apple.FinderInfo": "f"}},
		{Name: "d/one", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: foreign},
		{Name: "d/two", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: foreign},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if xattr.Settable("com.apple.quarantine") {
		t.Skip("this system takes any attribute name")
	}
	out := t.TempDir()
	var warnings []string
	_, err := Extract(context.Background(), &buf, out, RestoreOptions{
		Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `3 extended attributes not restored: this system or file system has no place for them ("com.apple.FinderInfo", "com.apple.quarantine")`
	if !userXattrs(t, out) {
		want = `5 extended attributes not restored: this system or file system has no place for them ("com.apple.FinderInfo", "com.apple.quarantine", "user.kept", ...)`
	}
	if len(warnings) != 1 || warnings[0] != want {
		t.Fatalf("warnings %q, want one: %q", warnings, want)
	}
	if !userXattrs(t, out) {
		return
	}
	for _, name := range []string{"one", "two"} {
		got, err := xattr.List(filepath.Join(out, "d", name))
		if err != nil || !reflect.DeepEqual(got, []xattr.Attr{{Name: "user.kept", Value: "k"}}) {
			t.Errorf("d/%s has extended attributes %q, %v", name, got, err)
		}
	}
}

// TestPackUnnamableXattr packs a file with an attribute whose name no tar
// record can hold: a warning names it, and the file is stored with its
// other attributes.
func TestPackUnnamableXattr(t *testing.T) {
	dir := fileWithXattrs(t, xattr.Attr{Name: "user.a=b", Value: "v"}, xattr.Attr{Name: "user.ok", Value: "v"})
	t.Chdir(dir)
	var warnings []string
	data, _ := pack(t, []string{"f"}, PackOptions{
		Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) },
	})
	if len(warnings) != 1 || !strings.Contains(warnings[0], `"user.a=b"`) || strings.Contains(warnings[0], "user.ok") {
		t.Fatalf("warnings %q", warnings)
	}
	h, err := tar.NewReader(bytes.NewReader(data)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := xattr.FromRecords(h.PAXRecords); !reflect.DeepEqual(got, []xattr.Attr{{Name: "user.ok", Value: "v"}}) {
		t.Fatalf("stored attributes %q", got)
	}
}

// TestPackXattrsEveryKind: a file read by a worker (listed through its
// descriptor), its second name (a hard link, listed by the walker) and a
// directory all carry their extended attributes.
func TestPackXattrsEveryKind(t *testing.T) {
	t.Parallel()
	dir := fileWithXattrs(t, xattr.Attr{Name: "user.file", Value: "1"})
	if err := os.Link(filepath.Join(dir, "f"), filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := xattr.FSet(d, "user.dir", "2"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	data, _ := pack(t, []string{dir}, PackOptions{Warn: func(f string, a ...any) {
		if msg := fmt.Sprintf(f, a...); !strings.HasPrefix(msg, "removing leading") {
			t.Errorf("warning: %s", msg)
		}
	}})
	want := map[string][]xattr.Attr{
		"":  {{Name: "user.dir", Value: "2"}},
		"f": {{Name: "user.file", Value: "1"}},
		"g": {{Name: "user.file", Value: "1"}},
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, MemberName(dir)), "/")
		name = strings.TrimPrefix(name, "/")
		if got := xattr.FromRecords(h.PAXRecords); !reflect.DeepEqual(got, want[name]) {
			t.Errorf("%q (%c): attributes %q, want %q", name, h.Typeflag, got, want[name])
		}
		delete(want, name)
	}
	if len(want) != 0 {
		t.Errorf("not stored: %v", want)
	}
}

// fileWithXattrs makes a folder holding a file f with attrs, or skips the
// test where the file system takes no user attributes.
func fileWithXattrs(t *testing.T, attrs ...xattr.Attr) string {
	dir := t.TempDir()
	if !userXattrs(t, dir) {
		t.Skip("no user extended attributes here")
	}
	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, a := range attrs {
		if err := xattr.FSet(f, a.Name, a.Value); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
