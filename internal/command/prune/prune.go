// Package prune is the bk-prune command: its flags and wiring.
package prune

import (
	"context"
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/prune"
	"github.com/bk-backup/bk/internal/retention"
)

// Tool describes bk-prune: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-prune",
		Usage:     "remove the backups a retention policy does not keep from the hosts",
		ArgsUsage: "HOSTS...",
		Description: `bk-prune chooses, for each backup name, the backups to keep: the --keep-last
N newest, the newest of each of the --keep-daily N latest days (--keep-weekly:
ISO weeks, --keep-monthly: months, in UTC) that hold one, and those made within
--keep-within DURATION; then every backup a kept incremental one needs (its
ancestors, as its manifest names them). It removes the rest from every host
reached: their shares first, their manifests last (later revisions before
the first), so a prune cut short never leaves a backup that looks whole
without its shares: bk-ls and bk-check list it with shares missing.

Only backups whose manifests count (docs/FORMAT.md, section 5) are
removed or weigh in the choice. Share files that no manifest names (orphans)
and temp files of uploads are removed too, but only when older than
--stale-age (a day by default), so a push in flight is never touched.

Of the backups kept, the manifest revisions that bk-repair wrote and a later
one supersedes go too (ID.r2.manifest.json when ID.r3.manifest.json is
taken), so that readers do not read more of them every night: on each host
that holds the revision readers take, once both are older than --stale-age
and it finds every share the older one finds. Revision 1 stays; a host that
lacks the newest revision keeps its older ones, so a host forging a
revision gets nothing removed elsewhere; an append-only host keeps every
revision, since the client could have forged the newest on all of them. A share bk-repair stored for a
revision (ID.r2.share1) goes on a later run, once no revision names it
(never on an append-only host).

The plan, one line per backup kept or removed and per file removed, goes to
standard output; --dry-run prints it and removes nothing.

Before removing a backup's files, bk-prune leaves a tombstone,
ID.tombstone.json (docs/FORMAT.md, section 5), on every host reached. A host
that was down keeps its files of the backup; when it is back, the next run
removes them, if the tombstones stand on max(2, k) hosts and the policy
would not keep the backup either: a tombstone never removes a backup the
policy keeps. Meanwhile the readers (bk-join, bk-ls, bk-check, bk-repair)
take the backup for pruned, so it does not come back. Tombstones older than
90 days are removed; a host away for longer keeps its files, which bk-ls
lists as not counting.

An append-only host (append-only=yes in the hosts file) lets the backup
client's account remove nothing, so bk-prune refuses it: give bk-prune the
admin hosts file, whose lines reach the same folders with other credentials
and say append-only=admin, or run it on the host against its folder. On such
hosts the backups are ordered by the time the hosts stored their manifests,
not by the time the manifests claim, and each file's second name (the temp
name it kept) goes with it.`,
		Flags: append([]ucli.Flag{
			&ucli.IntFlag{Name: "keep-last", Usage: "keep the `N` newest backups of each name"},
			&ucli.IntFlag{Name: "keep-daily", Usage: "keep the newest backup of each of the `N` latest days that hold one"},
			&ucli.IntFlag{Name: "keep-weekly", Usage: "keep the newest backup of each of the `N` latest weeks that hold one"},
			&ucli.IntFlag{Name: "keep-monthly", Usage: "keep the newest backup of each of the `N` latest months that hold one"},
			cli.DurationFlag("keep-within", 0, "keep the backups made within `DURATION` (e.g. 2w) of now"),
			cli.DurationFlag("stale-age", 24*time.Hour, "remove orphan shares, temp files and superseded manifest revisions only when older than `DURATION`"),
			&ucli.StringFlag{Name: "name", Usage: "prune only the backups of this `NAME`"},
			&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and remove nothing"},
		}, connect.Flags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  pruned (or, with --dry-run, planned).

1  a file could not be removed (each is named; the other hosts were still
pruned).

2  usage error: no --keep-* option, or a negative one.

3  pruned, but a host was unreachable: the next run, once it is back,
removes what it holds of the backups pruned (their tombstones tell).

130  interrupted.`},
			{Title: "EXAMPLES", Body: `Keep a week of nightly backups, a month of weekly ones and a year of
monthly ones; look first:

  bk-prune --dry-run --keep-daily 7 --keep-weekly 4 --keep-monthly 12 /etc/bk/hosts
  bk-prune -q --keep-daily 7 --keep-weekly 4 --keep-monthly 12 /etc/bk/hosts`},
			{Title: "SEE ALSO", Body: `bk-ls(1), bk-check(1), bk-push(1).`},
		},
		GCPercent: connect.GCPercent,
		Action:    run,
	}
}

// Main runs bk-prune and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	policy := retention.Policy{Last: c.Int("keep-last"), Daily: c.Int("keep-daily"), Weekly: c.Int("keep-weekly"),
		Monthly: c.Int("keep-monthly"), Within: cli.Duration(c, "keep-within")}
	switch {
	case policy.Last < 0 || policy.Daily < 0 || policy.Weekly < 0 || policy.Monthly < 0 || policy.Within < 0:
		return cli.Usagef("--keep-* options take a number or duration of at least 0")
	case policy.Empty():
		return cli.Usagef("no --keep-* option given: bk-prune never removes every backup")
	}
	cat, listings, unreachable, err := connect.ListAll(ctx, env, c)
	if cat != nil {
		defer cat.Close()
	}
	if err != nil {
		return err
	}
	if !c.Bool("dry-run") {
		for _, h := range cat.Hosts() {
			if h.AppendOnly == hostsfile.AppendOnlyClient {
				return cli.WithHint(fmt.Errorf("host %s is append-only (%s: append-only=yes): bk-prune removes nothing there", h, h.Where()),
					"give bk-prune the admin hosts file (append-only=admin lines), or run it on the host against its folder")
			}
		}
	}
	backups := cat.Backups(listings)
	if name := c.String("name"); name != "" {
		var own []*catalog.Backup
		for _, b := range backups {
			if b.Name == name {
				own = append(own, b)
			}
		}
		backups = own
	}
	plan := prune.Make(backups, listings, policy, cli.Now(), cli.Duration(c, "stale-age"))
	for _, b := range backups {
		if why, ok := plan.Keep[b.ID]; ok {
			fmt.Fprintf(env.Stdout, "keep %s (%s)\n", b.ID, why)
			if b.Pruned != nil && b.Pruned.Counted {
				env.Msg.Warnf("backup %s is kept, yet tombstones on %s say it was pruned; they are removed", b.ID, b.Pruned.HolderNames())
			}
		}
	}
	for _, b := range plan.Remove {
		if b.Pruned != nil && !b.Pruned.Counted {
			fmt.Fprintf(env.Stdout, "remove %s (pruned on %s; left on %s)\n", b.ID, b.Pruned.Pruned.Format(time.DateOnly), b.HolderNames())
		} else {
			fmt.Fprintf(env.Stdout, "remove %s\n", b.ID)
		}
	}
	if c.Bool("dry-run") {
		for _, f := range plan.Files {
			fmt.Fprintf(env.Stdout, "would %s %s on %s (%s)\n", map[bool]string{false: "remove", true: "write"}[f.Data != nil], f.Path, f.Host, f.Why)
		}
		return nil
	}
	err = prune.Run(ctx, plan, func(f prune.File) {
		fmt.Fprintf(env.Stdout, "%s %s on %s (%s)\n", map[bool]string{false: "removed", true: "wrote"}[f.Data != nil], f.Path, f.Host, f.Why)
	})
	switch {
	case err != nil:
		return err
	case unreachable:
		return cli.Degradedf("a host was unreachable: the next run removes what it holds of the backups pruned")
	}
	return nil
}
