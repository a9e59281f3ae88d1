package xattr

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	attrs := []Attr{
		{"com.apple.quarantine", "0081;5f1e"},
		{"security.selinux", "system_u:object_r:user_home_t:s0\x00"},
		{"user.bin", "v\x00\xff binary"},
		{"user.empty", ""},
	}
	recs, err := Records(attrs)
	if err != nil {
		t.Fatal(err)
	}
	if recs["SCHILY.xattr.user.bin"] != "v\x00\xff binary" || len(recs) != len(attrs) {
		t.Fatalf("records: %q", recs)
	}
	recs["path"] = "not/an/attribute"
	recs["SCHILY.xattr"] = "no dot, no name"
	if got := FromRecords(recs); !reflect.DeepEqual(got, attrs) {
		t.Fatalf("back from records:\n got %q\nwant %q", got, attrs)
	}
}

func TestRecordsRefuseUnnamable(t *testing.T) {
	recs, err := Records([]Attr{{"user.a=b", "x"}, {"user.ok", "y"}, {"", "z"}})
	if err == nil || !strings.Contains(err.Error(), `"user.a=b"`) || !strings.Contains(err.Error(), `""`) {
		t.Fatalf("error for names a record cannot hold: %v", err)
	}
	if len(recs) != 1 || recs["SCHILY.xattr.user.ok"] != "y" {
		t.Fatalf("the storable attribute was not kept: %q", recs)
	}
	if recs, err := Records(nil); recs != nil || err != nil {
		t.Fatalf("no attributes: %q, %v", recs, err)
	}
}

func TestSettable(t *testing.T) {
	for _, c := range []struct {
		name                  string
		linux, freebsd, macos bool
	}{
		{"user.comment", true, true, true},
		{"security.selinux", true, false, true},
		{"trusted.overlay.opaque", true, false, true},
		{"system.posix_acl_access", true, false, true},
		{"com.apple.quarantine", false, false, true},
		{"com.apple.metadata:kMDItemWhereFroms", false, false, true},
		{"user.", false, false, true},
		{"user", false, false, true},
		{"", false, false, false},
	} {
		if got := settable(c.name, linuxNamespaces); got != c.linux {
			t.Errorf("Linux takes %q: %v", c.name, got)
		}
		if got := settable(c.name, freebsdNamespaces); got != c.freebsd {
			t.Errorf("FreeBSD takes %q: %v", c.name, got)
		}
		if got := settable(c.name, darwinNamespaces); got != c.macos {
			t.Errorf("macOS takes %q: %v", c.name, got)
		}
	}
}

func TestSplitNames(t *testing.T) {
	if got := splitNUL([]byte("user.a\x00security.selinux\x00\x00user.b\x00")); !reflect.DeepEqual(got, []string{"user.a", "security.selinux", "user.b"}) {
		t.Errorf("NUL-ended: %q", got)
	}
	if got := splitNUL(nil); got != nil {
		t.Errorf("NUL-ended, empty: %q", got)
	}
	if got := splitLengthPrefixed([]byte("\x03abc\x01d\x0aten-letter")); !reflect.DeepEqual(got, []string{"abc", "d", "ten-letter"}) {
		t.Errorf("length-prefixed: %q", got)
	}
	if got := splitLengthPrefixed([]byte("\x03abc\x05cut")); !reflect.DeepEqual(got, []string{"abc"}) {
		t.Errorf("length-prefixed, cut short: %q", got)
	}
}

func TestUnsettableWarning(t *testing.T) {
	var u Unsettable
	if w := u.Warning(); w != "" {
		t.Fatalf("warning with nothing left out: %q", w)
	}
	u.Add("com.apple.quarantine")
	if w := u.Warning(); w != `1 extended attribute not restored: this system or file system has no place for them ("com.apple.quarantine")` {
		t.Fatalf("one: %q", w)
	}
	for _, n := range []string{"com.apple.quarantine", "a\x1b[2J", "b", "c", "d"} {
		u.Add(n)
	}
	if w := u.Warning(); w != `6 extended attributes not restored: this system or file system has no place for them ("com.apple.quarantine", "a\x1b[2J", "b", ...)` {
		t.Fatalf("several: %q", w)
	}
}

// TestSetAndList sets attributes the three ways on this system's file
// system and lists them back.
func TestSetAndList(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := FSet(f, "user.bk", "v\x00binary"); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no user extended attributes here: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := SetAt(d, "f", "user.at", "2"); err != nil {
		t.Fatal(err)
	}
	if err := FSet(d, "user.dir", "d"); err != nil {
		t.Fatal(err)
	}
	got, err := List(file)
	if err != nil {
		t.Fatal(err)
	}
	want := []Attr{{"user.at", "2"}, {"user.bk", "v\x00binary"}}
	if !reflect.DeepEqual(sorted(got), want) {
		t.Fatalf("listed %q, want %q", got, want)
	}
	if got, err := ListFd(int(f.Fd()), file); err != nil || !reflect.DeepEqual(sorted(got), want) {
		t.Fatalf("listed through the descriptor: %q, %v; want %q", got, err, want)
	}
	if got, err := List(dir); err != nil || !reflect.DeepEqual(got, []Attr{{"user.dir", "d"}}) {
		t.Fatalf("listed the directory: %q, %v", got, err)
	}
	err = FSet(f, "com.apple.quarantine", "x")
	if !Settable("com.apple.quarantine") && (err == nil || !strings.Contains(err.Error(), "com.apple.quarantine")) {
		t.Fatalf("an attribute without a namespace: %v", err)
	}
	if _, err := List(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("listing a missing file: %v", err)
	}
}

func sorted(attrs []Attr) []Attr {
	recs, _ := Records(attrs)
	return FromRecords(recs)
}
