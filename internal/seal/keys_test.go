package seal

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseRecipient(t *testing.T) {
	id := newIdentity(t)
	if r, err := ParseRecipient("  " + id.Recipient().String() + "\n"); err != nil || r == nil {
		t.Errorf("X25519: %v", err)
	}
	for _, bad := range []string{"", "age1xyz", "ssh-dss AAAA", "hello", id.String(), "age1plugin1abc"} {
		_, err := ParseRecipient(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Errorf("error shows the secret key: %v", err)
		}
	}
}

func TestReadRecipientsFile(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	path := writeFile(t, "recipients", "# laptop\n"+a.Recipient().String()+"\n\n# nas\r\n"+b.Recipient().String()+"\r\n")
	recs, err := ReadRecipientsFile(path)
	if err != nil || len(recs) != 2 {
		t.Fatalf("got %d recipients, %v", len(recs), err)
	}
	for content, want := range map[string]string{
		"# only a comment\n":                     "no recipients found",
		a.Recipient().String() + "\nnot a key\n": ":2: unknown recipient type",
		"\n\n" + a.String() + "\n":               ":3: this is a secret key",
		strings.Repeat("x", lineLimit+10) + "\n": ":1: line too long",
		a.Recipient().String() + "\n\xff\xfe\n":  ":2: not valid UTF-8",
	} {
		path := writeFile(t, "r", content)
		_, err := ReadRecipientsFile(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: got %v, want %s and %q", content, err, path, want)
		}
	}
	if _, err := ReadRecipientsFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadIdentitiesFile(t *testing.T) {
	id := newIdentity(t)
	ids, err := ReadIdentitiesFile(writeFile(t, "key.txt", FormatIdentity(id, time.Now())), nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("got %d identities, %v", len(ids), err)
	}
	for content, want := range map[string]string{
		"# nothing\n":                            "no identities found",
		"# c\n" + id.Recipient().String() + "\n": ":2: this is a public key",
		"AGE-SECRET-KEY-1NOTVALID\n":             ":1: ",
		"password123\n":                          ":1: not an age secret key",
		"-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n": "not a usable SSH private key",
	} {
		path := writeFile(t, "k", content)
		_, err := ReadIdentitiesFile(path, nil)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%.30q: got %v, want %q", content, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "password123") {
			t.Errorf("error shows the file's secret line: %v", err)
		}
	}
}

// An identity file encrypted with a passphrase, as `age -p` makes it.
func TestReadIdentitiesFileEncrypted(t *testing.T) {
	fastScrypt(t)
	id := newIdentity(t)
	pass, _ := PassphraseRecipient([]byte("pw"))
	path := writeFile(t, "key.age", string(encrypt(t, []byte(FormatIdentity(id, time.Now())), pass)))
	ids, err := ReadIdentitiesFile(path, func(string) ([]byte, error) { return []byte("pw"), nil })
	if err != nil || len(ids) != 1 {
		t.Fatalf("got %d identities, %v", len(ids), err)
	}
	_, err = ReadIdentitiesFile(path, func(string) ([]byte, error) { return []byte("nope"), nil })
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := ReadIdentitiesFile(path, nil); err == nil {
		t.Error("encrypted identity file read with no way to ask")
	}
}

func TestFormatIdentity(t *testing.T) {
	id := newIdentity(t)
	created := time.Date(2026, 11, 22, 4, 5, 6, 0, time.UTC)
	got := FormatIdentity(id, created)
	want := "# created: 2026-11-22T04:05:06Z\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if !regexp.MustCompile(`^AGE-SECRET-KEY-1[0-9A-Z]{58}$`).MatchString(id.String()) {
		t.Errorf("secret key line %q", id)
	}
}

func TestLoadPassphrase(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == PassphraseEnv {
				return v
			}
			return ""
		}
	}
	never := func() ([]byte, error) { t.Error("asked"); return nil, nil }
	got, err := LoadPassphrase(writeFile(t, "p", "from file\r\nsecond line\n"), env("from env"), never)
	if err != nil || string(got) != "from file" {
		t.Errorf("file: %q %v", got, err)
	}
	got, err = LoadPassphrase(writeFile(t, "p", "no newline"), env(""), never)
	if err != nil || string(got) != "no newline" {
		t.Errorf("file without newline: %q %v", got, err)
	}
	got, err = LoadPassphrase("", env("from env"), never)
	if err != nil || string(got) != "from env" {
		t.Errorf("env: %q %v", got, err)
	}
	got, err = LoadPassphrase("", env(""), func() ([]byte, error) { return []byte("typed"), nil })
	if err != nil || string(got) != "typed" {
		t.Errorf("ask: %q %v", got, err)
	}

	empty := writeFile(t, "empty", "\nsecond\n")
	if _, err := LoadPassphrase(empty, env(""), never); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty first line: %v", err)
	}
	if _, err := LoadPassphrase(filepath.Join(t.TempDir(), "missing"), env(""), never); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadPassphrase("", env(""), func() ([]byte, error) { return nil, nil }); err == nil {
		t.Error("empty typed passphrase accepted")
	}
	noTerminal := errors.New("no terminal")
	if _, err = LoadPassphrase("", env(""), func() ([]byte, error) { return nil, noTerminal }); err != noTerminal {
		t.Errorf("no terminal: %v", err)
	}
	if _, err := LoadPassphrase("", env(""), nil); err != ErrNoPassphrase {
		t.Errorf("no way to ask: %v", err)
	}
}
