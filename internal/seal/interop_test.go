package seal

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not on PATH (CI installs it)", name)
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// sshKey makes an unencrypted ed25519 key pair with ssh-keygen.
func sshKey(t *testing.T, dir string) string {
	needTool(t, "ssh-keygen")
	path := filepath.Join(dir, "id_ed25519")
	run(t, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path)
	return path
}

func writeKeyFile(t *testing.T, dir string, id *age.X25519Identity) string {
	path := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(path, []byte(FormatIdentity(id, time.Now())), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAgeInterop(t *testing.T) {
	needTool(t, "age")
	dir := t.TempDir()
	tarball := tarOf(t, testData(200<<10))
	stream := compress(t, tarball)
	id := newIdentity(t)
	keyFile := writeKeyFile(t, dir, id)
	sshPriv := sshKey(t, dir)
	sshPub, err := os.ReadFile(sshPriv + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("seal to X25519, age -d -i", func(t *testing.T) {
		got := run(t, encrypt(t, stream, id.Recipient()), "age", "-d", "-i", keyFile)
		if !bytes.Equal(got, stream) {
			t.Fatal("age -d output differs")
		}
	})
	t.Run("seal to ssh-ed25519, age -d -i", func(t *testing.T) {
		rcpt, err := ParseRecipient(string(sshPub))
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, encrypt(t, stream, rcpt), "age", "-d", "-i", sshPriv)
		if !bytes.Equal(got, stream) {
			t.Fatal("age -d output differs")
		}
	})
	ids, err := ReadIdentitiesFile(keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	sshIDs, err := ReadIdentitiesFile(sshPriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		ids  []age.Identity
	}{
		{"age -r", []string{"-r", id.Recipient().String()}, ids},
		{"age -R ssh.pub", []string{"-R", sshPriv + ".pub"}, sshIDs},
		{"age -a -r", []string{"-a", "-r", id.Recipient().String()}, ids},
	} {
		t.Run(tc.name+", Open", func(t *testing.T) {
			enc := run(t, stream, "age", tc.args...)
			got, layers, err := openAll(t, enc, Keys{Identities: tc.ids})
			if err != nil {
				t.Fatal(err)
			}
			if !layers.Encrypted || !layers.Compressed || !bytes.Equal(got, tarball) {
				t.Fatalf("layers %+v, content equal %v", layers, bytes.Equal(got, tarball))
			}
		})
	}
	t.Run("key file matches age-keygen -y", func(t *testing.T) {
		needTool(t, "age-keygen")
		got := strings.TrimSpace(string(run(t, nil, "age-keygen", "-y", keyFile)))
		if got != id.Recipient().String() {
			t.Fatalf("age-keygen -y: %q, want %q", got, id.Recipient())
		}
	})
}

// An encrypted SSH key is asked for its passphrase only when the archive
// is for it.
func TestEncryptedSSHKey(t *testing.T) {
	dir := t.TempDir()
	needTool(t, "ssh-keygen")
	path := filepath.Join(dir, "id_ed25519")
	run(t, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "sesame", "-f", path)
	asked := 0
	ids, err := ReadIdentitiesFile(path, func(prompt string) ([]byte, error) {
		asked++
		if !strings.Contains(prompt, path) {
			t.Errorf("prompt %q does not name the key", prompt)
		}
		return []byte("sesame"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(path + ".pub")
	rcpt, err := ParseRecipient(string(pub))
	if err != nil {
		t.Fatal(err)
	}
	tarball := tarOf(t, []byte("x"))
	if _, _, err := openAll(t, encrypt(t, tarball, newIdentity(t).Recipient()), Keys{Identities: ids}); err == nil || asked != 0 {
		t.Fatalf("other key's archive: err %v, asked %d times", err, asked)
	}
	got, _, err := openAll(t, encrypt(t, tarball, rcpt), Keys{Identities: ids})
	if err != nil || asked != 1 || !bytes.Equal(got, tarball) {
		t.Fatalf("own archive: err %v, asked %d times", err, asked)
	}
}

// age reads a header of at most 1024 recipients: Encrypt refuses more
// before writing a byte, and what it accepts, age -d reads.
func TestEncryptRecipientLimit(t *testing.T) {
	needTool(t, "age")
	dir := t.TempDir()
	id := newIdentity(t)
	keyFile := writeKeyFile(t, dir, id)
	recipients := []age.Recipient{id.Recipient()}
	for range 1023 {
		recipients = append(recipients, newIdentity(t).Recipient())
	}
	got := run(t, encrypt(t, []byte("data"), recipients...), "age", "-d", "-i", keyFile)
	if string(got) != "data" {
		t.Fatalf("age -d of 1024 recipients: %q", got)
	}
	var out bytes.Buffer
	_, err := Encrypt(&out, append(recipients, newIdentity(t).Recipient())...)
	if !errors.Is(err, ErrTooManyRecipients) || !strings.Contains(err.Error(), "1025 given") {
		t.Errorf("1025 recipients: got %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("refused encryption wrote %d bytes", out.Len())
	}
}
