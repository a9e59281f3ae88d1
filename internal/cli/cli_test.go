package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	ucli "github.com/urfave/cli/v2"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailed},
		{Usagef("bad flag"), ExitUsage},
		{WithHint(Usagef("bad flag"), "fix it"), ExitUsage},
		{WithHint(AsUsage(fmt.Errorf("hosts:3: %w", errors.New("bad option"))), "fix it"), ExitUsage},
		{AsUsage(nil), ExitOK},
		{Degradedf("2 files skipped"), ExitDegraded},
		{errInterrupted, ExitInterrupted},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestReportGrammar(t *testing.T) {
	var buf bytes.Buffer
	m := &Messages{Tool: "bk-x", W: &buf}
	m.Report(WithHint(errors.New("host nas: connection refused"), "is the host up?"))
	m.Report(Degradedf("1 file skipped"))
	m.Report(WithHint(Usagef("hosts:2: bad"), "fix line 2"))
	m.Report(Usagef("bad flag"))
	want := "bk-x: error: host nas: connection refused\nbk-x: hint: is the host up?\nbk-x: warning: 1 file skipped\n" +
		"bk-x: error: hosts:2: bad\nbk-x: hint: fix line 2\nbk-x: error: bad flag\nbk-x: hint: see 'bk-x --help'\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

// A host that failed with a hint is a warning in the middle of a run: its
// hint must show there, right under it.
func TestWarningCarriesItsErrorsHint(t *testing.T) {
	var buf bytes.Buffer
	m := &Messages{Tool: "bk-x", W: &buf, Quiet: true}
	m.Warnf("%v; skipped", WithHint(errors.New("host nas: Host key verification failed."), "run ssh nas once"))
	want := "bk-x: warning: host nas: Host key verification failed.; skipped\nbk-x: hint: run ssh nas once\n"
	if buf.String() != want || m.Warnings() != 1 {
		t.Errorf("got %q (%d warnings), want %q", buf.String(), m.Warnings(), want)
	}
}

func TestQuietSilencesNotesOnly(t *testing.T) {
	var buf bytes.Buffer
	m := &Messages{Tool: "bk-x", W: &buf, Quiet: true}
	m.Notef("packed 3 files")
	m.Warnf("file a unreadable")
	if buf.String() != "bk-x: warning: file a unreadable\n" || m.Warnings() != 1 {
		t.Errorf("got %q (%d warnings)", buf.String(), m.Warnings())
	}
}

func TestOutputAppearsOnlyOnCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	o, err := OpenOutput(path, nil, "data")
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("file created before any data: %v", entries)
	}
	if _, err := o.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("output visible before commit: %v", err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "hello" {
		t.Fatalf("content %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temp file left behind: %v", entries)
	}
}

func TestOutputAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenOutput(filepath.Join(dir, "out"), nil, "data")
	if err != nil {
		t.Fatal(err)
	}
	o.Write([]byte("partial"))
	o.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestOutputRefusesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	os.WriteFile(path, []byte("precious"), 0o600)
	if _, err := OpenOutput(path, nil, "data"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("got %v, want an 'already exists' error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "precious" {
		t.Fatal("existing file changed")
	}
}

func TestOutputNeverClobbersFileThatAppearsMeanwhile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	o, err := OpenOutput(path, nil, "data")
	if err != nil {
		t.Fatal(err)
	}
	o.Write([]byte("new"))
	os.WriteFile(path, []byte("precious"), 0o600)
	if err := o.Commit(); err == nil {
		t.Fatal("commit replaced a file that appeared meanwhile")
	}
	if got, _ := os.ReadFile(path); string(got) != "precious" {
		t.Fatal("existing file changed")
	}
}

func TestManPageEscapesAndSections(t *testing.T) {
	page := ManPage(Tool{
		Name: "bk-x", Usage: "do x", ArgsUsage: "FILE",
		Description: ".starts with a dot\n\n  bk-x -k 2 file",
		Sections:    []Section{{Title: "Exit status", Body: "0  ok\n\n1  .failed,\n   badly"}, {Title: "See also", Body: "bk-y(1)"}},
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE`"},
			&ucli.IntFlag{Name: "k", Usage: "any `K` shares", Required: true},
			&ucli.IntFlag{Name: "m", Usage: "at least `M`"},
			&ucli.IntFlag{Name: "r", Usage: "`R` retries", Value: 5},
		},
	}, ManDate)
	for _, want := range []string{".SH NAME\nbk\\-x \\- do x\n", "\\&.starts with a dot", ".nf\n.RS 4\nbk\\-x \\-k 2 file\n.RE\n.fi\n", "'\\\" t\n.TH BK-X", ".SH EXIT STATUS\n.TS\ntab(|);\nl lx.\n0|T{\nok\nT}\n1|T{\n\\&.failed, badly\nT}\n.TE\n.SH SEE ALSO\nbk\\-y(1)\n", "\\fB\\-\\-quiet\\fR, \\fB\\-q\\fR",
		"\\fB\\-\\-output\\fR \\fIFILE\\fR, \\fB\\-o\\fR \\fIFILE\\fR\nwrite to FILE\n",
		"\\fB\\-k\\fR \\fIK\\fR\nany K shares (required)\n", "\\fB\\-m\\fR \\fIM\\fR\nat least M\n",
		"\\fB\\-r\\fR \\fIR\\fR\nR retries (default: 5)\n"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
}

// SIGINT cancels the action's context instead of killing the process, so
// deferred clean-up runs; the tool then exits 130.
func TestInterruptCancelsAndExits130(t *testing.T) {
	var stderr bytes.Buffer
	cleanedUp := false
	code := Main(Tool{Name: "bk-x", Action: func(ctx context.Context, env *Env, c *ucli.Context) error {
		defer func() { cleanedUp = true }()
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("context not cancelled by SIGINT")
		}
	}}, []string{"bk-x"}, Stdio{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
	if code != ExitInterrupted || !cleanedUp || stderr.String() != "bk-x: error: interrupted\n" {
		t.Fatalf("exit %d, cleaned up %v, stderr %q", code, cleanedUp, stderr.String())
	}
}

func TestUsageErrorExits2WithHint(t *testing.T) {
	var stderr bytes.Buffer
	code := Main(Tool{Name: "bk-x", Action: func(context.Context, *Env, *ucli.Context) error { return nil }},
		[]string{"bk-x", "--bogus"}, Stdio{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
	if code != ExitUsage || !strings.Contains(stderr.String(), "bk-x: hint: see 'bk-x --help'") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
