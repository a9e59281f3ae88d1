package remote

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPauses(t *testing.T) {
	s := time.Second
	if got, want := (Retry{}).Pauses(), []time.Duration{s / 2, s, 2 * s, 4 * s, 8 * s}; !slices.Equal(got, want) {
		t.Errorf("default pauses %v, want %v", got, want)
	}
	if got, want := (Retry{Attempts: 4, First: s, Max: 3 * s}).Pauses(), []time.Duration{s, 2 * s, 3 * s, 3 * s}; !slices.Equal(got, want) {
		t.Errorf("pauses %v, want %v", got, want)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "b1/share.001", "..a", "a..b/c"} {
		if err := CheckNewName(ok); err != nil {
			t.Errorf("CheckNewName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../a", "a/../b", "/a", "a/", "a//b", "./a", `a\b`} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted it", bad)
		}
	}
	if err := CheckName("d/.tmp-1-x"); err != nil {
		t.Errorf("CheckName refused a temp name: %v", err)
	}
	if err := CheckNewName("d/.tmp-1-x"); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("CheckNewName of a temp name: %v", err)
	}
	if CheckDir("") != nil || CheckDir(".") != nil || CheckDir("..") == nil {
		t.Error("CheckDir")
	}
}

func TestTempName(t *testing.T) {
	a, b := TempName("d/e/share.1"), TempName("d/e/share.1")
	if a == b {
		t.Fatalf("two temp names are both %q", a)
	}
	for _, n := range []string{a, b} {
		dir, base, _ := strings.Cut(n, TempPrefix)
		if dir != "d/e/" || !IsTemp(TempPrefix+base) || !strings.HasSuffix(base, "-share.1") || len(base) != 16+1+7 {
			t.Errorf("temp name %q", n)
		}
	}
	if IsTemp("share.1") || IsTemp("tmp-x") {
		t.Error("IsTemp of a plain name")
	}
}

func TestFilter(t *testing.T) {
	infos := []Info{{Name: "b"}, {Name: ".tmp-2-b"}, {Name: "a", Dir: true}, {Name: ".tmp-1-a"}, {Name: ".tmp-dir", Dir: true}}
	names := func(in []Info) (s []string) {
		for _, fi := range in {
			s = append(s, fi.Name)
		}
		return s
	}
	if got := names(Filter(infos, false)); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Filter(false) = %q", got)
	}
	if got := names(Filter(infos, true)); !slices.Equal(got, []string{".tmp-1-a", ".tmp-2-b"}) {
		t.Errorf("Filter(true) = %q", got)
	}
}
