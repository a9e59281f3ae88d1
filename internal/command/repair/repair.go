// Package repair is the bk-repair command: its flags and wiring.
package repair

import (
	"context"
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/repair"
	"github.com/bk-backup/bk/internal/scrub"
)

// Tool describes bk-repair: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-repair",
		Usage:     "rebuild the missing or damaged shares of the backups on the hosts, without the key",
		ArgsUsage: "HOSTS...",
		Description: `bk-repair checks every backup on the hosts as bk-check does (every byte;
--quick: presence, size, header and trailer), and for each one with shares
missing or damaged and at least k good ones, rebuilds exactly those shares:
it joins the stream from the good shares and regenerates each share from
the stripes the join verified (their blocks, the parity blocks encoded from
them, the checksums of all of them), which gives it back byte for byte,
streaming, in the memory of a few stripes. With fewer than k good shares it
reads the damaged ones too: when every stripe still has k good blocks (bit
rot in different stripes of different shares), the stream comes back whole.
A backup whose stripe has fewer than k good blocks on the hosts reached,
which shares on unreachable hosts may still make whole, waits for them:
it is named in a warning and the run finishes degraded (exit 3).
Each rebuilt share is checked against the
hash its manifest records (meta_blake3, or the BLAKE3 or SHA-256 of the
whole file in older manifests) before it takes its name, so a share that
would differ is never stored. Nothing is decrypted: no key is needed.

A share goes back to its host when that host is reachable and has room
(its quota and free space), under its own name, or, when the damaged file
is still there, as ID.rR.shareI beside it; else to a spare, the first host
of the hosts files that is reachable, has room and holds no share of the
backup. Every file is stored atomically, and nothing is replaced: the
damaged file stays until bk-prune removes it. One exception: a bad copy
of a share that is good on another host (bk-check names it) is replaced
where it is, under its own name, since readers look for a share on every
host that holds a file of its name: the rebuilt share waits under a temp
name beside it until it matches the manifest, then the bad file is
removed and the new one takes its name. The manifest stays as it is. On
an append-only host (append-only=yes), which removes nothing, the bad copy
is named in a warning for its admin to remove (exit 3). When an upload fails on the
way (the host full, the connection cut), its temp file goes, a warning
names the host, and the share is rebuilt again for the next host that
qualifies; the others go on.

Then a new revision of the manifest, which says where each share now is, is
written beside the old one on every host reached (ID.r2.manifest.json, then
r3...); readers take the newest revision that counts (docs/FORMAT.md,
section 5), so a repair cut short leaves the old revision in force. A
repaired backup checks healthy.

The plan (each share, what was wrong, where it goes) is printed on standard
output; --dry-run prints it and stores nothing.`,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "name", Usage: "repair only the backups of this `NAME`"},
			&ucli.StringFlag{Name: "backup", Usage: "repair only the backup with this `ID`"},
			&ucli.BoolFlag{Name: "quick", Usage: "find what to repair by presence, size, header and trailer, not by reading every block"},
			&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print the plan and store nothing"},
		}, connect.Flags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  every backup is healthy now (or, with --dry-run, can be repaired).

1  a backup is lost (fewer than k shares, or a stripe with fewer than k
good blocks), or a share could not be
rebuilt or stored, or its revision not written on enough hosts: each is
named.

3  a backup could not be repaired for want of a host: every host reached
holds a share of it or has no room. It stays restorable, degraded, until a
host comes back, a spare is added or room is made.

2  usage error.

