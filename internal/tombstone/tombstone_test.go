package tombstone

import (
	"strings"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
)

func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 29, 5, 15, 0, 0, time.UTC)
	m := &manifest.Manifest{ID: "home-20261121T035200Z-8c01d2aa", K: 2, N: 3,
		SetID: "8c01d2aa0c5d47a8b1e04c1f2a9d6b70", StreamHash: strings.Repeat("5d", 32)}
	data, err := For(m, at).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil || !got.Of(m) || !got.Pruned.Equal(at) {
		t.Fatalf("Parse(%s) = %+v, %v", data, got, err)
	}
	if got.Expired(at.Add(Lifetime)) || !got.Expired(at.Add(Lifetime+time.Second)) {
		t.Errorf("expiry not at %v", Lifetime)
	}
	other := *m
	other.SetID = strings.Repeat("00", 16)
	if got.Of(&other) {
		t.Errorf("a tombstone speaks of another set under the same ID")
	}
	for _, bad := range []string{
		strings.Replace(string(data), `"version": 1`, `"version": 2`, 1),
		strings.Replace(string(data), `"format": "bk-tombstone"`, `"format": "bk-manifest"`, 1),
		strings.Replace(string(data), `"k": 2`, `"k": 4`, 1),
		strings.Replace(string(data), m.ID, "../x", 1),
		`{"format": "bk-tombstone", "version": 1}`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse accepted %s", bad)
		}
	}
	if id, ok := ParsePath(Path(m.ID)); !ok || id != m.ID {
		t.Errorf("ParsePath(Path) = %q, %v", id, ok)
	}
	if _, ok := ParsePath("x.tombstone.json"); ok {
		t.Errorf("ParsePath took a name that is no backup ID")
	}
}
