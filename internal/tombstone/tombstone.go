// Package tombstone is the small file bk-prune leaves on each host it
// reached for each backup it removed, ID.tombstone.json: it tells a later
// run, and the readers, that the backup was pruned, so a host that was
// down during the prune and comes back with the backup's files neither
// brings the backup back nor keeps its files for ever. docs/FORMAT.md,
// section 5, says when tombstones count.
package tombstone

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
)

// Format and Version identify a tombstone. A reader refuses other major
// versions and ignores fields it does not know.
const (
	Format  = "bk-tombstone"
	Version = 1
)

// Suffix ends a tombstone's file name: ID.tombstone.json.
const Suffix = ".tombstone.json"

// Lifetime is how long a tombstone says something: readers ignore an
// older one and bk-prune removes it. A host away for longer keeps the
// pruned backup's files, listed as not counting.
const Lifetime = 90 * 24 * time.Hour

// MaxSize bounds what is read of a tombstone on a host.
const MaxSize = 16 << 10

// Tombstone says that a backup was pruned, and which backup: the set and
// stream its manifest named, so it speaks of that backup alone and not of
// another that a hostile host gave the same ID.
type Tombstone struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	ID         string    `json:"id"`
	K          int       `json:"k"`
	N          int       `json:"n"`
	SetID      string    `json:"set_id"`
	StreamHash string    `json:"stream_hash"`
	Pruned     time.Time `json:"pruned"` // when bk-prune removed the backup
}

// For is the tombstone of backup m, pruned at t.
func For(m *manifest.Manifest, t time.Time) *Tombstone {
	return &Tombstone{Format: Format, Version: Version, ID: m.ID, K: m.K, N: m.N,
		SetID: m.SetID, StreamHash: m.StreamHash, Pruned: t.UTC().Truncate(time.Second)}
}

// Of reports whether t speaks of backup m: the same ID, k, n, set and
// stream.
func (t *Tombstone) Of(m *manifest.Manifest) bool {
	return t.ID == m.ID && t.K == m.K && t.N == m.N && t.SetID == m.SetID && t.StreamHash == m.StreamHash
}

// Same reports whether t and u speak of the same backup, whenever each
// was written.
func (t *Tombstone) Same(u *Tombstone) bool {
	return t.ID == u.ID && t.K == u.K && t.N == u.N && t.SetID == u.SetID && t.StreamHash == u.StreamHash
}

// Expired reports whether t is older than Lifetime at now.
func (t *Tombstone) Expired(now time.Time) bool { return now.Sub(t.Pruned) > Lifetime }

// Marshal encodes t as indented JSON ending in a newline.
func (t *Tombstone) Marshal() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(t, "", "  ")
	return append(b, '\n'), err
}

// Parse decodes and checks a tombstone.
func Parse(data []byte) (*Tombstone, error) {
	t := new(Tombstone)
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("not a bk tombstone: %w", err)
	}
	if t.Format != Format {
		return nil, fmt.Errorf("not a bk tombstone (format %q)", t.Format)
	}
	if t.Version != Version {
		return nil, fmt.Errorf("tombstone version %d, this bk reads version %d", t.Version, Version)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("damaged tombstone: %w", err)
	}
	return t, nil
}

func (t *Tombstone) check() error {
	// A manifest of the same identity checks the same fields.
	m := manifest.Manifest{Format: manifest.Format, Version: manifest.Version, ID: t.ID, Time: time.Unix(1, 0),
		K: t.K, N: t.N, BlockSize: 1, SetID: t.SetID, StreamHash: t.StreamHash}
	m.Name, _, _ = manifest.ParseID(t.ID)
	switch {
	case t.Format != Format || t.Version != Version:
		return fmt.Errorf("format %q version %d, want %q version %d", t.Format, t.Version, Format, Version)
	case t.Pruned.IsZero():
		return errors.New("no time")
	}
	return m.Check()
}

// Path is where the tombstone of backup id is stored on a host.
func Path(id string) string { return id + Suffix }

// ParsePath returns the ID of the backup whose tombstone is named base,
// or false when base is not a tombstone's name.
func ParsePath(base string) (string, bool) {
	id, ok := strings.CutSuffix(base, Suffix)
	if !ok {
		return "", false
	}
	if _, _, ok := manifest.ParseID(id); !ok {
		return "", false
	}
	return id, true
}
