// Package check is the bk-check command: its flags and wiring.
package check

import (
	"context"
	"fmt"
	"io"
	"strconv"
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

// Tool describes bk-check: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-check",
		Usage:     "check the backups on the hosts, every share, without the key",
		ArgsUsage: "HOSTS...",
		Description: `bk-check reads every share of every backup on the hosts of the hosts files
(or host folders) given, and checks each against what the backup's manifest
records of it: its size, its header (set, k, n, index), its trailer (the
stream's length and hash), every block against its checksum (naming the
first bad stripe), and the hash the manifest records of the rest of the
file (meta_blake3: its header, trailer and the checksums the share keeps
of every share's blocks), in one read; together they pin every byte
bk-push stored. Manifests of version 3 record the BLAKE3 of the whole
file, which vouches for every block: only a share that fails it is read
again block by block, to name its first bad stripe; those of versions 1
and 2 the SHA-256 of the whole file, checked in the same read as the
blocks (docs/FORMAT.md, section 8). It needs no key: nothing is decrypted. Unlike
a restore, which reads only k shares, it finds rot on the others too.

--quick checks presence, size, header and trailer only, reading a few
hundred bytes per share.

A share may stand on more than one host (a repair stored it on a spare
while its host was down, and the host came back with its own copy): every
copy is checked, each as deeply, since a restore that finds one copy's
host down reads another. The share is good when a copy is; a bad copy
beside it is named in a warning, with its host, and makes the backup
degraded, for bk-repair to replace. --quick sees a copy listed at the
wrong size, or cut short, or with a header or trailer not the backup's;
rot inside a copy is the full check's to find.

Each backup is then healthy (every share good), degraded (some shares bad
or missing, more than k good: restorable, with margin left), at risk
(exactly k good: one more loss loses it) or lost (fewer than k good). A
share whose only fault is a few rotten blocks still counts for its other
stripes, since a restore rebuilds each stripe from any k good blocks: the
backup fares as its worst stripe, and its GOOD column reads 1+2 for one
good share and two such. A backup that shares on unreachable hosts could
still make whole is at risk, not lost, until they are read. Each
host is healthy, degraded (a share there is bad or missing), unreachable,
or not append-only: a host the hosts file marks append-only=yes that let a
test file of bk-check's be removed, overwritten, truncated, chmodded or
renamed, or an S3 bucket without versioning or whose policy lets the keys
remove an object or a version or change its versioning, lifecycle rules or
policy (the test file stays there; not tried with --backup). Every share that is not good is named
in a warning, with its host. A share that no host given holds, on a host
the hosts files lack, is read where the manifest says but not counted
good, as bk-ls and bk-repair count it: give that host's line as it is
now, or let bk-repair store the share on a host given.

Only backups whose manifests count (docs/FORMAT.md, section 5) are checked;
one that does not is named in a warning. A backup that bk-prune removed
while a host was down, and whose files that host still holds, is named in a
note (and under "pruned" in --json), not checked: the next bk-prune removes
them. --name, --backup and --latest
narrow the check. --max-age DURATION also fails when the newest backup of a
name is older than DURATION, for monitoring that backups still happen.

The report goes to standard output, as a table or, with --json, as the
JSON document docs/FORMAT.md describes (section 8).`,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "name", Usage: "check only the backups of this `NAME`"},
			&ucli.StringFlag{Name: "backup", Usage: "check only the backup with this `ID`"},
			&ucli.BoolFlag{Name: "latest", Usage: "check only the newest backup of each name"},
			&ucli.BoolFlag{Name: "quick", Usage: "check presence, size, header and trailer of each share, not every block"},
			&ucli.BoolFlag{Name: "json", Usage: "write the report as JSON (docs/FORMAT.md, section 8)"},
			cli.DurationFlag("max-age", 0, "fail when the newest backup of a name is older than `DURATION` (e.g. 36h)"),
		}, connect.Flags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  every backup checked is healthy.

1  a backup is lost, no backup was found, a host file cannot be read, or
(with --max-age) the newest backup of a name is too old.

