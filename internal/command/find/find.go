// Package find is the bk-find command: its flags and wiring.
package find

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/command/passphrase"
	"github.com/bk-backup/bk/internal/find"
	"github.com/bk-backup/bk/internal/index"
	"github.com/bk-backup/bk/internal/seek"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/units"
)

// Tool describes bk-find: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-find",
		Usage:     "find files in the backups on the hosts, from their catalogues alone",
		ArgsUsage: "-i KEY HOSTS... PATTERN",
		Description: `bk-find searches the catalogues of the backups on the hosts of the hosts
files (or host folders) for entries whose name matches PATTERN, and prints,
closest match first, the backup that stores each (ID and time), the entry's
size, modification time and path. Then bk-restore --from HOSTS --backup ID
-C DIR PATH restores it.

PATTERN is a fragment of the name or path ("taxes", "me/tax"), or a shell
glob ("*.pdf", "home/*/taxes*") matched against the base name or the whole
path. Case is ignored unless --case-sensitive. Closest first: the name
itself, then a glob on the name, a name that starts with the fragment, one
that holds it, a glob on the path, a path that holds it, and last a name
that holds the fragment's characters in order ("rprt" finds report.pdf);
then newer backups first, then by path.

Only the catalogues are read (docs/FORMAT.md, section 2): the few stripes of
each backup's shares that hold them, each checked as bk-join checks it, and
decrypted with the key. A catalogue lists what its backup stored: an
incremental backup stores only what changed, so a file unchanged since the
full backup is found in the full one (a restore of any later backup of the
chain restores it too, unless it was deleted since). A backup made before
bk-pack wrote catalogues cannot be searched: it is named in a warning
(restore it whole to look inside: bk-join HOSTS | bk-restore -t).

Only backups whose manifests count are searched (docs/FORMAT.md, section 5).
--json writes the matches as docs/FORMAT.md (section 8) describes.`,
		Flags: append([]ucli.Flag{
			&ucli.StringSliceFlag{Name: "identity", Aliases: []string{"i"}, Usage: "decrypt with the age identity or SSH private key in `FILE`; repeatable"},
			&ucli.BoolFlag{Name: "passphrase", Aliases: []string{"p"}, Usage: "decrypt with a passphrase from $BK_PASSPHRASE, --passphrase-file or the terminal"},
			&ucli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from the first line of `FILE`"},
			&ucli.StringFlag{Name: "name", Usage: "search only the backups of this `NAME`"},
			&ucli.StringFlag{Name: "backup", Usage: "search only the backup with this `ID`"},
			&ucli.StringFlag{Name: "since", Usage: "search only backups made at or after `TIME` (2026-11-29 or RFC 3339)"},
			&ucli.BoolFlag{Name: "case-sensitive", Aliases: []string{"s"}, Usage: "match case as given"},
			&ucli.BoolFlag{Name: "json", Usage: "write the matches as JSON (docs/FORMAT.md, section 8)"},
		}, connect.Flags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  found at least one match, and searched every backup asked for.

1  nothing matched, no backup was found, or a catalogue is damaged (the
   message names the backup).

2  usage error: a bad flag or pattern, or a bad or missing hosts file.

3  found matches, but a backup could not be searched (no catalogue, a host
   unreachable and too few shares left) or was read around missing or bad
   shares: each is named in a warning.

130  interrupted.`},
			{Title: "ENVIRONMENT", Body: `BK_PASSPHRASE  the passphrase for -p, when no --passphrase-file is given.`},
			{Title: "EXAMPLES", Body: `Which backups still hold a file whose name had "taxes" in it:

  bk-find -i key.txt /etc/bk/hosts taxes

Then restore the one from the backup found:

  bk-restore --from /etc/bk/hosts --backup home-20261101T023000Z-3f9a1c2e -i key.txt -C /tmp/r home/me/taxes-2025.pdf

Every PDF of one job's backups since November, as JSON:

  bk-find -i key.txt --name home --since 2026-11-01 --json /etc/bk/hosts '*.pdf'`},
			{Title: "SEE ALSO", Body: `bk-restore(1), bk-ls(1), bk-join(1)`},
		},
		Action: run,
	}
}

// Main runs bk-find and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

// Match is one entry found, as --json writes it.
type Match struct {
	Backup string    `json:"backup"`
	Name   string    `json:"name"`
	Time   time.Time `json:"time"`
	Path   string    `json:"path"`
	Type   string    `json:"type"`
	Size   int64     `json:"size"`
	Mode   string    `json:"mode"`
	MTime  time.Time `json:"mtime"`
	User   string    `json:"user,omitempty"`
	Group  string    `json:"group,omitempty"`
	UID    int       `json:"uid"`
	GID    int       `json:"gid"`
	Link   string    `json:"link,omitempty"`
	Rank   int       `json:"rank"`
}

// Skipped is a backup that could not be searched.
type Skipped struct {
	Backup string `json:"backup"`
	Why    string `json:"why"`
}

// Report is what --json writes.
type Report struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Pattern  string    `json:"pattern"`
	Searched int       `json:"searched"`
	Matches  []Match   `json:"matches"`
	Skipped  []Skipped `json:"skipped,omitempty"`
}

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	if c.NArg() < 2 {
		return cli.Usagef("give HOSTS and a PATTERN")
	}
	args := c.Args().Slice()
	pattern := args[len(args)-1]
	m, err := find.New(pattern, c.Bool("case-sensitive"))
	if err != nil {
		return cli.Usagef("%v", err)
	}
	since, err := cli.Time(c, "since")
	if err != nil {
		return err
	}
	keys, err := passphrase.Keys(c.StringSlice("identity"), c.String("passphrase-file"))
	if err != nil {
		return err
	}
	cat, listings, _, err := connect.ListHosts(ctx, env, c, args[:len(args)-1])
	if err != nil {
		if _, serr := os.Stat(pattern); serr == nil && errors.Is(err, fs.ErrNotExist) {
			err = cli.WithHint(err, "the PATTERN comes last: bk-find -i KEY HOSTS... PATTERN")
		}
		return err
	}
	defer cat.Close()
	var backups []*catalog.Backup
	for _, b := range cat.Backups(listings) {
		if !b.Counts || (c.String("name") != "" && b.Name != c.String("name")) ||
			(c.String("backup") != "" && b.ID != c.String("backup")) || (!since.IsZero() && b.Time.Before(since)) {
			continue
		}
		backups = append(backups, b)
	}
	if len(backups) == 0 {
		return cli.WithHint(errors.New("no backup to search found on the hosts reached"), "bk-ls HOSTS lists the backups found")
	}

	report := Report{Format: "bk-find", Version: 1, Pattern: pattern, Matches: []Match{}}
	var fetched, total int64
	degraded := false
	for _, b := range backups {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := seek.OpenStored(ctx, cat, b.Manifest, listings, keys, shard.JoinOptions{Warn: env.Msg.Warnf})
		var whole *seek.NotSeekableError
		switch {
		case errors.As(err, &whole):
			env.Msg.Warnf("backup %s not searched: %s", b.ID, whole.Why)
			report.Skipped = append(report.Skipped, Skipped{b.ID, whole.Why})
			continue
		case err != nil:
			return passphrase.Hint(err, len(keys.Identities) > 0)
		}
		err = s.Catalogue.Each(func(e *index.Entry) error {
			if rank, ok := m.Match(e.Name); ok {
				report.Matches = append(report.Matches, matchOf(b, e, rank))
			}
			return nil
		})
		st := s.Shares.Stats()
		fetched += st.Fetched
		total += st.ShareBytes
		degraded = degraded || s.Shares.Report().Degraded()
		s.Close()
		if err != nil {
			return err
		}
		report.Searched++
	}
	slices.SortStableFunc(report.Matches, func(a, b Match) int {
		switch {
		case a.Rank != b.Rank:
			return b.Rank - a.Rank
		case !a.Time.Equal(b.Time):
			return b.Time.Compare(a.Time)
		}
		return strings.Compare(a.Path, b.Path)
	})
	env.Msg.Notef("searched %s: read %s of their %s of shares (%d of %d bytes)", cli.Count(int64(report.Searched), "backup", "backups"), units.Bytes(fetched), units.Bytes(total), fetched, total)
	if c.Bool("json") {
		if err := connect.WriteJSON(env.Stdout, report); err != nil {
			return err
		}
	} else if err := table(env.Stdout, report.Matches); err != nil {
		return err
	}
	switch {
	case len(report.Matches) == 0:
		return fmt.Errorf("nothing matches %q in %s", pattern, cli.Count(int64(report.Searched), "backup", "backups"))
	case len(report.Skipped) > 0:
		return cli.Degradedf("%s not searched", cli.Count(int64(len(report.Skipped)), "backup", "backups"))
	case degraded:
		return cli.Degradedf("catalogues read, but not from healthy shares")
	}
	return nil
}

func matchOf(b *catalog.Backup, e *index.Entry, rank int) Match {
	return Match{Backup: b.ID, Name: b.Name, Time: b.Time, Path: e.Name, Type: typeName(e.Type), Size: e.Size,
		Mode: fmt.Sprintf("%04o", e.Mode), MTime: e.ModTime, User: e.Uname, Group: e.Gname, UID: e.Uid, GID: e.Gid,
		Link: e.Link, Rank: rank}
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	}
	return "other"
}

// table writes the matches, one a line, the path last.
func table(w io.Writer, matches []Match) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tTIME\tSIZE\tMTIME\tPATH")
	for _, m := range matches {
		p := m.Path
		if m.Type == "dir" {
			p += "/"
		}
		if m.Link != "" {
			p += " -> " + m.Link
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Backup, m.Time.UTC().Format("2006-01-02 15:04:05Z"),
			units.Bytes(m.Size), m.MTime.UTC().Format("2006-01-02 15:04:05Z"), p)
	}
	return tw.Flush()
}
