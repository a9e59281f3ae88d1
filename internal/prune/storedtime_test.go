package prune

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/retention"
)

// TestStoredTime: on append-only hosts a prune goes by the time the hosts
// stored each manifest, so two backups an intruder pushed today claiming
// to be from the future cannot push the real ones out of --keep-daily 3;
// on other hosts the manifests' word counts, and they do.
func TestStoredTime(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 3, 0, 0, 0, time.UTC) }
	type backup struct {
		id             string
		claimed, saved time.Time
	}
	var backups []backup
	for i, b := range []struct{ claimed, saved time.Time }{
		{day(1), day(1)}, {day(2), day(2)}, // real
		{day(30), day(3)}, {day(29), day(3)}, // bogus, pushed on the 3rd
	} {
		id := manifest.NewID("docs", b.claimed, [16]byte{byte(i + 1)})
		backups = append(backups, backup{id, b.claimed, b.saved})
	}
	plan := func(mode hostsfile.AppendOnly) Plan {
		var hosts []hostsfile.Host
		for _, dir := range []string{"/h1", "/h2", "/h3"} {
			hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: dir}, AppendOnly: mode})
		}
		cat := catalog.New(hosts, catalog.Options{})
		var listings []*catalog.Listing
		for _, h := range cat.Hosts() {
			l := &catalog.Listing{Host: h, Stored: map[string]time.Time{}}
			for _, b := range backups {
				m := &manifest.Manifest{Format: manifest.Format, Version: manifest.Version, ID: b.id, Name: "docs", Time: b.claimed, K: 2, N: 3}
				l.Manifests = append(l.Manifests, &catalog.Copy{Manifest: m, Sum: sha256.Sum256([]byte(b.id)), Host: h})
				l.Stored[manifest.ManifestPath(b.id)] = b.saved
			}
			listings = append(listings, l)
		}
		return Make(cat.Backups(listings), listings, retention.Policy{Daily: 3}, day(3).Add(time.Hour), 24*time.Hour)
	}
	admin := plan(hostsfile.AppendOnlyAdmin)
	for _, real := range backups[:2] {
		if _, ok := admin.Keep[real.id]; !ok {
			t.Errorf("append-only hosts: %s removed; kept %v", real.id, admin.Keep)
		}
	}
	if len(admin.Remove) != 1 {
		t.Errorf("append-only hosts: removed %d backups, want one of the two bogus ones (the 3rd keeps one)", len(admin.Remove))
	}
	plain := plan(hostsfile.NotAppendOnly)
	if _, ok := plain.Keep[backups[0].id]; ok {
		t.Errorf("plain hosts: the oldest backup kept, though the manifests' times make it the fourth day")
	}
}
