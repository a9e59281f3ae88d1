package seal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// The first bytes of each layer.
const (
	ageMagic   = "age-encryption.org/"
	zstdMagic  = "\x28\xb5\x2f\xfd"
	tarMagic   = "ustar" // at offset 257, POSIX and GNU
	tarMagicAt = 257
	blockSize  = 512
)

// Errors Open returns when the stream is encrypted and the keys do not fit.
var (
	ErrNoKey           = errors.New("archive is encrypted and no key was given")
	ErrWrongKey        = errors.New("no identity matches this archive")
	ErrWrongPassphrase = errors.New("wrong passphrase")
)

// Layers says what Open found around the tar stream.
type Layers struct {
	Encrypted  bool // age, binary or armored
	Passphrase bool // encrypted to a passphrase (scrypt), not to keys
	Compressed bool // zstd
}

// Keys are what Open may decrypt with.
type Keys struct {
	Identities []age.Identity
	// Passphrase is called only if the stream is passphrase-encrypted and
	// no identity fits; nil means there is none.
	Passphrase func() ([]byte, error)
}

// Open peels the layers off an archive stream, whatever made it: bk-pack,
// `tar | zstd`, `tar | zstd | age` (binary or armored), or a plain tar. It
// reads the age header, unwraps the file key and checks the start of each
// inner layer before it returns, so a wrong key, a wrong passphrase or a
// stream that is not an archive is an error here, before any data. Damage
// further on (truncation, a flipped bit) is an error from Read, never a
// silent end of file.
func Open(r io.Reader, keys Keys) (io.ReadCloser, Layers, error) {
	var layers Layers
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(tarMagicAt + len(tarMagic))
	if len(head) == 0 {
		if err == nil || err == io.EOF {
			return nil, layers, errors.New("input is empty, not an archive")
		}
		return nil, layers, err
	}
	var in io.Reader = br
	if armored := bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte(armor.Header)); armored || bytes.HasPrefix(head, []byte(ageMagic)) {
		if armored {
			in = armor.NewReader(br)
		}
		layers.Encrypted = true
		in, layers.Passphrase, err = decrypt(in, keys)
		if err != nil {
			return nil, layers, err
		}
		br = bufio.NewReaderSize(in, 64<<10)
		in = br
		head, err = br.Peek(tarMagicAt + len(tarMagic))
		if len(head) == 0 && err != nil {
			return nil, layers, fmt.Errorf("decrypting: %w", eofIsUnexpected(err))
		}
	}
	switch {
	case isZstd(head):
		layers.Compressed = true
		d, err := Decompress(in)
		if err != nil {
			return nil, layers, err
		}
		dr := bufio.NewReaderSize(d, 64<<10)
		// Reading the first block checks the frame header (and its window
		// size) now, not at the first Read.
		head, err = dr.Peek(tarMagicAt + len(tarMagic))
		if err != nil && err != io.EOF {
			d.Close()
			return nil, layers, fmt.Errorf("decompressing: %w", err)
		}
		if !isTar(head) {
			d.Close()
			return nil, layers, errors.New("decompressed data is not a tar archive")
		}
		return &readCloser{Reader: dr, close: d.Close}, layers, nil
	case isTar(head):
		return io.NopCloser(in), layers, nil
	case layers.Encrypted:
		return nil, layers, errors.New("decrypted data is neither zstd nor tar")
	}
	return nil, layers, errors.New("not an archive bk can read (neither age, zstd nor tar)")
}

// decrypt reads the age header and unwraps the file key. Identities go
// first; the passphrase is asked for only when the header has an scrypt
// stanza, which age allows only alone.
func decrypt(r io.Reader, keys Keys) (io.Reader, bool, error) {
	ids, pass := identities(keys)
	plain, err := age.Decrypt(r, ids...)
	if err != nil {
		return nil, pass.used, decryptError(err, keys, pass)
	}
	return &ageReader{plain}, pass.used, nil
}

// identities are the keys to try, the passphrase last.
func identities(keys Keys) ([]age.Identity, *passphraseIdentity) {
	pass := &passphraseIdentity{ask: keys.Passphrase}
	return append(slices.Clone(keys.Identities), age.Identity(pass)), pass
}

// decryptError says why age could not open the header.
func decryptError(err error, keys Keys, pass *passphraseIdentity) error {
	var noMatch *age.NoIdentityMatchError
	switch {
	case pass.err != nil:
		return pass.err
	case errors.As(err, &noMatch):
		return keyError(noMatch.StanzaTypes, keys, pass)
	}
	return fmt.Errorf("reading the age header: %w", eofIsUnexpected(err))
}

// ErrNotSeekable says an archive's layers cannot be read at an offset: it
// is armored age, or not an archive bk-pack writes.
var ErrNotSeekable = errors.New("archive cannot be read in pieces")

