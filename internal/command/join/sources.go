package join

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/units"
)

// hostFlags pick a backup when a SOURCE is a hosts file.
func hostFlags() []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "backup", Usage: "join the backup with this `ID` rather than the newest (with a hosts file)"},
		&ucli.StringFlag{Name: "name", Usage: "join the newest backup of this `NAME` (bk-push --name) (with a hosts file)"},
		&ucli.StringFlag{Name: "before", Usage: "join the newest backup made before `TIME` (2026-11-29 or RFC 3339) (with a hosts file)"},
		&ucli.BoolFlag{Name: "single", Usage: "output the chosen backup's own archive, a plain age(zstd(tar)) stream, even when it is incremental"},
		&ucli.BoolFlag{Name: "list", Usage: "list the backups whose manifests the SOURCEs hold or name, newest first, and exit"},
	}, connect.Flags()...)
}

// kind is what a SOURCE file holds, judged by its first bytes.
type kind int

const (
	kindShare kind = iota // a share file, a share stream, or unknown: shard handles it
	kindManifest
	kindHosts
)

func sniff(path string) (kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return kindShare, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.IsDir() {
		return kindShare, err
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return kindShare, err
	}
	head = head[:n]
	switch {
	case strings.HasPrefix(string(head), "bk-sh"):
		return kindShare, nil
	case manifest.Sniff(head):
		return kindManifest, nil
	case isText(head):
		return kindHosts, nil
	}
	return kindShare, nil
}

// isText tells a hosts file from binary data: printable UTF-8 lines.
func isText(b []byte) bool {
	for _, c := range string(b) {
		if c == 0xfffd || (c < ' ' && c != '\n' && c != '\t' && c != '\r') {
			return false
		}
	}
	return len(b) > 0
}

// sources is what the SOURCE arguments name: manifests given as files,
// the hosts of hosts files and of folders that hold manifests, and the
// rest (share files, folders of shares, a saved share stream).
type sources struct {
	given    []*manifest.Manifest
	cat      *catalog.Catalog
	opts     catalog.Options
	hosts    bool // a hosts file or a host folder was given
	listings []*catalog.Listing
	rest     []string
}

// openSources sorts the SOURCE arguments and, when hosts were given,
// lists what they hold: all manifests when a backup is to be picked among
// them, none when a manifest was given.
func openSources(ctx context.Context, env *cli.Env, c *ucli.Context, args []string) (*sources, error) {
	opts, err := connect.Options(env, c, false)
	if err != nil {
		return nil, err
	}
	s := &sources{opts: opts}
	var hostFiles []string
	var hosts []hostsfile.Host
	for _, arg := range args {
		if st, err := os.Stat(arg); err == nil && st.IsDir() {
			isHost, err := catalog.HoldsManifests(arg)
			if err != nil {
				return nil, err
			}
			if !isHost {
				s.rest = append(s.rest, arg)
				continue
			}
			abs, err := filepath.Abs(arg)
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: abs}})
			continue
		}
		k, err := sniff(arg)
		if err != nil {
			s.rest = append(s.rest, arg) // sourcesOf says what is wrong with it
			continue
		}
		switch k {
		case kindManifest:
			m, err := catalog.ReadManifestFile(arg)
			if err != nil {
				return nil, err
			}
			s.given = append(s.given, m)
		case kindHosts:
			hostFiles = append(hostFiles, arg)
			hs, err := hostsfile.ParseFile(arg)
			if err != nil {
				return nil, cli.WithHint(cli.AsUsage(err), "a SOURCE that is neither a share nor a manifest is read as a hosts file")
			}
			if len(hs) == 0 {
				return nil, cli.Usagef("no hosts in %s", arg)
			}
			hosts = append(hosts, hs...)
		default:
			s.rest = append(s.rest, arg)
		}
	}
	picking := c.String("backup") != "" || c.String("name") != "" || c.String("before") != ""
	switch {
	case picking && len(hosts) == 0:
		return nil, cli.Usagef("--backup, --name and --before pick a backup on the hosts of a hosts file; give one as SOURCE")
	case picking && len(s.given) > 0:
		return nil, cli.Usagef("--backup, --name and --before pick a backup on the hosts; a manifest given as SOURCE picks it already")
	}
	s.cat = catalog.New(hosts, opts)
	s.hosts = len(hosts) > 0
	// A backup to pick is found by pick, reading only the manifests it
	// needs; a list shows them all.
	if s.hosts && (len(s.given) > 0 || c.Bool("list")) {
		var only func(string) bool
		if !c.Bool("list") {
			only = func(string) bool { return false }
		}
		s.listings = s.cat.List(ctx, s.cat.Hosts(), only)
		connect.Skip(env, s.listings)
		connect.Damaged(env, s.listings)
	}
	return s, ctx.Err()
}

