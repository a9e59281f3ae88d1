package cli

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Into a file, progress is a line now and then, with the total when known,
// never a carriage-return frame.
func TestProgressLogsLines(t *testing.T) {
	defer func(d time.Duration) { progressLogging = d }(progressLogging)
	progressLogging = 20 * time.Millisecond
	var stderr bytes.Buffer
	env := &Env{Stdio: Stdio{Stderr: &stderr}, Msg: &Messages{Tool: "bk-x", W: &stderr}, ShowProgress: true}
	p := env.NewProgress(4096, "splitting")
	p.Reader(strings.NewReader(strings.Repeat("x", 1024))).Read(make([]byte, 1024))
	time.Sleep(100 * time.Millisecond)
	p.Done()
	p.Done()
	out := stderr.String()
	if strings.Contains(out, "\r") || !regexp.MustCompile(`(?m)^bk-x: splitting: 1K of 4K \(25%\) in 0, [0-9.]+[KM]?B?/s$`).MatchString(out) {
		t.Fatalf("stderr %q", out)
	}
}

func TestNoProgressNoOutput(t *testing.T) {
	var stderr bytes.Buffer
	env := &Env{Stdio: Stdio{Stderr: &stderr}, Msg: &Messages{Tool: "bk-x", W: &stderr}}
	p := env.NewProgress(-1, "x")
	p.Add(10)
	p.Writer(io.Discard).Write([]byte("abc"))
	p.Done()
	if p != nil || stderr.Len() != 0 {
		t.Fatalf("progress %v, stderr %q", p, stderr.String())
	}
}