130  interrupted.`},
			{Title: "EXAMPLES", Body: `A friend's disk died; the plan, then the repair onto the other hosts:

  bk-repair --dry-run /etc/bk/hosts
  bk-repair /etc/bk/hosts
  bk-check /etc/bk/hosts`},
			{Title: "SEE ALSO", Body: `bk-check(1), bk-ls(1), bk-join(1); docs/FORMAT.md describes shares and manifest revisions.`},
		},
		Progress:  true,
		GCPercent: connect.GCPercent,
		Action:    run,
	}
}

// Main runs bk-repair and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	cat, listings, _, err := connect.List(ctx, env, c)
	if cat != nil {
		defer cat.Close()
	}
	if err != nil {
		return err
	}
	var failed []error
	found, repaired, waiting, down := 0, 0, 0, 0
	stuck := 0       // bad copies left on append-only hosts
	outside := false // a backup waiting has a share on a host not given
	progress := env.NewProgress(-1, "repairing")
	defer progress.Done()
	for _, b := range cat.Backups(listings) {
		if (c.String("name") != "" && b.Name != c.String("name")) || (c.String("backup") != "" && b.ID != c.String("backup")) {
			continue
		}
		if b.Pruned != nil {
			env.Msg.Notef("backup %s was pruned (tombstones on %s); the next bk-prune removes what %s still holds of it", b.ID, b.Pruned.HolderNames(), b.HolderNames())
			continue
		}
		if !b.Counts {
			env.Msg.Warnf("backup %s on %s does not count: %s; not repaired", b.ID, b.HolderNames(), b.Doubt)
			continue
		}
		found++
		r, err := scrub.Check(ctx, cat, listings, b.Manifest, scrub.Options{Quick: c.Bool("quick"), Progress: progress.Add})
		if err != nil {
			return err
		}
		if r.State == scrub.Healthy {
			continue
		}
		moves, err := repair.Plan(ctx, listings, r)
		if wait := (*repair.WaitError)(nil); errors.As(err, &wait) {
			env.Msg.Warnf("%v", err)
			down++
			continue
		}
		if noHost := (*repair.NoHostError)(nil); errors.As(err, &noHost) {
			env.Msg.Warnf("%v", err)
			waiting++
			outside = outside || scrub.AnyOutside([]*scrub.Report{r})
			continue
		}
		if err != nil {
			env.Msg.Errorf("%v", err)
			failed = append(failed, err)
			continue
		}
		for _, s := range r.Shares {
			for _, c := range s.BadCopies {
				if s.Good && repair.Stuck(c) {
					env.Msg.Warnf("backup %s: share %d: its copy on host %s (%s): %s; that host is append-only (append-only=yes): its admin removes the file (the share is good on host %s)",
						b.ID, s.Index, c.Host, c.Path, c.Problem, s.Host)
					stuck++
				}
			}
		}
		for _, mv := range moves {
			replaced := ""
			if mv.Copy {
				replaced = " (in place of the bad copy)"
			}
			fmt.Fprintf(env.Stdout, "%s share %d on %s (%s) -> %s %s%s\n", b.ID, mv.Index, mv.From, mv.Problem, mv.To, mv.Path, replaced)
		}
		if c.Bool("dry-run") {
			continue
		}
		next, stored, err := repair.Repair(ctx, listings, r, moves, repair.Options{Progress: progress.Add, Warn: env.Msg.Warnf})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if next != nil {
			env.Msg.Notef("backup %s: %s rebuilt, revision %d of its manifest written", b.ID, cli.Count(int64(len(stored)), "share", "shares"), next.Rev())
		} else if len(stored) > 0 {
			env.Msg.Notef("backup %s: %s rebuilt in place of bad copies; its manifest stays as it is", b.ID, cli.Count(int64(len(stored)), "share", "shares"))
		}
		if err != nil {
			env.Msg.Errorf("%v", err)
			failed = append(failed, err)
			continue
		}
		repaired++
	}
	switch {
	case found == 0:
		return cli.WithHint(errors.New("no backup to repair found on the hosts reached"), "bk-ls HOSTS lists what the hosts hold")
	case len(failed) > 0:
		return fmt.Errorf("%d of the backups could not be repaired", len(failed))
	case down > 0:
		return cli.WithHint(cli.Degradedf("%d of the backups wait for hosts that are down: restorable only once those are back", down),
			"bring the hosts named back, then run bk-repair again")
	case waiting > 0 && outside:
		return cli.WithHint(cli.Degradedf("%d of the backups wait for a host to take a share: they stay restorable, degraded", waiting), scrub.OutsideHint)
	case waiting > 0:
		return cli.WithHint(cli.Degradedf("%d of the backups wait for a host to take a share: they stay restorable, degraded", waiting),
			"add a spare host to the hosts file, make room, or bring the hosts that are down back")
	case stuck > 0:
		return cli.WithHint(cli.Degradedf("%s left on append-only hosts: the backups stay degraded", cli.Count(int64(stuck), "bad copy of a share", "bad copies of shares")),
			"with the host's admin credentials, remove the files named; the shares are good elsewhere")
	}
	return nil
}