// pick is the backup to join: the manifests given, or the one on the
// hosts that --backup or --name names, else the newest there. nil when
// only shares were given.
func (s *sources) pick(ctx context.Context, env *cli.Env, c *ucli.Context) ([]*manifest.Manifest, error) {
	if len(s.given) > 0 || !s.hosts {
		return s.given, nil
	}
	t, err := cli.Time(c, "before")
	if err != nil {
		return nil, err
	}
	b, listings, err := connect.FindIn(ctx, env, s.cat, catalog.Query{ID: c.String("backup"), Name: c.String("name"), Before: t})
	s.listings = listings
	var notFound *catalog.NotFoundError
	if errors.As(err, &notFound) {
		return nil, cli.WithHint(err, "bk-join --list HOSTS lists the backups found")
	}
	if err != nil {
		return nil, err
	}
	env.Msg.Notef("joining backup %s (%s)", b.ID, units.Bytes(b.StreamSize))
	return []*manifest.Manifest{b.Manifest}, nil
}

// list prints the backups found, newest first.
func (s *sources) list(w io.Writer) error {
	backups := s.cat.Backups(s.listings)
	seen := map[string]bool{}
	for _, b := range backups {
		seen[b.ID] = true
	}
	for _, m := range s.given {
		if !seen[m.ID] {
			seen[m.ID] = true
			backups = append(backups, &catalog.Backup{Manifest: m, Counts: true})
		}
	}
	if len(backups) == 0 {
		return errors.New("no backup found")
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tK/N\tSIZE\tSHARES\tMANIFESTS\tLABEL")
	for _, b := range backups {
		label := b.Label
		if !b.Counts {
			label = "(does not count: " + b.Doubt + ") " + label
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%d\t%d\t%s\n", b.ID, b.Time.Format("2006-01-02 15:04:05Z"),
			b.K, b.N, units.Bytes(b.StreamSize), len(b.Shares), len(b.Holders), strings.TrimSpace(label))
	}
	return tw.Flush()
}

// listBackups is bk-join --list.
func listBackups(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	s, err := openSources(ctx, env, c, c.Args().Slice())
	if err != nil {
		return err
	}
	defer s.cat.Close()
	return s.list(env.Stdout)
}

// joinSources rebuilds the stream the SOURCE arguments name.
func joinSources(ctx context.Context, env *cli.Env, c *ucli.Context, w io.Writer, opts shard.JoinOptions) (shard.JoinReport, error) {
	s, err := openSources(ctx, env, c, c.Args().Slice())
	if err != nil {
		return shard.JoinReport{}, err
	}
	defer s.cat.Close()
	chosen, err := s.pick(ctx, env, c)
	if err != nil {
		return shard.JoinReport{}, err
	}
	if len(chosen) == 0 && len(s.rest) == 1 {
		if f, ok := streamFile(s.rest[0]); ok {
			defer f.Close()
			return shard.JoinStream(ctx, f, w, opts)
		}
	}
	if len(chosen) == 1 && !c.Bool("single") {
		backups, err := s.chainOf(ctx, chosen[0])
		if err != nil {
			return shard.JoinReport{}, err
		}
		if len(backups) > 1 {
			if len(s.rest) > 0 {
				return shard.JoinReport{}, cli.Usagef("backup %s is incremental: its chain is joined from the hosts, without share files", chosen[0].ID)
			}
			return s.joinChain(ctx, env, backups, w, opts)
		}
	}
	files, err := sourcesOf(s.rest)
	if err != nil {
		return shard.JoinReport{}, err
	}
	var all []shard.Source
	for _, m := range chosen {
		remote, err := s.cat.Sources(m, s.listings)
		if err != nil {
			return shard.JoinReport{}, err
		}
		all = append(all, remote...)
	}
	all = append(all, files...)
	if len(chosen) == 0 {
		return shard.Join(ctx, all, w, opts)
	}
	// With several manifests given, the shares of all count (shard
	// refuses to mix sets); the stream must be the first one's.
	return catalog.Join(ctx, chosen[0], all, w, opts)
}
