// Package ls is the bk-ls command: its flags and wiring.
package ls

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/scrub"
	"github.com/bk-backup/bk/internal/units"
)

// Tool describes bk-ls: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-ls",
		Usage:     "list the backups on the hosts, and what each host really holds",
		ArgsUsage: "HOSTS...",
		Description: `bk-ls lists the backups whose manifests the hosts of the hosts files (or
host folders) hold, newest first: ID, time, size of the stream, k/n, level
(full, or the level of an incremental) and chain, and under each backup its
shares, each with the host that really holds it, as the host's listing
shows it (a file of the share's name and of the size the manifest records),
not as the manifest says. A share no host holds is shown missing, and the
backup healthy, degraded, at risk or lost by the count of shares present
(a share on an unreachable host may be whole there: a backup such shares
could make whole is at risk, not lost);
one that only a host the hosts files lack may hold is not counted present
either, with a warning naming that host. A copy of a share on another host
listed at another size is a bad copy: the backup is degraded, as
bk-check calls it, for bk-repair to replace it.
Then each host: the bytes bk keeps there against its quota, its free space,
and temp files that uploads in progress or killed runs left there; then
the shares that no manifest names (orphans, left by failed runs on
append-only hosts or by a prune cut short), which are no backups.

On a host marked append-only=yes, bk-ls stores a test file and tries to
remove, overwrite, truncate, chmod and rename it (on an S3 bucket: to
remove it and its version, and to change the bucket's versioning, lifecycle
rules and policy, each set to what it is; versioning must be on); a host
that allows any of it is reported "not append-only" (exit 3). The test file
stays there.

A manifest that does not count (docs/FORMAT.md, section 5) is listed with
the reason; a backup that bk-prune removed while a host was down, and whose
files that host still holds, is listed as pruned. Nothing is read but listings and manifests; bk-check reads the
shares themselves. --json writes the listing as docs/FORMAT.md (section 8)
describes.`,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "name", Usage: "list only the backups of this `NAME`"},
			&ucli.StringFlag{Name: "before", Usage: "list only backups made before `TIME` (2026-11-29 or RFC 3339)"},
			&ucli.BoolFlag{Name: "json", Usage: "write the listing as JSON (docs/FORMAT.md, section 8)"},
		}, connect.Flags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  listed.

1  no backup found, or a hosts file cannot be read.

2  usage error: a bad flag, or a bad or missing hosts file.

3  listed, but a host was unreachable, or a host the hosts file says is
append-only (append-only=yes) let bk-ls remove or change its test file.

130  interrupted.`},
			{Title: "EXAMPLES", Body: `What the hosts hold:

  bk-ls /etc/bk/hosts

