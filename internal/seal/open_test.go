package seal

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// tarOf is a small tar stream with one file holding data.
func tarOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encrypt(t testing.TB, data []byte, recipients ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Encrypt(&buf, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func armorOf(data []byte) []byte {
	var buf bytes.Buffer
	w := armor.NewWriter(&buf)
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fastScrypt lowers the passphrase work factor for the test, so passphrase
// tests take milliseconds; TestPassphraseDefaultWorkFactor checks the real one.
func fastScrypt(t *testing.T) {
	old := scryptLogN
	scryptLogN = 10
	t.Cleanup(func() { scryptLogN = old })
}

func openAll(t *testing.T, stream []byte, keys Keys) ([]byte, Layers, error) {
	t.Helper()
	r, layers, err := Open(bytes.NewReader(stream), keys)
	if err != nil {
		return nil, layers, err
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	return got, layers, err
}

func TestOpenLayers(t *testing.T) {
	fastScrypt(t)
	id := newIdentity(t)
	pass, _ := PassphraseRecipient([]byte("correct horse"))
	tarball := tarOf(t, testData(3*ChunkSize))
	z := compress(t, tarball)
	keys := Keys{
		Identities: []age.Identity{id},
		Passphrase: func() ([]byte, error) { return []byte("correct horse"), nil },
	}
	for _, tc := range []struct {
		name   string
		stream []byte
		want   Layers
	}{
		{"tar", tarball, Layers{}},
		{"zstd+tar", z, Layers{Compressed: true}},
		{"age+tar", encrypt(t, tarball, id.Recipient()), Layers{Encrypted: true}},
		{"age+zstd+tar", encrypt(t, z, id.Recipient()), Layers{Encrypted: true, Compressed: true}},
		{"armored age+zstd+tar", armorOf(encrypt(t, z, id.Recipient())), Layers{Encrypted: true, Compressed: true}},
		{"passphrase age+zstd+tar", encrypt(t, z, pass), Layers{Encrypted: true, Passphrase: true, Compressed: true}},
		{"skippable frame+zstd+tar", append([]byte("\x5e\x2a\x4d\x18\x03\x00\x00\x00abc"), z...), Layers{Compressed: true}},
		{"empty tar", make([]byte, 10240), Layers{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, layers, err := openAll(t, tc.stream, keys)
			if err != nil {
				t.Fatal(err)
			}
			if layers != tc.want {
				t.Errorf("layers %+v, want %+v", layers, tc.want)
			}
			want := tarball
			if tc.name == "empty tar" {
				want = tc.stream
			}
			if !bytes.Equal(got, want) {
				t.Error("content differs")
			}
		})
	}
}

func TestOpenNotAnArchive(t *testing.T) {
	for name, stream := range map[string][]byte{
		"empty":           nil,
		"text":            []byte("hello, this is not an archive\n"),
		"random":          testData(4096)[:1000],
		"zstd of text":    compress(t, []byte(strings.Repeat("not tar ", 100))),
		"zstd of nothing": compress(t, nil),
	} {
		_, _, err := Open(bytes.NewReader(stream), Keys{})
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	_, _, err := Open(strings.NewReader("garbage garbage garbage"), Keys{})
	if err == nil || err.Error() != "not an archive bk can read (neither age, zstd nor tar)" {
		t.Errorf("garbage: %v", err)
	}
}

// A wrong key is Open's error, before any data, and never prompts.
func TestOpenWrongKeyBeforeData(t *testing.T) {
	fastScrypt(t)
	id, other := newIdentity(t), newIdentity(t)
	stream := encrypt(t, compress(t, tarOf(t, []byte("secret"))), id.Recipient())
	asked := false
	_, _, err := openAll(t, stream, Keys{Identities: []age.Identity{other}, Passphrase: func() ([]byte, error) {
		asked = true
		return []byte("x"), nil
	}})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: got %v", err)
	}
	if asked {
		t.Error("asked for a passphrase for a key-encrypted archive")
	}
	if err.Error() != "no identity matches this archive (recipient types: X25519)" {
		t.Errorf("message: %q", err)
	}
}

func TestOpenPassphrase(t *testing.T) {
	fastScrypt(t)
	pass, _ := PassphraseRecipient([]byte("right"))
	stream := encrypt(t, tarOf(t, []byte("secret")), pass)
	ask := func(p string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(p), nil } }

	_, _, err := openAll(t, stream, Keys{Passphrase: ask("wrong")})
	if !errors.Is(err, ErrWrongPassphrase) || err.Error() != "wrong passphrase" {
		t.Errorf("wrong passphrase: got %v", err)
	}
	_, _, err = openAll(t, stream, Keys{Identities: []age.Identity{newIdentity(t)}})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("key for a passphrase archive: got %v", err)
	}
	failing := errors.New("terminal gone")
	_, _, err = openAll(t, stream, Keys{Passphrase: func() ([]byte, error) { return nil, failing }})
	if !errors.Is(err, failing) {
		t.Errorf("failing prompt: got %v", err)
	}
	got, layers, err := openAll(t, stream, Keys{Identities: []age.Identity{newIdentity(t)}, Passphrase: ask("right")})
	if err != nil || !layers.Passphrase || !bytes.Equal(got, tarOf(t, []byte("secret"))) {
		t.Errorf("right passphrase: %v %+v", err, layers)
	}
}

// The one check of the default work factor at real strength: one scrypt
// run (about a second). Decrypting is tested at a low factor elsewhere.
func TestPassphraseDefaultWorkFactor(t *testing.T) {
	// The default is age's, and the header names the factor in force:
	// checked with another factor, as a stream at 2^18 costs a second of
	// CPU and 256 MiB to write.
	if scryptLogN != 18 {
		t.Fatalf("passphrase work factor 2^%d, want age's 2^18", scryptLogN)
	}
	scryptLogN = 11
	t.Cleanup(func() { scryptLogN = 18 })
	pass, _ := PassphraseRecipient([]byte("right"))
	stream := encrypt(t, tarOf(t, nil), pass)
	if !bytes.Contains(stream, []byte("-> scrypt ")) || !bytes.Contains(stream, []byte(" 11\n")) {
		t.Fatalf("header lacks an scrypt stanza with work factor 11:\n%.200s", stream)
	}
	if _, err := PassphraseRecipient(nil); err == nil {
		t.Error("empty passphrase accepted")
	}
}

func TestOpenNoKey(t *testing.T) {
	fastScrypt(t)
	pass, _ := PassphraseRecipient([]byte("p"))
	for name, stream := range map[string][]byte{
		"key":        encrypt(t, tarOf(t, nil), newIdentity(t).Recipient()),
		"passphrase": encrypt(t, tarOf(t, nil), pass),
	} {
		_, _, err := openAll(t, stream, Keys{})
		var ke *KeyError
		if !errors.Is(err, ErrNoKey) || !errors.As(err, &ke) {
			t.Errorf("%s: got %v", name, err)
			continue
		}
		if ke.Passphrase != (name == "passphrase") {
			t.Errorf("%s: KeyError.Passphrase is %v", name, ke.Passphrase)
		}
	}
}

func TestOpenDamagedAge(t *testing.T) {
	id := newIdentity(t)
	keys := Keys{Identities: []age.Identity{id}}
	// Several age chunks (64 KiB each), so a cut can fall on a boundary.
	stream := encrypt(t, compress(t, tarOf(t, testData(300<<10))), id.Recipient())
	hdr := bytes.Index(stream, []byte("\n--- ")) + 60
	for _, cut := range []int{hdr + 10, hdr + 16 + 64<<10 + 16, len(stream) - 1, len(stream) - 17} {
		if _, _, err := openAll(t, stream[:cut], keys); err == nil {
			t.Errorf("truncated at %d of %d: no error", cut, len(stream))
		}
	}
	for _, off := range []int{10, hdr + 20, len(stream) / 2, len(stream) - 5} {
		flipped := bytes.Clone(stream)
		flipped[off] ^= 0x01
		if _, _, err := openAll(t, flipped, keys); err == nil {
			t.Errorf("bit flip at %d: no error", off)
		}
	}
}

func TestOpenRefusesHugeWindow(t *testing.T) {
	_, _, err := Open(bytes.NewReader(hugeWindowFrame()), Keys{})
	if err == nil || !strings.Contains(err.Error(), "window") {
		t.Fatalf("got %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	id := newIdentity(f)
	tarball := tarOf(f, []byte("hello"))
	f.Add(tarball)
	f.Add(compress(f, tarball))
	f.Add(encrypt(f, compress(f, tarball), id.Recipient()))
	f.Add(armorOf(encrypt(f, tarball, id.Recipient())))
	f.Add(hugeWindowFrame())
	keys := Keys{Identities: []age.Identity{id}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := Open(bytes.NewReader(data), keys)
		if err != nil {
			return
		}
		defer r.Close()
		// Bounded: a small input must not expand without limit.
		io.Copy(io.Discard, io.LimitReader(r, 64<<20))
	})
}
