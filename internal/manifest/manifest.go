// Package manifest is what a backup is and where its shares went: the JSON
// file bk-push writes to every host that stored a share, the backup's ID,
// and the names files take on a host. Section 5 of docs/FORMAT.md describes it.
package manifest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/blake3"
)

// Format and Version identify a manifest. Version is the major version:
// fields added later are optional, and readers of the same major version
// ignore the ones they do not know.
const (
	Format = "bk-manifest"
	// Version is the version bk writes: each share pinned by the BLAKE3
	// of its file without the blocks (MetaBLAKE3), which its records'
	// checksums pin, so neither bk-push nor bk-repair hashes a block a
	// second time; an incremental backup has chain fields.
	Version = 4
	// Version1, VersionIncremental and Version3 are read, never written
	// by bk-push: shares pinned by the SHA-256 of the whole file, version
	// 2 an incremental backup's (so that readers of version 1 refuse it
	// rather than take it for a whole one), and version 3 by the BLAKE3
	// of the whole file. bk-repair writes a revision in its backup's
	// version.
	Version1           = 1
	VersionIncremental = 2
	Version3           = 3
)

// Manifest describes one backup.
type Manifest struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Time    time.Time `json:"time"`
	Label   string    `json:"label,omitempty"`
	// Parent is the ID of the backup an incremental one builds on.
	Parent string `json:"parent,omitempty"`
	// An incremental backup (version 2) names its chain, its level (1 for
	// the first incremental after the full backup) and every ancestor, the
	// full backup first, so a manifest the user trusts pins the chain.
	Chain     string     `json:"chain,omitempty"`
	Level     int        `json:"level,omitempty"`
	Ancestors []Ancestor `json:"ancestors,omitempty"`

	K          int    `json:"k"`
	N          int    `json:"n"`
	BlockSize  int    `json:"block_size"`
	SetID      string `json:"set_id"`
	StreamSize int64  `json:"stream_size"` // bytes of the stream bk-split read
	StreamHash string `json:"stream_hash"` // as the shares' trailers record it

	// Revision counts the manifests of one backup: absent (or 1) in the
	// one bk-push writes, 2 and up in those bk-repair writes beside it
	// when shares moved. A revision differs from the first in Shares
	// alone.
	Revision int `json:"revision,omitempty"`

	// Shares lists the shares that were stored, by index; a share whose
	// host failed is absent.
	Shares []Share `json:"shares"`
}

// Ancestor is a backup an incremental one needs, as its manifest says.
type Ancestor struct {
	ID         string `json:"id"`
	SetID      string `json:"set_id"`
	StreamHash string `json:"stream_hash"`
}