The backups of one name before a day, as JSON:

  bk-ls --name home --before 2026-11-01 --json /etc/bk/hosts | jq .`},
			{Title: "SEE ALSO", Body: `bk-check(1), bk-join(1), bk-push(1); docs/FORMAT.md describes manifests and the listing.`},
		},
		GCPercent: connect.GCPercent,
		Action:    run,
	}
}

// Main runs bk-ls and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

// Listing is the JSON document of bk-ls (docs/FORMAT.md, section 8).
type Listing struct {
	Format  string       `json:"format"`
	Version int          `json:"version"`
	Backups []Backup     `json:"backups"`
	Hosts   []scrub.Host `json:"hosts"`
}

// Backup is one backup found.
type Backup struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Time      time.Time     `json:"time"`
	Label     string        `json:"label,omitempty"`
	Size      int64         `json:"size"`
	K         int           `json:"k"`
	N         int           `json:"n"`
	Level     int           `json:"level"`
	Chain     string        `json:"chain,omitempty"`
	Parent    string        `json:"parent,omitempty"`
	Counts    bool          `json:"counts"`
	Doubt     string        `json:"doubt,omitempty"`
	Pruned    *Pruned       `json:"pruned,omitempty"`
	Manifests []string      `json:"manifests"`
	State     scrub.State   `json:"state"`
	Present   int           `json:"present"`
	Shares    []scrub.Share `json:"shares"`
}

// Pruned says when bk-prune removed a backup, and which hosts hold its
// tombstones.
type Pruned struct {
	Time       time.Time `json:"time"`
	Tombstones []string  `json:"tombstones"`
}

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	before, err := cli.Time(c, "before")
	if err != nil {
		return err
	}
	cat, listings, unreachable, err := connect.List(ctx, env, c)
	if cat != nil {
		defer cat.Close()
	}
	if err != nil {
		return err
	}
	out := Listing{Format: "bk-ls", Version: 1, Backups: []Backup{}}
	var reports []*scrub.Report
	backups := cat.Backups(listings)
	// A full backup's manifest does not know the chain it starts; the
	// incremental ones that build on it do.
	chainOf := map[string]string{}
	for _, b := range backups {
		for _, a := range b.Ancestors {
			chainOf[a.ID] = b.Chain
		}
	}
	for _, b := range backups {
		if (c.String("name") != "" && b.Name != c.String("name")) || (!before.IsZero() && !b.Time.Before(before)) {
			continue
		}
		r, err := scrub.Presence(cat, listings, b.Manifest)
		if err != nil {
			return err
		}
		reports = append(reports, r)
		chain := b.Chain
		if chain == "" {
			chain = chainOf[b.ID]
		}
		var holders []string
		for _, h := range b.Holders {
			holders = append(holders, h.String())
		}
		var pruned *Pruned
		if b.Pruned != nil {
			pruned = &Pruned{Time: b.Pruned.Pruned}
			for _, h := range b.Pruned.Holders {
				pruned.Tombstones = append(pruned.Tombstones, h.String())
			}
		}
		out.Backups = append(out.Backups, Backup{ID: b.ID, Name: b.Name, Time: b.Time, Label: b.Label,
			Size: b.StreamSize, K: b.K, N: b.N, Level: b.Level, Chain: chain, Parent: b.Parent,
			Counts: b.Counts, Doubt: b.Doubt, Pruned: pruned, Manifests: holders, State: r.State, Present: r.Good, Shares: r.Shares})
	}
	withChains(env, out.Backups, backups)
	out.Hosts = scrub.Hosts(ctx, listings, reports)
	scrub.ProbeAppendOnly(ctx, listings, out.Hosts)
	notAppendOnly := scrub.AppendOnlyError(out.Hosts)
	if notAppendOnly != nil {
		env.Msg.Warnf("%v", notAppendOnly)
	}
	if c.Bool("json") {
		if err := connect.WriteJSON(env.Stdout, out); err != nil {
			return err
		}
	} else if err := table(env.Stdout, out); err != nil {
		return err
	}
	if outside := scrub.OutsideHosts(reports); len(outside) > 0 {
		for _, h := range slices.Sorted(maps.Keys(outside)) {
			env.Msg.Warnf("the manifests put %s on %s, which is not among the hosts given: not counted present", cli.Count(int64(outside[h]), "share", "shares"), h)
		}
		env.Msg.Hintf("%s", scrub.OutsideHint)
	}
	switch {
	case len(out.Backups) == 0:
		return cli.WithHint(fmt.Errorf("no backup found on the hosts reached"), "bk-push stores backups there")
	case unreachable:
		return cli.Degradedf("a host was unreachable: the listing lacks what it holds")
	case notAppendOnly != nil:
		return cli.Degradedf("a host marked append-only is not")
	}
	return nil
}

func table(w io.Writer, l Listing) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSIZE\tK/N\tLEVEL\tCHAIN\tSHARES\tSTATE\tLABEL")
	for _, b := range l.Backups {
		level, chain := "full", "-"
		if b.Level > 0 {
			level = fmt.Sprintf("inc %d", b.Level)
		}
		if b.Chain != "" {
			chain = b.Chain
		}
		label := b.Label
		switch {
		case b.Pruned != nil:
			label = "(pruned on " + b.Pruned.Time.Format(time.DateOnly) + "; the next bk-prune removes what is left) " + label
		case !b.Counts:
			label = "(does not count: " + b.Doubt + ") " + label
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%d/%d\t%s\t%s\n", b.ID, b.Time.UTC().Format("2006-01-02 15:04:05Z"),
			units.Bytes(b.Size), b.K, b.N, level, chain, b.Present, b.N, b.State, strings.TrimSpace(label))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "BACKUP\tSHARE\tHOST\tPRESENT")
	for _, b := range l.Backups {
		for _, s := range b.Shares {
			what := "yes"
			if !s.Good {
				what = "no: " + s.Problem
			}
			host := s.Host
			if host == "" {
				host = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", b.ID, s.Index, host, what)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "HOST\tUSED\tQUOTA\tFREE\tTEMP")
	for _, h := range l.Hosts {
		quota, free := "-", "-"
		if h.Quota > 0 {
			quota = units.Bytes(h.Quota).String()
		}
		if h.Free >= 0 {
			free = units.Bytes(h.Free).String()
		}
		temp := fmt.Sprint(len(h.Temp))
		if h.State == scrub.Unreachable {
			quota, free, temp = "unreachable", "", ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Host, units.Bytes(h.Used), quota, free, temp)
	}
	// Shares of failed runs, which are no backups: only when there are any.
	header := false
	for _, h := range l.Hosts {
		for _, o := range h.Orphans {
			if !header {
				fmt.Fprintln(tw)
				fmt.Fprintln(tw, "ORPHAN SHARE\tHOST\tSIZE\tTIME")
				header = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Name, h.Host, units.Bytes(o.Size), o.Time.UTC().Format("2006-01-02 15:04:05Z"))
		}
	}
	return tw.Flush()
}

// withChains judges each incremental backup listed with its chain.
func withChains(env *cli.Env, listed []Backup, all []*catalog.Backup) {
	judged := map[string]scrub.State{}
	for _, b := range listed {
		if b.Pruned == nil { // its chain went with it
			judged[b.ID] = b.State
		}
	}
	states := scrub.WithChains(judged, all, func(id, why string) { env.Msg.Warnf("backup %s: %s", id, why) })
	for i := range listed {
		if st, ok := states[listed[i].ID]; ok {
			listed[i].State = st
		}
	}
}
