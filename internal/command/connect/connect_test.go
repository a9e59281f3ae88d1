package connect

import (
	"slices"
	"testing"
)

func TestSSHCommand(t *testing.T) {
	t.Setenv(EnvSSH, "ssh  -F /etc/bk/cfg ")
	if got := SSHCommand(""); !slices.Equal(got, []string{"ssh", "-F", "/etc/bk/cfg"}) {
		t.Errorf("from $BK_SSH: %q", got)
	}
	if got := SSHCommand("myssh -v"); !slices.Equal(got, []string{"myssh", "-v"}) {
		t.Errorf("from the flag: %q", got)
	}
	t.Setenv(EnvSSH, "")
	if got := SSHCommand(""); len(got) != 0 {
		t.Errorf("unset: %q", got)
	}
}