// OpenAt opens an archive of size bytes for reading at any offset: it
// decrypts the age layer (binary age only) with age's ReaderAt, which
// checks each 64 KiB chunk it reads and, before returning, the final one,
// so truncation is found here. It returns the zstd stream and its size;
// an unencrypted archive is its own zstd stream. It does not check that
// the stream ends with a seek table: ReadSeekTable does.
func OpenAt(r io.ReaderAt, size int64, keys Keys) (io.ReaderAt, int64, Layers, error) {
	var layers Layers
	head := make([]byte, min(size, 64))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, 0, layers, err
	}
	switch {
	case bytes.HasPrefix(head, []byte(ageMagic)):
		layers.Encrypted = true
		ids, pass := identities(keys)
		plain, n, err := age.DecryptReaderAt(r, size, ids...)
		layers.Passphrase = pass.used
		var noMatch *age.NoIdentityMatchError
		if err != nil && pass.err == nil && !errors.As(err, &noMatch) && !strings.HasPrefix(err.Error(), "failed to read header") {
			// The header opened: what failed is the final chunk.
			return nil, 0, layers, fmt.Errorf("decrypting: archive is damaged or truncated: %w", err)
		}
		if err != nil {
			return nil, 0, layers, decryptError(err, keys, pass)
		}
		layers.Compressed = true
		return &ageReaderAt{plain}, n, layers, nil
	case isZstd(head):
		layers.Compressed = true
		return r, size, layers, nil
	}
	return nil, 0, layers, ErrNotSeekable
}

// ageReaderAt names age's errors, as ageReader does.
type ageReaderAt struct{ r io.ReaderAt }

func (a *ageReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := a.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decrypting: archive is damaged or truncated: %w", err)
	}
	return n, err
}

// KeyError is returned by Open when no key given fits the archive; it
// wraps ErrNoKey or ErrWrongKey. Passphrase says which kind of key the
// archive wants, so that the caller can say how to give it.
type KeyError struct {
	err        error
	Passphrase bool // encrypted with a passphrase, not to keys
}

func (e *KeyError) Error() string { return e.err.Error() }
func (e *KeyError) Unwrap() error { return e.err }

// keyError says why no key fitted.
func keyError(stanzas []string, keys Keys, pass *passphraseIdentity) error {
	scrypt := slices.Contains(stanzas, "scrypt")
	var err error
	switch {
	case pass.used:
		return ErrWrongPassphrase
	case len(keys.Identities) == 0 && keys.Passphrase == nil && scrypt:
		err = fmt.Errorf("%w (it is encrypted with a passphrase)", ErrNoKey)
	case len(keys.Identities) == 0 && keys.Passphrase == nil:
		err = ErrNoKey
	case scrypt:
		err = fmt.Errorf("%w: it is encrypted with a passphrase, not to a key", ErrWrongKey)
	case len(keys.Identities) == 0:
		err = fmt.Errorf("%w: it is encrypted to a key (%s), not with a passphrase", ErrWrongKey, stanzas[0])
	default:
		err = fmt.Errorf("%w (recipient types: %s)", ErrWrongKey, joinUnique(stanzas))
	}
	return &KeyError{err: err, Passphrase: scrypt}
}

func joinUnique(s []string) string {
	s = slices.Compact(slices.Sorted(slices.Values(s)))
	var b bytes.Buffer
	for i, t := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t)
	}
	return b.String()
}

// passphraseIdentity asks for the passphrase only when the header holds an
// scrypt stanza, so a key-encrypted archive never prompts.
type passphraseIdentity struct {
	ask  func() ([]byte, error)
	used bool  // the passphrase was asked for and tried
	err  error // asking failed
}

func (p *passphraseIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if p.ask == nil || !slices.ContainsFunc(stanzas, func(s *age.Stanza) bool { return s.Type == "scrypt" }) {
		return nil, age.ErrIncorrectIdentity
	}
	pass, err := p.ask()
	if err != nil {
		p.err = err
		return nil, err
	}
	id, err := PassphraseIdentity(pass)
	if err != nil {
		p.err = err
		return nil, err
	}
	p.used = true
	return id.Unwrap(stanzas)
}

// ageReader names age's errors: a bare "chacha20poly1305: message
// authentication failed" does not say which layer broke.
type ageReader struct{ r io.Reader }

func (a *ageReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decrypting: archive is damaged or truncated: %w", err)
	}
	return n, err
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

func isZstd(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	// Skippable frames: magic 0x184D2A50 to 0x184D2A5F, little-endian.
	return string(b[:4]) == zstdMagic || (b[0]&0xf0 == 0x50 && string(b[1:4]) == "\x2a\x4d\x18")
}

// isTar accepts a ustar header, or the zero block that ends an archive (all
// of an archive of nothing).
func isTar(b []byte) bool {
	if len(b) >= tarMagicAt+len(tarMagic) && string(b[tarMagicAt:tarMagicAt+len(tarMagic)]) == tarMagic {
		return true
	}
	return len(b) >= tarMagicAt+len(tarMagic) && !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
