package passphrase

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"filippo.io/age"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/seal"
)

// The hints of a key error name the flags that give the key the archive
// wants; seal's own errors name none.
func TestHint(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	var keyed bytes.Buffer
	w, _ := seal.Encrypt(&keyed, id.Recipient())
	w.Write(make([]byte, 1024))
	w.Close()
	other, _ := age.GenerateX25519Identity()
	ask := func() ([]byte, error) { return []byte("x"), nil }
	for _, tc := range []struct {
		name string
		keys seal.Keys
		hint string
	}{
		{"no key", seal.Keys{}, "give -i KEYFILE or -p"},
		{"passphrase only", seal.Keys{Passphrase: ask}, "give -i KEYFILE"},
		{"wrong key", seal.Keys{Identities: []age.Identity{other}, Passphrase: ask}, ""},
	} {
		_, _, err := seal.Open(bytes.NewReader(keyed.Bytes()), tc.keys)
		if err == nil {
			t.Fatalf("%s: opened", tc.name)
		}
		err = Hint(err, len(tc.keys.Identities) > 0)
		var hinted *cli.HintError
		got := ""
		if errors.As(err, &hinted) {
			got = hinted.Hint
		}
		if got != tc.hint {
			t.Errorf("%s: hint %q, want %q (error %v)", tc.name, got, tc.hint, err)
		}
	}
	if err := Hint(io.ErrUnexpectedEOF, false); err != io.ErrUnexpectedEOF {
		t.Errorf("other error changed: %v", err)
	}
}

func TestLoadHintsWhenNoWayToAsk(t *testing.T) {
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		tty.Close()
		t.Skip("a terminal is there to ask on")
	}
	t.Setenv(seal.PassphraseEnv, "")
	_, err := Load("", false)
	var hinted *cli.HintError
	if !errors.As(err, &hinted) || hinted.Hint != "give --passphrase-file FILE or set BK_PASSPHRASE" {
		t.Errorf("got %v", err)
	}
}
