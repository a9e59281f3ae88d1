package seal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/armor"
	"golang.org/x/crypto/ssh"
)

// Limits on key files, as age's: no real key file comes near them.
const (
	keyFileLimit = 16 << 20
	sshKeyLimit  = 16 << 10
	lineLimit    = 8 << 10
)

// ParseRecipient parses one public key: an age X25519 key ("age1…"), an
// age post-quantum key ("age1pq1…"), or an SSH public key ("ssh-ed25519 …",
// "ssh-rsa …") as in authorized_keys.
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		return age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1") && strings.Count(s, "1") > 1:
		return nil, fmt.Errorf("age plugin recipient %q is not supported", s)
	case strings.HasPrefix(s, "age1"):
		return age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-"):
		return agessh.ParseRecipient(s)
	case strings.HasPrefix(s, "AGE-SECRET-KEY-"):
		// Never echo a secret key into an error message.
		return nil, errors.New("this is a secret key (an identity), not a public key (a recipient)")
	}
	return nil, fmt.Errorf("unknown recipient type %q (want age1… or ssh-ed25519/ssh-rsa …)", s)
}

// ReadRecipientsFile reads public keys as age -R does: one a line, blank
// lines and lines starting with # ignored. Unlike age it refuses, rather
// than skips, an SSH key of a type age cannot use: a backup that silently
// leaves out a recipient is worse than one that does not start.
func ReadRecipientsFile(path string) ([]age.Recipient, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []age.Recipient
	err = eachLine(f, path, func(n int, line string) error {
		r, err := ParseRecipient(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %v", path, n, err)
		}
		recs = append(recs, r)
		return nil
	})
	if err == nil && len(recs) == 0 {
		err = fmt.Errorf("%s: no recipients found", path)
	}
	return recs, err
}

// eachLine calls fn for each line of a key file that is not blank or a
// comment, and checks the file's size, line length and encoding.
func eachLine(r io.Reader, path string, fn func(n int, line string) error) error {
	lr := &io.LimitedReader{R: r, N: keyFileLimit + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), lineLimit+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return fmt.Errorf("%s:%d: not valid UTF-8", path, n)
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("%s:%d: line too long", path, n+1)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if lr.N == 0 {
		return fmt.Errorf("%s: file too long for a key file", path)
	}
	return nil
}

// scryptLogN is the passphrase work factor: age's own, 2^18 (about a
// second and 256 MiB). maxScryptLogN bounds what a stream may ask of
// Open: 2^20 is 1 GiB of memory, room for tools that calibrate higher
// than age while keeping a hostile header from asking for 4 GiB or more.
var scryptLogN = 18

const maxScryptLogN = 20

// WeakenPassphrasesForTests sets the passphrase work factor of this
// process to 2^logN. Only test binaries call it: the testscripts run bk's
// tools inside the test binary, where a passphrase round trip at age's
// factor costs two seconds of CPU and 256 MiB each way; the real factor
// is checked once, by TestPassphraseDefaultWorkFactor. Streams keep
// naming their factor, so what a weakened process wrote still opens
// anywhere.
func WeakenPassphrasesForTests(logN int) { scryptLogN = logN }

// PassphraseRecipient encrypts to a passphrase (age's scrypt recipient). A
// passphrase file must be its only recipient.
func PassphraseRecipient(pass []byte) (age.Recipient, error) {
	r, err := age.NewScryptRecipient(string(pass))
	if err != nil {
		return nil, err
	}
	r.SetWorkFactor(scryptLogN)
	return r, nil
}

// PassphraseIdentity decrypts a passphrase-encrypted stream.
func PassphraseIdentity(pass []byte) (age.Identity, error) {
	id, err := age.NewScryptIdentity(string(pass))
	if err != nil {
		return nil, err
	}
	id.SetMaxWorkFactor(maxScryptLogN)
	return id, nil
}

// ErrTooManyRecipients is returned by Encrypt for a header that age would
// refuse to read: age readers accept at most 1024 recipient stanzas.
var ErrTooManyRecipients = errors.New("too many recipients: age reads at most 1024 in one header")

// Encrypt returns a writer that encrypts to all recipients into w in the
// binary age format. Close writes the last chunk, without which the stream
// does not decrypt; it does not close w. Nothing is written to w if
// Encrypt fails.
func Encrypt(w io.Writer, recipients ...age.Recipient) (io.WriteCloser, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no recipients to encrypt to")
	}
	held := &heldWriter{}
	ew, err := age.Encrypt(held, recipients...)
	if err != nil {
		return nil, err
	}
	// Read the header back with age's own parser, which is what every
	// reader will do: an archive nobody could open is refused now, not at
	// restore time.
	if _, err := age.ExtractHeader(bytes.NewReader(held.buf)); err != nil {
		return nil, fmt.Errorf("%w (%d given): %v", ErrTooManyRecipients, len(recipients), err)
	}
	if err := held.release(w); err != nil {
		return nil, err
	}
	return ew, nil
}

