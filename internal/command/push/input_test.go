package push

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUnchanged: a stream file written to while it is read fails the
// check before the manifest; one left alone, and a pipe, pass.
func TestUnchanged(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "stream")
	if err := os.WriteFile(name, []byte("stream"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check := unchanged(f)
	if err := check(nil); err != nil {
		t.Fatalf("file left alone: %v", err)
	}
	// Same size, a later time: rewritten in place.
	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(name, []byte("STREAM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(name, later, later); err != nil {
		t.Fatal(err)
	}
	if err := check(nil); err != errStreamChanged {
		t.Fatalf("file rewritten: got %v, want errStreamChanged", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if unchanged(r) != nil {
		t.Fatal("a pipe has a check")
	}
}
