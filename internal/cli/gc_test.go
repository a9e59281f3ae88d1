package cli

import (
	"context"
	"io"
	"runtime/debug"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// A tool's GCPercent is the collector's setting while it runs, unless
// $GOGC says otherwise.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	during := func(gogc string) int {
		t.Setenv("GOGC", gogc)
		debug.SetGCPercent(100)
		got := -1
		tool := Tool{Name: "bk-x", GCPercent: 300, Action: func(context.Context, *Env, *ucli.Context) error {
			got = debug.SetGCPercent(100)
			return nil
		}}
		if code := Main(tool, []string{"bk-x"}, Stdio{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}); code != 0 {
			t.Fatalf("exit %d", code)
		}
		return got
	}
	if got := during(""); got != 300 {
		t.Errorf("GOGC unset: the collector's percent is %d, want 300", got)
	}
	if got := during("100"); got != 100 {
		t.Errorf("GOGC=100: the collector's percent is %d, want 100", got)
	}
}
