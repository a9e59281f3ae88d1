package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/blake3"
)

// memDeltas keeps chunk lists in memory, as the state does on disk.
type memDeltas map[string]*FileChunks

func (m memDeltas) Base(name string) *FileChunks     { return m[name] }
func (m memDeltas) Keep(name string, fc *FileChunks) { m[name] = fc }

func randBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// deltaPair packs src/big whole, then again after change, and returns both
// archives; the second holds a delta.
func deltaPair(t *testing.T, change func([]byte) []byte, opts PackOptions) (full, inc []byte, want []byte, d memDeltas) {
	t.Chdir(t.TempDir())
	os.Mkdir("src", 0o755)
	data := randBytes(5<<20, 1)
	if err := os.WriteFile("src/big", data, 0o644); err != nil {
		t.Fatal(err)
	}
	d = memDeltas{}
	full, _ = pack(t, []string{"src"}, PackOptions{Deltas: d})
	if d["src/big"] == nil || d["src/big"].Size != 5<<20 {
		t.Fatalf("no chunk list kept for src/big: %+v", d["src/big"])
	}
	want = change(data)
	if err := os.WriteFile("src/big", want, 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Deltas = d
	inc, _ = pack(t, []string{"src"}, opts)
	return full, inc, want, d
}

func overwrite(data []byte) []byte {
	out := bytes.Clone(data)
	copy(out[2<<20:], randBytes(100<<10, 2))
	return out
}

// A changed large file is stored as a delta a fraction of its size, which
// the chain restores exactly.
func TestDeltaRoundTrip(t *testing.T) {
	full, inc, want, _ := deltaPair(t, overwrite, PackOptions{})
	if len(inc) > 2<<20 || !bytes.Contains(inc, []byte("src/big"+DeltaSuffix)) {
		t.Fatalf("the incremental archive has %d bytes: no delta?", len(inc))
	}
	dir := filepath.Join(t.TempDir(), "out")
	st, err := ExtractChain(context.Background(), membersOf(full, inc), dir, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "src/big")); !bytes.Equal(got, want) {
		t.Fatal("the chain restored other bytes")
	}
	if _, err := os.Lstat(filepath.Join(dir, "src/big"+DeltaSuffix)); err == nil || st.Damaged != 0 {
		t.Fatalf("a delta file was left, or damage counted (%d)", st.Damaged)
	}
}

// A file that changes between the read that chunks it and the one that
// writes its new chunks is stored with what was read, marked damaged, left
// out of the chunk lists; the restore warns rather than fails.
func TestDeltaChangedWhileRead(t *testing.T) {
	var reads int64
	readContent = func(fd int, p string, b []byte) (int, error) {
		n, err := readFd(fd, p, b)
		if strings.HasSuffix(p, "big") {
			if reads += int64(n); reads > 5<<20 {
				for i := range b[:n] {
					b[i] ^= 0xff // the second read finds other bytes
				}
			}
		}
		return n, err
	}
	t.Cleanup(func() { readContent = readFd })
	var warned []string
	warn := func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }
	full, inc, _, d := deltaPair(t, func(b []byte) []byte { reads = 0; return overwrite(b) }, PackOptions{Warn: warn})
	// The list kept is still the full backup's.
	if d["src/big"] == nil || d["src/big"].Hash != blake3.Sum256(randBytes(5<<20, 1)) || len(warned) == 0 || !strings.Contains(warned[0], "changed while read") {
		t.Fatalf("warnings %q; chunk list %v", warned, d["src/big"])
	}
	warned = nil
	st, err := ExtractChain(context.Background(), membersOf(full, inc), filepath.Join(t.TempDir(), "out"), RestoreOptions{Warn: warn})
	if err != nil || st.Damaged != 1 || len(warned) != 1 || !strings.Contains(warned[0], "src/big: damaged when packed") {
		t.Fatalf("restore: %v, damaged %d, warnings %q", err, st.Damaged, warned)
	}
}

// rewriteDelta copies an archive, changing one PAX record of its delta.
func rewriteDelta(t *testing.T, archive []byte, key, value string) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	copyEntries(t, tw, archive, func(h *tar.Header) {
		if _, ok := h.PAXRecords[deltaRecord]; ok {
			h.PAXRecords[key] = value
		}
	})
	tw.Close()
	return out.Bytes()
}

// copyEntries writes the entries of archive to tw, each header through
// edit.
func copyEntries(t *testing.T, tw *tar.Writer, archive []byte, edit func(*tar.Header)) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		edit(h)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
}

// A delta whose result, or base, does not match its hash is refused,
// naming the file, and nothing is restored.
func TestDeltaRefusesMismatch(t *testing.T) {
	full, inc, _, _ := deltaPair(t, overwrite, PackOptions{})
	zero := strings.Repeat("00", 32)
	for _, tc := range []struct{ key, value, want string }{
		{deltaHash, zero, `src/big: the file the delta made does not match its BLAKE3`},
		{deltaBaseHash, zero, `archive entry "src/big.bk-delta": a delta of another version of src/big than the backups before it left`},
		{deltaSize, "5242881", `delta of src/big: makes 5242880 bytes, not 5242881`},
		{deltaRecord, "2", `a delta of version "2", not known to this bk`},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		_, err := ExtractChain(context.Background(), membersOf(full, rewriteDelta(t, inc, tc.key, tc.value)), dir, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want %q", tc.key, tc.value, err, tc.want)
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: the target was left behind", tc.key)
		}
	}
}
