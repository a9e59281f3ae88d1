package pack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/seal"
)

// ageDecrypt runs the real age -d on stream and returns its error.
func ageDecrypt(t *testing.T, id *age.X25519Identity, stream []byte) error {
	t.Helper()
	if _, err := exec.LookPath("age"); err != nil {
		t.Skip("age not on PATH (CI installs it)")
	}
	key := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("age", "-d", "-i", key)
	cmd.Stdin = bytes.NewReader(stream)
	return cmd.Run()
}

// A bk-pack that fails mid-stream (here: interrupted) leaves an age stream
// without its final chunk, which age -d refuses: a pipeline that stores it
// anyway never holds a backup that decrypts as complete.
func TestFailedPackDoesNotDecrypt(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c", "d"} {
		// Random content, so that compressed chunks reach age before the end.
		data := make([]byte, 3<<20)
		for i := range data {
			data[i] = byte(i*7919 ^ i>>3)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := seal.GenerateIdentity()

	var whole bytes.Buffer
	if _, err := pack(context.Background(), &whole, []age.Recipient{id.Recipient()}, 3, []string{dir}, archive.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ageDecrypt(t, id, whole.Bytes()); err != nil {
		t.Fatalf("age -d of a complete archive: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read := 0
	var cut bytes.Buffer
	_, err := pack(ctx, &cut, []age.Recipient{id.Recipient()}, 3, []string{dir}, archive.PackOptions{
		Progress: func(n int) {
			if read += n; read > 8<<20 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("pack: %v, want canceled", err)
	}
	if cut.Len() == 0 {
		t.Fatal("nothing written before the cancellation: the test proves nothing")
	}
	if err := ageDecrypt(t, id, cut.Bytes()); err == nil {
		t.Errorf("age -d decrypted the %d bytes of a failed run without error", cut.Len())
	}
}
