// Package backup is the bk-backup command: its flags and wiring.
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/job"
)

const description = `bk-backup runs a backup job: the pipeline a job's config describes,

  bk-pack --state DIR … | [stages] | bk-split -k K -n N | bk-push --state DIR … HOSTS

as processes joined by pipes, exactly what bk-backup --print JOB prints.
JOB is a name, whose config is CONFIG-DIR/JOB.conf (/etc/bk/JOB.conf), or
the path of a config. The config format is in docs/FORMAT.md (section 9).

bk-backup waits for every stage and combines their exits: any 1, 2 or 130
fails the job (the first such stage's code is the job's, 130 when it was
interrupted), else 3 if any stage said 3 (files skipped, shares missing),
else 0. bk-push commits (writes the manifests, advances the state) only on
bk-backup's go-ahead (bk-push --go-ahead-fd), given once every other stage
has exited 0 or 3: a failed or killed stage never yields a stored backup.
The manifest of a stored backup is saved to STATE-DIR/last.json
(/var/lib/bk/JOB/last.json), written to a temp file and renamed, so a
failed run leaves the previous one whole.

One summary goes to stdout (--json: as a document): per stage its exit,
time, bytes in and out; files skipped; shares per host; the backup ID;
hooks and upkeep run. Stages, hooks and upkeep tools write their messages
to stderr; -q passes -q to bk's tools.

Before the pipeline, the config's before hooks run (sh -c, in order); one
that fails stops the job. Then, when the series would go on with an
incremental backup, bk-check --quick --backup checks that the backup it
would build on still stands on the hosts; when it does not (a retention
that keeps nothing recent pruned it, or too many of its shares are lost),
the job warns once and runs bk-pack --full, so the night still yields a
backup that restores. After a stored backup, as the config says,
bk-prune keeps the retention, bk-check --quick runs (a full bk-check every
full-check-every), and bk-repair mends what the check finds degraded
(bk-repair --quick after a quick check, when full-check-every is set:
a share rotted inside, any copy of it, is the full check's to find). Then
the after-success hooks run when the job's exit is 0 or 3, else the
after-failure hooks. Hooks get the outcome in their environment:
BK_JOB, BK_CONFIG, BK_STATUS (ok, degraded, failed, interrupted), BK_EXIT,
BK_BACKUP_ID, BK_ARCHIVE_BYTES, BK_FILES_SKIPPED, BK_SECONDS, BK_ERRORS
and BK_SUMMARY_JSON (the --json document so far). A failing hook is
reported and fails the job (exit 1); a backup already stored stays.

A job runs once at a time: a second run finds STATE-DIR/lock held, names
the process that holds it, and exits 1.

--restore-drill runs bk-join --name NAME HOSTS | bk-restore --check with
the config's identity, reading the newest backup as a restore would.`

// Tool describes bk-backup: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:        "bk-backup",
		Usage:       "run a backup job from its config: pack, split and push, checked, with hooks",
		ArgsUsage:   "JOB",
		Description: description,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "print", Usage: "print the job's pipeline as a shell line and exit (bk-push commits on its own there: run it with bash -o pipefail)"},
			&ucli.BoolFlag{Name: "json", Usage: "print the summary as a JSON document (format bk-backup-summary)"},
			&ucli.BoolFlag{Name: "restore-drill", Usage: "check that the newest backup restores: bk-join | bk-restore --check, with the config's identity"},
			&ucli.StringFlag{Name: "config-dir", Value: "/etc/bk", EnvVars: []string{"BK_CONFIG_DIR"}, Usage: "find JOB's config as `DIR`/JOB.conf"},
		},
		Sections: []cli.Section{
			{Title: "Exit status", Body: `0  the backup was stored with all n shares, and hooks and upkeep succeeded.

1  failed: a stage failed or was killed (nothing was stored), a hook or an
upkeep tool failed (a backup already stored stays), or the job is running
already.

2  usage error: a bad flag or config (named FILE:LINE), or a stage's usage
error (a bad hosts file).

3  degraded: the backup was stored, but some files were skipped, fewer
than n shares were stored, or bk-check found backups degraded.

130  interrupted; nothing was committed.`},
			{Title: "Files", Body: `/etc/bk/JOB.conf  the job's config (docs/FORMAT.md, section 9)

/var/lib/bk/JOB/last.json  the manifest of the job's last stored backup

/var/lib/bk/JOB/series  the state of its incremental series (bk-pack --state)

/var/lib/bk/JOB/lock  held while the job runs`},
			{Title: "Examples", Body: `Run the job of /etc/bk/home.conf, and see what it runs:

  bk-backup home
  bk-backup --print home

Nightly, with systemd (make install puts the units in place):

  systemctl enable --now bk-backup@home.timer

or from cron:

  30 2 * * *  bk-backup -q home > /var/log/bk/home.log

The monthly restore drill:

  bk-backup --restore-drill home`},
			{Title: "See also", Body: "bk-pack(1), bk-split(1), bk-push(1), bk-join(1), bk-restore(1), systemd.timer(5)"},
		},
		Action: run,
	}
}

// Main runs bk-backup and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	if c.NArg() != 1 {
		return cli.Usagef("want one JOB (a name or a config file), got %d arguments", c.NArg())
	}
	name := c.Args().First()
	path := job.Find(name, c.String("config-dir"))
	conf, err := job.Load(path, name)
	var confErr *job.ConfigError
	switch {
	case errors.Is(err, fs.ErrNotExist) && !errors.As(err, &confErr):
		return cli.WithHint(cli.AsUsage(fmt.Errorf("job %s: no config %s", name, path)), "write one (see docs/FORMAT.md, section 9), or give the config's path")
	case err != nil:
		return cli.AsUsage(err)
	}
	if c.Bool("print") {
		stages := conf.Pipeline(false)
		if c.Bool("restore-drill") {
			stages = conf.DrillPipeline(false)
		}
		_, err := fmt.Fprintln(env.Stdout, job.ShellLine(stages))
		return err
	}
	opt := job.Options{Job: name, Quiet: env.Msg.Quiet, Stderr: env.Stderr, Errorf: env.Msg.Errorf, Warnf: env.Msg.Warnf, Notef: env.Msg.Notef, Now: cli.Now}
	var s *job.Summary
	if c.Bool("restore-drill") {
		s = job.Drill(ctx, conf, opt)
	} else {
		s = job.Run(ctx, conf, opt)
	}
	if c.Bool("json") {
		data, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		if _, err := env.Stdout.Write(append(data, '\n')); err != nil {
			return err
		}
	} else if err := s.WriteText(env.Stdout); err != nil {
		return err
	}
	switch s.Exit {
	case 0:
		return nil
	case 2:
		return cli.WithHint(cli.Usagef("job %s failed: see the errors above", conf.Name), "check the config "+conf.File+" and the files it names")
	case 3:
		return cli.Degradedf("job %s finished degraded", conf.Name)
	}
	what := "no backup was stored"
	if s.BackupID != "" {
		what = "backup " + s.BackupID + " was stored"
	}
	return fmt.Errorf("job %s failed: %s", conf.Name, what)
}