// Share is one stored share.
type Share struct {
	Index int    `json:"index"`
	Host  string `json:"host"` // the destination URL, as remote.Location.URL writes it
	Path  string `json:"path"` // slash path under the host's folder
	Size  int64  `json:"size"`
	// The hash that pins the share file, in hex, one of three by version
	// (Manifest.Pin): in version 4 MetaBLAKE3, the BLAKE3-256 of the
	// file without its blocks (shard.MetaHash); in version 3 BLAKE3, of
	// the whole file; in versions 1 and 2 SHA256, of the whole file. The
	// others are empty.
	MetaBLAKE3 string `json:"meta_blake3,omitempty"`
	BLAKE3     string `json:"blake3,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	// ObjectVersion names the version of the share file that its upload
	// stored, on a host that keeps every version of a file (an S3 bucket
	// with versioning on); readers of the share on Host ask for it, so
	// that what was stored under Path since does not count. Empty
	// elsewhere, and in manifests of bk before it.
	ObjectVersion string `json:"object_version,omitempty"`
}

// Sum is the share file's hash, in hex, whichever the manifest's version
// uses.
func (s Share) Sum() string { return cmp.Or(s.MetaBLAKE3, s.BLAKE3, s.SHA256) }

// Pin is how a manifest pins its share files.
type Pin int

const (
	// PinMeta: the BLAKE3 of the file without its blocks (version 4),
	// each block checked against its own checksum.
	PinMeta Pin = iota
	// PinBLAKE3: the BLAKE3 of the whole file (version 3).
	PinBLAKE3
	// PinSHA256: the SHA-256 of the whole file (versions 1 and 2).
	PinSHA256
)

// String names the hash in messages.
func (p Pin) String() string {
	switch p {
	case PinMeta:
		return "meta BLAKE3"
	case PinBLAKE3:
		return "BLAKE3"
	}
	return "SHA-256"
}

// WholeFile returns the hash of the whole file that p takes, nil for
// PinMeta.
func (p Pin) WholeFile() hash.Hash {
	switch p {
	case PinBLAKE3:
		return blake3.New()
	case PinSHA256:
		return sha256.New()
	}
	return nil
}

// Pin is how m pins its share files: by their MetaBLAKE3, BLAKE3 or
// SHA256.
func (m *Manifest) Pin() Pin {
	switch {
	case m.Version >= Version:
		return PinMeta
	case m.Version == Version3:
		return PinBLAKE3
	}
	return PinSHA256
}

// SetSum records sum, the share file's hash as m.Pin takes it, in s.
func (m *Manifest) SetSum(s *Share, sum []byte) {
	s.MetaBLAKE3, s.BLAKE3, s.SHA256 = "", "", ""
	h := hex.EncodeToString(sum)
	switch m.Pin() {
	case PinMeta:
		s.MetaBLAKE3 = h
	case PinBLAKE3:
		s.BLAKE3 = h
	default:
		s.SHA256 = h
	}
}

// sumField is the field of s that m.Pin fills, and whether the others
// are empty.
func (m *Manifest) sumField(s Share) (string, bool) {
	switch m.Pin() {
	case PinMeta:
		return s.MetaBLAKE3, s.BLAKE3 == "" && s.SHA256 == ""
	case PinBLAKE3:
		return s.BLAKE3, s.MetaBLAKE3 == "" && s.SHA256 == ""
	}
	return s.SHA256, s.MetaBLAKE3 == "" && s.BLAKE3 == ""
}

// Incremental reports whether the backup is an incremental one that names
// its chain: version 2, or a later one with chain fields.
func (m *Manifest) Incremental() bool { return m.Level > 0 }

// known reports whether this bk reads manifests of version v.
func known(v int) bool { return v >= Version1 && v <= Version }

// Marshal encodes m as indented JSON ending in a newline.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes and checks a manifest. Unknown fields are ignored, so a
// newer bk of the same major version may add some.
func Parse(data []byte) (*Manifest, error) {
	// One pass for a manifest that reads; the head alone, for the error,
	// only for one that does not (a chain's manifest lists every ancestor,
	// and the catalog reads every manifest of a name).
	m := new(Manifest)
	if err := json.Unmarshal(data, m); err == nil && m.Format == Format && known(m.Version) {
		if err := m.Check(); err != nil {
			return nil, fmt.Errorf("damaged manifest: %w", err)
		}
		return m, nil
	}
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("not a bk manifest: %w", err)
	}
	if head.Format != Format {
		return nil, fmt.Errorf("not a bk manifest (format %q)", head.Format)
	}
	if !known(head.Version) {
		return nil, fmt.Errorf("manifest version %d, this bk reads versions %d to %d", head.Version, Version1, Version)
	}
	m = new(Manifest)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("damaged manifest: %w", err)
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("damaged manifest: %w", err)
	}
	return m, nil
}

// Sniff reports whether data, the start of a file, looks like JSON (and so
// is a manifest rather than a share or a hosts file, which cannot start
// with '{').
func Sniff(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

// Check reports the first inconsistency in m.
func (m *Manifest) Check() error {
	switch {
	case m.Format != Format || !known(m.Version):
		return fmt.Errorf("format %q version %d, want %q version %d to %d", m.Format, m.Version, Format, Version1, Version)
	case CheckName(m.Name) != nil:
		return CheckName(m.Name)
	case m.Time.IsZero():
		return errors.New("no time")
	case m.K < 1 || m.N < m.K || m.N > 256:
		return fmt.Errorf("k=%d n=%d out of range", m.K, m.N)
	case m.BlockSize <= 0:
		return fmt.Errorf("block size %d out of range", m.BlockSize)
	case !isHex(m.SetID, 16):
		return fmt.Errorf("bad set ID %q", m.SetID)
	case m.StreamSize < 0:
		return errors.New("negative stream size")
	case !isHex(m.StreamHash, 32):
		return fmt.Errorf("bad stream hash %q", m.StreamHash)
	case m.Revision < 0:
		return fmt.Errorf("revision %d", m.Revision)
	case m.Parent != "" && !validID(m.Parent):
		return fmt.Errorf("bad parent ID %q", m.Parent)
	}
	if name, _, ok := ParseID(m.ID); !ok || name != m.Name {
		return fmt.Errorf("ID %q does not fit name %q", m.ID, m.Name)
	}
	if err := m.checkChain(); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, s := range m.Shares {
		switch {
		case s.Index < 0 || s.Index >= m.N:
			return fmt.Errorf("share index %d of %d", s.Index, m.N)
		case seen[s.Index]:
			return fmt.Errorf("share %d listed twice", s.Index)
		case s.Host == "":
			return fmt.Errorf("share %d: no host", s.Index)
		case !validPath(s.Path):
			return fmt.Errorf("share %d: bad path %q", s.Index, s.Path)
		case s.Size < 0:
			return fmt.Errorf("share %d: negative size", s.Index)
		case !m.hasOwnSum(s):
			return fmt.Errorf("share %d: bad hash %q (a %s alone in version %d)", s.Index, s.Sum(), m.Pin(), m.Version)
		case !validObjectVersion(s.ObjectVersion):
			return fmt.Errorf("share %d: bad object version %q", s.Index, s.ObjectVersion)
		}
		seen[s.Index] = true
	}
	return nil
}

// hasOwnSum reports whether s carries the hash of m's version, and no
// other.
func (m *Manifest) hasOwnSum(s Share) bool {
	sum, alone := m.sumField(s)
	return alone && isHex(sum, 32)
}

// validObjectVersion accepts what S3 makes a version ID of: up to 1024
// printable ASCII characters, none of them a space.
func validObjectVersion(v string) bool {
	if len(v) > 1024 {
		return false
	}
	for _, c := range []byte(v) {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == n
}

// validPath accepts a clean relative slash path: a manifest from a host
// must not send a reader outside the host's folder.
func validPath(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// validName keeps backup names safe as file names on every host: up to
// 64 of [A-Za-z0-9_.-], the first a letter or digit. It and splitID test
// by hand what a regexp would: the catalog checks every ancestor ID of
// every manifest it reads, and a regexp's matching was a third of Parse.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 || !isAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// CheckName reports whether name can name backups.
func CheckName(name string) error {
	if !validName(name) {
		return fmt.Errorf("bad backup name %q: use up to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

const timeLayout = "20060102T150405Z"

// idTail is what NewID puts after the name: "-", the time, "-", 8 hex
// digits.
const idTail = 1 + len(timeLayout) + 1 + 8

// splitID splits id into its name and time stamp, when it is laid out as
// NewID lays IDs out: name-20060102T150405Z-0123abcd.
func splitID(id string) (name, stamp string, ok bool) {
	if len(id) <= idTail {
		return "", "", false
	}
	name, tail := id[:len(id)-idTail], id[len(id)-idTail:]
	stamp = tail[1 : 1+len(timeLayout)]
	if tail[0] != '-' || tail[1+len(timeLayout)] != '-' || !validName(name) || !isStamp(stamp) {
		return "", "", false
	}
	for _, c := range []byte(tail[2+len(timeLayout):]) {
		if !isDigit(c) && (c < 'a' || c > 'f') {
			return "", "", false
		}
	}
	return name, stamp, true
}

// isStamp reports whether s has timeLayout's shape: 8 digits, T, 6
// digits, Z.
func isStamp(s string) bool {
	for i := range len(s) {
		switch i {
		case 8:
			if s[i] != 'T' {
				return false
			}
		case 15:
			if s[i] != 'Z' {
				return false
			}
		default:
			if !isDigit(s[i]) {
				return false
			}
		}
	}
	return len(s) == len(timeLayout)
}

// validID reports whether id is laid out as NewID lays IDs out.
func validID(id string) bool {
	_, _, ok := splitID(id)
	return ok
}

// NewID names a backup: its name, the UTC time to the second, and the
// first 8 hex digits of its set ID, so two backups started in the same
// second still differ.
func NewID(name string, t time.Time, setID [16]byte) string {
	return name + "-" + t.UTC().Format(timeLayout) + "-" + hex.EncodeToString(setID[:4])
}

// ParseID splits an ID into its name and time.
func ParseID(id string) (name string, t time.Time, ok bool) {
	name, stamp, ok := splitID(id)
	if !ok {
		return "", time.Time{}, false
	}
	t, err := time.Parse(timeLayout, stamp)
	return name, t, err == nil
}

// On a host, every file of a backup sits in the host's folder, named after
// the backup's ID, so one listing shows all backups and sorting the names
// of one backup name sorts them by time.

// ManifestSuffix ends a manifest's file name.
const ManifestSuffix = ".manifest.json"

// ManifestPath is where a backup's manifest is stored on a host.
func ManifestPath(id string) string { return id + ManifestSuffix }

// SharePath is where share index of a backup is stored on a host.
func SharePath(id string, index int) string { return id + ".share" + strconv.Itoa(index) }

// RevisionPath is where revision rev of a backup's manifest is stored:
// the first as ManifestPath, the later ones as ID.rREV.manifest.json
// beside it, so no manifest is ever replaced.
func RevisionPath(id string, rev int) string {
	if rev <= 1 {
		return ManifestPath(id)
	}
	return id + ".r" + strconv.Itoa(rev) + ManifestSuffix
}

// Rev is a manifest's revision, 1 for the first.
func (m *Manifest) Rev() int { return max(1, m.Revision) }

// ParseManifestPath returns the ID of the backup whose manifest (of
// revision rev) is named base, or false when base is not a manifest's name.
func ParseManifestPath(base string) (id string, rev int, ok bool) {
	id, ok = strings.CutSuffix(base, ManifestSuffix)
	if !ok {
		return "", 0, false
	}
	rev = 1
	// A revision's suffix, .rN: N of 1 to 9 digits, the first not 0 (by
	// hand, as splitID: no regexp compiled at every tool start).
	if i := strings.LastIndex(id, ".r"); i >= 0 {
		if n := id[i+2:]; len(n) >= 1 && len(n) <= 9 && n[0] != '0' && strings.Trim(n, "0123456789") == "" {
			id = id[:i]
			rev, _ = strconv.Atoi(n)
			if rev < 2 {
				return "", 0, false
			}
		}
	}
	if !validID(id) {
		return "", 0, false
	}
	return id, rev, true
}

// IDFromManifestPath returns the ID of the backup whose manifest (of any
// revision) is named base, or false when base is not a manifest's name.
func IDFromManifestPath(base string) (string, bool) {
	id, _, ok := ParseManifestPath(base)
	return id, ok
}

// Newer orders manifests newest first: by time; within one second (times
// are whole seconds) by level, since a backup has one ancestor more than its
// parent; then by ID. Without the middle rule a rerun within the second
// could sort an incremental before its own parent, and retention would keep
// the parent as "the newest of the day" and remove the backup the next one
// builds on.
func Newer(a, b *Manifest) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.Ancestors), len(a.Ancestors)); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// checkChain checks the fields of an incremental backup: none in version 1,
// all in version 2, all or none from version 3 on; the last ancestor the
// parent, one ancestor per level.
func (m *Manifest) checkChain() error {
	none := m.Chain == "" && m.Level == 0 && len(m.Ancestors) == 0
	switch {
	case m.Version == Version1 && !none:
		return errors.New("chain fields in a version 1 manifest")
	case m.Version >= Version3 && none:
		return nil
	case m.Version == Version1:
		return nil
	}
	switch {
	case !isHex(m.Chain, 16):
		return fmt.Errorf("bad chain ID %q", m.Chain)
	case m.Level < 1 || len(m.Ancestors) != m.Level:
		return fmt.Errorf("level %d with %d ancestors", m.Level, len(m.Ancestors))
	case m.Ancestors[len(m.Ancestors)-1].ID != m.Parent:
		return fmt.Errorf("parent %q is not the last ancestor", m.Parent)
	}
	for _, a := range m.Ancestors {
		if !validID(a.ID) || !isHex(a.SetID, 16) || !isHex(a.StreamHash, 32) {
			return fmt.Errorf("bad ancestor %q", a.ID)
		}
	}
	return nil
}

// SortNewestFirst sorts ms newest first.
func SortNewestFirst(ms []*Manifest) { slices.SortFunc(ms, Newer) }

// Full reports whether the backup stands alone, so that its size tells
// what the next backup of its name will need. Today a backup with a
// Parent is incremental; a later format may say so another way (a level).
func (m *Manifest) Full() bool { return m.Parent == "" }
