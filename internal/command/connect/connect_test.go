package connect

import (
	"slices"
	"testing"
)

func TestCommand(t *testing.T) {
	for _, env := range []string{EnvSSH, EnvRclone} {
		t.Setenv(env, "tool  -F /etc/bk/cfg ")
		if got := Command("", env); !slices.Equal(got, []string{"tool", "-F", "/etc/bk/cfg"}) {
			t.Errorf("from $%s: %q", env, got)
		}
		if got := Command("mytool -v", env); !slices.Equal(got, []string{"mytool", "-v"}) {
			t.Errorf("from the flag over $%s: %q", env, got)
		}
		t.Setenv(env, "")
		if got := Command("", env); len(got) != 0 {
			t.Errorf("$%s unset: %q", env, got)
		}
	}
}