// heldWriter keeps what is written until release, then writes through.
type heldWriter struct {
	buf []byte
	w   io.Writer
}

func (h *heldWriter) Write(p []byte) (int, error) {
	if h.w == nil {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.w.Write(p)
}

func (h *heldWriter) release(w io.Writer) error {
	h.w = w
	_, err := w.Write(h.buf)
	h.buf = nil
	return err
}

// ReadIdentitiesFile reads the secret keys that decrypt: an age identity
// file (AGE-SECRET-KEY-1… lines, # comments), an age identity file itself
// encrypted with a passphrase (as age -p makes), or an SSH private key
// (ed25519 or rsa). askPassphrase is called for an encrypted file, for an
// encrypted SSH key only when the archive was made for that key, and may be
// nil when there is no way to ask.
func ReadIdentitiesFile(path string, askPassphrase func(prompt string) ([]byte, error)) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := bufio.NewReader(f)
	head, _ := b.Peek(1024 + len(armor.Header))
	trimmed := bytes.TrimSpace(head)
	switch {
	case bytes.HasPrefix(head, []byte(ageMagic)) || bytes.HasPrefix(trimmed, []byte(armor.Header)):
		return readEncryptedIdentities(path, b, askPassphrase)
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return readSSHIdentity(path, b, askPassphrase)
	}
	var ids []age.Identity
	err = eachLine(b, path, func(n int, line string) error {
		var id age.Identity
		var err error
		switch {
		case strings.HasPrefix(line, "AGE-SECRET-KEY-1"):
			id, err = age.ParseX25519Identity(line)
		case strings.HasPrefix(line, "AGE-SECRET-KEY-PQ-1"):
			id, err = age.ParseHybridIdentity(line)
		case strings.HasPrefix(line, "age1") || strings.HasPrefix(line, "ssh-"):
			err = errors.New("this is a public key (a recipient), not a secret key (an identity)")
		default:
			err = errors.New("not an age secret key (AGE-SECRET-KEY-1…)")
		}
		if err != nil {
			// The line is secret: name where it is, never what it says.
			return fmt.Errorf("%s:%d: %v", path, n, err)
		}
		ids = append(ids, id)
		return nil
	})
	if err == nil && len(ids) == 0 {
		err = fmt.Errorf("%s: no identities found", path)
	}
	return ids, err
}

// readEncryptedIdentities decrypts an identity file protected by a
// passphrase and reads the identities in it.
func readEncryptedIdentities(path string, r *bufio.Reader, ask func(string) ([]byte, error)) ([]age.Identity, error) {
	if ask == nil {
		return nil, fmt.Errorf("identity file %s is encrypted and there is no way to ask for its passphrase", path)
	}
	var in io.Reader = r
	if head, _ := r.Peek(len(ageMagic)); string(head) != ageMagic {
		in = armor.NewReader(r)
	}
	plain, _, err := decrypt(io.LimitReader(in, keyFileLimit), Keys{Passphrase: func() ([]byte, error) {
		return ask(fmt.Sprintf("Enter passphrase for identity file %s: ", path))
	}})
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	ids, err := age.ParseIdentities(plain)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %v", path, err)
	}
	return ids, nil
}

// readSSHIdentity reads an SSH private key. An encrypted one is decrypted
// only when an archive's header names its public key, so the passphrase is
// asked for only when it is needed.
func readSSHIdentity(path string, r io.Reader, ask func(string) ([]byte, error)) ([]age.Identity, error) {
	pem, err := io.ReadAll(io.LimitReader(r, sshKeyLimit+1))
	if err != nil {
		return nil, err
	}
	if len(pem) > sshKeyLimit {
		return nil, fmt.Errorf("%s: file too long for an SSH private key", path)
	}
	id, err := agessh.ParseIdentity(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		pub := missing.PublicKey
		if pub == nil {
			if pub, err = readSSHPublicKey(path + ".pub"); err != nil {
				return nil, err
			}
		}
		prompt := func() ([]byte, error) {
			if ask == nil {
				return nil, fmt.Errorf("SSH key %s is encrypted and there is no way to ask for its passphrase", path)
			}
			return ask(fmt.Sprintf("Enter passphrase for %s: ", path))
		}
		eid, err := agessh.NewEncryptedSSHIdentity(pub, pem, prompt)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return []age.Identity{eid}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a usable SSH private key: %v", path, err)
	}
	return []age.Identity{id}, nil
}

// readSSHPublicKey reads the .pub file beside an old-format encrypted key,
// whose public half is encrypted too.
func readSSHPublicKey(path string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encrypted SSH key needs its public key beside it: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return pub, nil
}

// GenerateIdentity makes a new age X25519 key pair.
func GenerateIdentity() (*age.X25519Identity, error) {
	return age.GenerateX25519Identity()
}

// FormatIdentity is id as a key file, byte for byte as age-keygen writes it.
func FormatIdentity(id *age.X25519Identity, created time.Time) string {
	return fmt.Sprintf("# created: %s\n# public key: %s\n%s\n",
		created.Format(time.RFC3339), id.Recipient(), id)
}