2  usage error: a bad flag, or a bad or missing hosts file.

3  a backup is degraded or at risk (bk-repair mends it), a host is
unreachable, or a host marked append-only is not.

130  interrupted.`},
			{Title: "EXAMPLES", Body: `Check everything, every byte:

  bk-check /etc/bk/hosts

Nightly, from cron, failing when no backup came for a day and a half:

  bk-check -q --quick --max-age 36h /etc/bk/hosts

The newest backup of each name, as JSON:

  bk-check --latest --json /etc/bk/hosts | jq .`},
			{Title: "SEE ALSO", Body: `bk-ls(1), bk-join(1), bk-push(1); docs/FORMAT.md describes shares, manifests and the report.`},
		},
		Progress:  true,
		GCPercent: connect.GCPercent,
		Action:    run,
	}
}

// Main runs bk-check and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

// Report is the JSON document of bk-check (docs/FORMAT.md, section 8).
type Report struct {
	Format  string        `json:"format"`
	Version int           `json:"version"`
	Time    time.Time     `json:"time"`
	Quick   bool          `json:"quick"`
	Backups []Backup      `json:"backups"`
	Hosts   []scrub.Host  `json:"hosts"`
	Stale   []StaleBackup `json:"stale,omitempty"`
	// Pruned lists the backups bk-prune removed whose files a host that
	// was down still holds: not checked, named so a monitor sees them.
	Pruned []PrunedBackup `json:"pruned,omitempty"`
}

// Backup is one backup's result.
type Backup struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Time       time.Time     `json:"time"`
	K          int           `json:"k"`
	N          int           `json:"n"`
	State      scrub.State   `json:"state"`
	Good       int           `json:"good"`
	PartlyGood int           `json:"partly_good"`
	WaitsFor   []string      `json:"waits_for,omitempty"`
	Share      []scrub.Share `json:"shares"`
}

// PrunedBackup is a backup whose tombstones count: bk-prune removed it,
// and the hosts of Holders still hold its files until the next prune.
type PrunedBackup struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Time       time.Time `json:"time"`
	Pruned     time.Time `json:"pruned"`
	Tombstones []string  `json:"tombstones"`
	Holders    []string  `json:"holders"`
}

// StaleBackup is a name whose newest backup is older than --max-age.
type StaleBackup struct {
	Name   string    `json:"name"`
	Newest string    `json:"newest"`
	Time   time.Time `json:"time"`
}

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	cat, listings, backups, err := read(ctx, env, c)
	if cat != nil {
		defer cat.Close()
	}
	if err != nil {
		return err
	}
	chosen, pruned := choose(env, backups, c.String("name"), c.String("backup"), c.Bool("latest"))
	if len(chosen) == 0 {
		return cli.WithHint(fmt.Errorf("no backup to check found on the hosts reached"), "bk-ls HOSTS lists what the hosts hold")
	}
	now := cli.Now()
	out := Report{Format: "bk-check", Version: 1, Time: now.UTC(), Quick: c.Bool("quick"), Pruned: pruned}
	progress := env.NewProgress(-1, "checking")
	defer progress.Done()
	worst := scrub.Healthy
	var reports []*scrub.Report
	for _, b := range chosen {
		r, err := scrub.Check(ctx, cat, listings, b.Manifest, scrub.Options{Quick: c.Bool("quick"), Progress: progress.Add})
		if err != nil {
			return err
		}
		reports = append(reports, r)
		worst = scrub.Worse(worst, r.State)
		for _, s := range r.Shares {
			if !s.Good {
				env.Msg.Warnf("backup %s: share %d%s: %s", b.ID, s.Index, where(s), s.Problem)
			}
			for _, c := range s.BadCopies {
				env.Msg.Warnf("backup %s: share %d: its copy on host %s (%s): %s%s", b.ID, s.Index, c.Host, c.Path, c.Problem, goodOn(s))
			}
		}
		if len(r.WaitsFor) > 0 {
			// "at risk" says k good; this one has fewer on the hosts reached.
			env.Msg.Warnf("backup %s: fewer than k good blocks in a stripe on the hosts reached: restorable only once %s, unreachable, %s back with its shares whole",
				b.ID, strings.Join(r.WaitsFor, ", "), map[bool]string{true: "is", false: "are"}[len(r.WaitsFor) == 1])
		}
		out.Backups = append(out.Backups, Backup{ID: b.ID, Name: b.Name, Time: b.Time, K: b.K, N: b.N,
			State: r.State, Good: r.Good, PartlyGood: r.PartlyGood, WaitsFor: r.WaitsFor, Share: r.Shares})
	}
	progress.Done()
	judged := map[string]scrub.State{}
	for _, b := range out.Backups {
		judged[b.ID] = b.State
	}
	states := scrub.WithChains(judged, backups, func(id, why string) { env.Msg.Warnf("backup %s: %s", id, why) })
	for i := range out.Backups {
		out.Backups[i].State = states[out.Backups[i].ID]
		worst = scrub.Worse(worst, out.Backups[i].State)
	}
	out.Hosts = scrub.Hosts(ctx, listings, reports)
	if c.String("backup") == "" {
		// A question about one backup (bk-backup asks one every night)
		// is no audit of the hosts: no test file.
		scrub.ProbeAppendOnly(ctx, listings, out.Hosts)
	}
	if err := scrub.AppendOnlyError(out.Hosts); err != nil {
		env.Msg.Warnf("%v", err)
	}
	if age := cli.Duration(c, "max-age"); age > 0 {
		out.Stale = stale(backups, now.Add(-age))
	}
	if c.Bool("json") {
		if err := connect.WriteJSON(env.Stdout, out); err != nil {
			return err
		}
	} else if err := table(env.Stdout, out); err != nil {
		return err
	}
	return verdict(out, worst, scrub.AnyOutside(reports), cli.Duration(c, "max-age"), now)
}

// read lists the hosts and reads the manifests the check needs: with
// --backup (and no --max-age, which looks at the newest of each name),
// those of the backup and of the backups it builds on only; else all.
func read(ctx context.Context, env *cli.Env, c *ucli.Context) (*catalog.Catalog, []*catalog.Listing, []*catalog.Backup, error) {
	id := c.String("backup")
	if id == "" || cli.Duration(c, "max-age") > 0 {
		cat, listings, _, err := connect.List(ctx, env, c)
		if err != nil {
			return cat, nil, nil, err
		}
		return cat, listings, cat.Backups(listings), nil
	}
	hosts, err := connect.Hosts(c.Args().Slice())
	if err != nil {
		return nil, nil, nil, err
	}
	opts, err := connect.Options(env, c, false)
	if err != nil {
		return nil, nil, nil, err
	}
	cat := catalog.New(hosts, opts)
	connect.Unreachable(env, cat.List(ctx, cat.Hosts(), func(string) bool { return false }))
	backups, listings := cat.WithAncestors(ctx, cat.Hosts(), id)
	connect.Damaged(env, listings)
	return cat, listings, backups, ctx.Err()
}

// where says where share s is, for messages.
func where(s scrub.Share) string {
	switch {
	case s.Host == "":
		return ""
	case s.Path == "":
		return " on host " + s.Host
	}
	return " on host " + s.Host + " (" + s.Path + ")"
}

// goodOn says where share s is good, after a bad copy of it.
func goodOn(s scrub.Share) string {
	if !s.Good {
		return ""
	}
	return "; the share is good on host " + s.Host
}

// choose picks the backups to check, newest first; the ones that do not
// count are named and left out, the pruned ones returned apart.
func choose(env *cli.Env, backups []*catalog.Backup, name, id string, latest bool) ([]*catalog.Backup, []PrunedBackup) {
	var out []*catalog.Backup
	var pruned []PrunedBackup
	seen := map[string]bool{}
	for _, b := range backups {
		if (name != "" && b.Name != name) || (id != "" && b.ID != id) {
			continue
		}
		if b.Pruned != nil {
			env.Msg.Notef("backup %s was pruned (tombstones on %s); the next bk-prune removes what %s still holds of it", b.ID, b.Pruned.HolderNames(), b.HolderNames())
			pruned = append(pruned, PrunedBackup{ID: b.ID, Name: b.Name, Time: b.Time, Pruned: b.Pruned.Pruned,
				Tombstones: hostNames(b.Pruned.Holders), Holders: hostNames(b.Holders)})
			continue
		}
		if !b.Counts {
			env.Msg.Warnf("backup %s on %s does not count: %s; not checked", b.ID, b.HolderNames(), b.Doubt)
			continue
		}
		if latest && seen[b.Name] {
			continue
		}
		seen[b.Name] = true
		out = append(out, b)
	}
	return out, pruned
}

func hostNames(hosts []*catalog.Host) []string {
	names := []string{}
	for _, h := range hosts {
		names = append(names, h.String())
	}
	return names
}

// stale lists the names whose newest counting backup was made before
// cutoff.
func stale(backups []*catalog.Backup, cutoff time.Time) []StaleBackup {
	var out []StaleBackup
	seen := map[string]bool{}
	for _, b := range backups {
		if !b.Counts || seen[b.Name] {
			continue
		}
		seen[b.Name] = true
		if b.Time.Before(cutoff) {
			out = append(out, StaleBackup{Name: b.Name, Newest: b.ID, Time: b.Time})
		}
	}
	return out
}

func table(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tTIME\tK/N\tGOOD\tSTATE")
	for _, b := range r.Backups {
		good := strconv.Itoa(b.Good)
		if b.PartlyGood > 0 {
			good += "+" + strconv.Itoa(b.PartlyGood)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", b.ID, b.Time.UTC().Format("2006-01-02 15:04:05Z"), b.K, b.N, good, b.State)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "HOST\tGOOD\tBAD\tMISSING\tSTATE")
	for _, h := range r.Hosts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", h.Host, h.Good, h.Bad, h.Missing, h.State)
	}
	return tw.Flush()
}

// verdict is the exit status: lost or stale fail, degraded, at risk or an
// unreachable host finish with 3.
func verdict(r Report, worst scrub.State, outside bool, maxAge time.Duration, now time.Time) error {
	var fails []string
	for _, s := range r.Stale {
		fails = append(fails, fmt.Sprintf("the newest backup of %s, %s, is %s old, older than --max-age %s",
			s.Name, s.Newest, units.FormatDuration(now.Sub(s.Time).Round(time.Minute)), units.FormatDuration(maxAge)))
	}
	var lost []string
	for _, b := range r.Backups {
		if b.State == scrub.Lost {
			lost = append(lost, b.ID)
		}
	}
	if len(lost) > 0 {
		fails = append(fails, fmt.Sprintf("lost (fewer than k good shares, or blocks in a stripe): %s", strings.Join(lost, ", ")))
	}
	if len(fails) > 0 {
		return fmt.Errorf("%s", strings.Join(fails, "; "))
	}
	unreachable := false
	for _, h := range r.Hosts {
		unreachable = unreachable || h.State == scrub.Unreachable
	}
	switch {
	case worst != scrub.Healthy && outside:
		return cli.WithHint(cli.Degradedf("not every backup is healthy (the worst is %s)", worst), scrub.OutsideHint)
	case worst != scrub.Healthy:
		return cli.WithHint(cli.Degradedf("not every backup is healthy (the worst is %s)", worst), "bk-repair HOSTS rebuilds the shares that are bad or missing")
	case unreachable:
		return cli.Degradedf("a host was unreachable; its shares were not checked")
	case scrub.AppendOnlyError(r.Hosts) != nil:
		return cli.WithHint(cli.Degradedf("a host marked append-only is not"),
			"deny the backup account remove, rename, posix-rename, setstat, fsetstat and lsetstat over SFTP; on S3 turn versioning on and deny its keys deletes and history changes (README, \"Protect backups from the client\")")
	}
	return nil
}
