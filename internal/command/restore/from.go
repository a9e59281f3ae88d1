package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/seal"
	"github.com/bk-backup/bk/internal/seek"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/units"
)

// fromFlags pick a backup on the hosts for --from.
func fromFlags() []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringSliceFlag{Name: "from", Usage: "restore (or with -t, list) straight from the hosts of the hosts file (or host folder) `HOSTS`, reading only what the PATTERNs select (a listing, the catalogues); repeatable"},
		&ucli.StringFlag{Name: "backup", Usage: "with --from: restore the backup with this `ID` rather than the newest"},
		&ucli.StringFlag{Name: "name", Usage: "with --from: restore the newest backup of this `NAME` (bk-push --name)"},
		&ucli.StringFlag{Name: "before", Usage: "with --from: restore the newest backup made before `TIME` (2026-11-29 or RFC 3339)"},
	}, connect.Flags()...)
}

// restoreFrom restores (or with list, lists) what the patterns select from
// the backup --from, --name, --backup and --before (given as before) pick
// on the hosts: with its chain, reading only the stripes that hold the
// selected entries (a listing, the catalogues), or, for a backup without a
// catalogue, the whole chain as bk-join | bk-restore does.
func restoreFrom(ctx context.Context, env *cli.Env, c *ucli.Context, before time.Time, keys seal.Keys, dir string, opts archive.RestoreOptions, list bool) (archive.RestoreStats, shard.JoinReport, error) {
	var report shard.JoinReport
	cat, b, listings, err := connect.Find(ctx, env, c, c.StringSlice("from"), catalog.Query{ID: c.String("backup"), Name: c.String("name"), Before: before})
	if cat != nil {
		defer cat.Close()
	}
	var notFound *catalog.NotFoundError
	if errors.As(err, &notFound) {
		return archive.RestoreStats{}, report, cli.WithHint(err, "bk-ls HOSTS lists the backups found")
	}
	if err != nil {
		return archive.RestoreStats{}, report, err
	}
	chain, more, err := cat.Chain(ctx, b.Manifest)
	if err != nil {
		return archive.RestoreStats{}, report, err
	}
	listings = append(listings, more...)
	jopts := shard.JoinOptions{Warn: env.Msg.Warnf, Note: env.Msg.Notef}

	var stored []*seek.Stored
	defer func() {
		for _, s := range stored {
			s.Close()
		}
	}()
	var whole *seek.NotSeekableError
	for _, m := range chain {
		s, err := seek.OpenStored(ctx, cat, m, listings, keys, jopts)
		if errors.As(err, &whole) {
			break
		}
		if err != nil {
			return archive.RestoreStats{}, report, err
		}
		stored = append(stored, s)
	}
	read := func(members archive.Members) (archive.RestoreStats, error) {
		if list {
			return archive.ListChain(ctx, members, env.Stdout, opts.Patterns, env.Msg.Warnf)
		}
		return archive.ExtractChain(ctx, members, dir, opts)
	}
	if whole != nil {
		env.Msg.Notef("reading the backup whole: %v", whole)
		return joinWhole(ctx, cat, chain, listings, keys, jopts, read)
	}
	archives := make([]*seek.Archive, len(stored))
	for i, s := range stored {
		archives[i] = s.Archive
	}
	var stats archive.RestoreStats
	if list {
		env.Msg.Notef("listing backup %s from the catalogues of its chain", b.ID)
		stats, err = seek.List(ctx, archives, env.Stdout, opts.Patterns)
	} else {
		env.Msg.Notef("restoring from backup %s, reading only the selected entries", b.ID)
		stats, err = seek.Restore(ctx, archives, dir, opts)
	}
	var fetched, total int64
	for i, s := range stored {
		st := s.Shares.Stats()
		fetched += st.Fetched
		total += st.ShareBytes
		addShares(&report, s.Shares.Report(), chain[i], len(chain) > 1)
	}
	env.Msg.Notef("read %s of the %s of shares (%d of %d bytes)", units.Bytes(fetched), units.Bytes(total), fetched, total)
	return stats, report, err
}

// joinWhole gives read the whole chain, each backup rebuilt from its
// shares as bk-join does, to restore or list as bk-restore reads it.
func joinWhole(ctx context.Context, cat *catalog.Catalog, chain []*manifest.Manifest, listings []*catalog.Listing, keys seal.Keys, jopts shard.JoinOptions, read func(archive.Members) (archive.RestoreStats, error)) (archive.RestoreStats, shard.JoinReport, error) {
	var report shard.JoinReport
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	i := 0
	var pr *io.PipeReader
	var done chan struct{}
	var stream io.ReadCloser
	finish := func() {
		if stream != nil {
			stream.Close()
			stream = nil
		}
		if pr != nil {
			pr.Close()
			<-done
			pr = nil
		}
	}
	defer finish()
	members := func() (string, io.Reader, error) {
		finish()
		if i == len(chain) {
			return "", nil, io.EOF
		}
		m := chain[i]
		i++
		sources, err := cat.Sources(m, listings)
		if err != nil {
			return m.ID, nil, err
		}
		var pw *io.PipeWriter
		pr, pw = io.Pipe()
		done = make(chan struct{})
		go func() {
			defer close(done)
			r, err := catalog.Join(ctx, m, sources, pw, jopts)
			addShares(&report, r, m, len(chain) > 1)
			pw.CloseWithError(err)
		}()
		s, _, err := seal.Open(pr, keys)
		if err != nil {
			return m.ID, nil, fmt.Errorf("backup %s: %w", m.ID, err)
		}
		stream = s
		return m.ID, s, nil
	}
	stats, err := read(members)
	finish()
	return stats, report, err
}

// addShares adds one backup's missing and damaged shares to the report of
// a restore, each named with its set when the restore reads a chain: every
// backup of it has a "share 2".
func addShares(report *shard.JoinReport, r shard.JoinReport, m *manifest.Manifest, chained bool) {
	name := func(shares []string) []string {
		if !chained {
			return shares
		}
		named := make([]string, len(shares))
		for i, s := range shares {
			named[i] = s + " of set " + m.SetID[:8]
		}
		return named
	}
	report.Missing = append(report.Missing, name(r.Missing)...)
	report.Damaged = append(report.Damaged, name(r.Damaged)...)
}

// degradedShares says which shares a restore from the hosts did without.
func degradedShares(r shard.JoinReport) string {
	var parts []string
	if len(r.Missing) > 0 {
		parts = append(parts, "missing "+strings.Join(r.Missing, ", "))
	}
	if len(r.Damaged) > 0 {
		parts = append(parts, "bad "+strings.Join(r.Damaged, ", "))
	}
	return strings.Join(parts, "; ")
}
