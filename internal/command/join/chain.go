package join

import (
	"context"
	"fmt"
	"io"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/chain"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/units"
)

// chainOf is the chain that restores m: its ancestors as the manifests on
// the hosts give them, each checked against what m pins (set ID, stream
// hash), then m itself.
func (s *sources) chainOf(ctx context.Context, m *manifest.Manifest) ([]*manifest.Manifest, error) {
	if !m.Incremental() {
		return []*manifest.Manifest{m}, nil
	}
	if !s.hosts {
		if err := s.hostsOf(m); err != nil {
			return nil, err
		}
	}
	chain, listings, err := s.cat.Chain(ctx, m)
	if err != nil {
		return nil, err
	}
	s.listings = append(s.listings, listings...)
	return chain, nil
}

// joinChain writes a chain stream: each backup of the chain rebuilt and
// checked against its manifest, in order.
func (s *sources) joinChain(ctx context.Context, env *cli.Env, backups []*manifest.Manifest, w io.Writer, opts shard.JoinOptions) (shard.JoinReport, error) {
	var all shard.JoinReport
	if err := chain.WriteHeader(w, len(backups)); err != nil {
		return all, err
	}
	for _, m := range backups {
		sources, err := s.cat.Sources(m, s.listings)
		if err != nil {
			return all, fmt.Errorf("backup %s: %w", m.ID, err)
		}
		if err := chain.WriteMember(w, m.ID, m.StreamSize); err != nil {
			return all, err
		}
		env.Msg.Notef("joining backup %s of the chain (%s)", m.ID, units.Bytes(m.StreamSize))
		report, err := catalog.Join(ctx, m, sources, w, opts)
		if err != nil {
			return report, err
		}
		all.Missing = append(all.Missing, report.Missing...)
		all.Damaged = append(all.Damaged, report.Damaged...)
	}
	return all, nil
}

// hostsOf makes the hosts of m's shares the catalog's, to look for its
// ancestors there when only a manifest was given.
func (s *sources) hostsOf(m *manifest.Manifest) error {
	var hosts []hostsfile.Host
	for _, sh := range m.Shares {
		loc, err := remote.ParseLocation(sh.Host, "")
		if err != nil {
			return fmt.Errorf("backup %s: share %d: %w", m.ID, sh.Index, err)
		}
		hosts = append(hosts, hostsfile.Host{Location: loc})
	}
	s.cat.Close()
	s.cat = catalog.New(hosts, s.opts)
	s.hosts = true
	return nil
}
