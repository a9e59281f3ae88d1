// Package push is the bk-push command: its flags and wiring.
package push

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/push"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/scrub"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/state"
)

const description = `bk-push reads a share stream (what bk-split writes to stdout) and sends
share i to host i of HOSTS, all at once, each over its own connection. It
writes the backup's manifest, a small JSON file that says where every share
went, to each host that stored a share, and prints it on stdout.

HOSTS lists one destination a line: a folder (/mnt/usb/bk or file:///mnt/usb/bk),
an SFTP folder (sftp://[user@]host[:port]/path, or scp-style [user@]host:path,
relative to the login folder), a bucket of an S3-compatible store
(s3://BUCKET/PREFIX), or anything rclone reaches (rclone:REMOTE:PATH, with
the remote as your rclone config names it). Blank lines and lines starting
with # are skipped. A line may carry options after the destination:

  quota=SIZE    bk-push uses at most SIZE there (all bk files in that
                folder count), e.g. quota=500G (500·1024³ bytes, as
                K M G T count 1024s) or quota=500GB (500·1000³)
  verify=yes    uploads there are read back and compared, as --verify
                does for every host
  fsync=no      uploads there do not wait for the host's disk (faster;
                a host that loses power may lose its newest files);
                folders and SFTP hosts fsync each file by default
  endpoint=URL  s3:// only: the store, for anything but AWS
                (e.g. endpoint=https://s3.eu-central-003.backblazeb2.com)
  region=NAME   s3:// only; else $AWS_REGION, else the store says
  path-style=yes  s3:// only: the bucket in the URL path (MinIO, Garage)
  profile=NAME  s3:// only: the keys of that profile of ~/.aws/credentials

  # /etc/bk/hosts
  /mnt/usb/bk                      quota=500G
  sftp://backup@nas.local/srv/bk
  friend@vps.example.org:bk        quota=200G
  s3://bk-shares/home  endpoint=http://minio.lan:9000 path-style=yes
  rclone:gdrive:bk                 quota=100G
  backup@spare.example.org:bk

Lines beyond the n the stream needs are spares: bk-push connects to the
first n hosts at once, checks their free space (hosts that are folders of
one file system against its space together) and quotas against the share
size, stores a small test file (.bk-probe-*) on each, and puts the next
spare in the place of each host that fails, before that host takes any data
(a read-only disk fails here, not halfway through). A host that passes
takes its share's data at once while the others still connect (from a pipe,
the stream is read ahead for them, up to 8 MiB each); it waits for them
when its file system lacks the space for all n shares (the check of its
hosts together could still fail it) and on an append-only host. A stream on
a pipe is read once for all hosts, so the slowest host sets the pace once
the queues are full; a stream saved to a file (bk-push hosts.txt <
stream.bks) is read by each host's upload for itself, its own share only,
so each host goes at its own pace (up to 16 shares of blocks of 64 KiB or
more); on Linux an SFTP host's share goes from the file to ssh by sendfile,
its blocks never copied through bk-push. A file written to meanwhile fails
the backup, and nothing is kept. Then bk-push looks for each host's test
file on the others and removes them: two lines that are one folder (a
symlink, a host by two names) are refused, as two shares on one disk would
be lost together, and what was sent is removed. Fewer lines than n is an
error. The size is --expect-size, or else that of the newest full backup of
the same --name on the hosts (one whose manifest counts, see bk-join(1));
only a first backup, with neither, warns that space is checked as data
flows only, so a nightly bk-push -q prints nothing when all is well.

SFTP hosts are reached with the system ssh ("ssh HOST -s sftp"), in batch
mode even on a terminal, so ~/.ssh/config, the agent and known_hosts apply
and ssh never prompts: a host whose key is unknown or changed is refused,
never accepted, with a hint to check it once by hand (ssh HOST), and a
login must work without a password. A host that fails is named once, with
ssh's reason; what else ssh says is shown as a warning naming the host. A
host that leaves a connection attempt or a request unanswered for
--timeout has failed (an fsync may take longer: the time a disk writing
16 MiB/s takes for the file, at most 35 minutes more): its spare takes the
share if the host took no data yet, else the share is given up. A dropped connection is re-dialled with
backoff and the upload resumed, which a warning says once; after
--retries attempts that share is given up.

S3 keys come from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, else from
~/.aws/credentials (profile= or $AWS_PROFILE, else default); never from
the hosts file. rclone: lines run the system rclone ("rclone rcat",
"moveto", "cat", "lsjson"...) with your rclone config; --rclone or
$BK_RCLONE replaces the command.

Every file is written under a hidden temp name (.tmp-*) and renamed into
place only when the host holds all its bytes, never replacing a file. With
--verify each file is also read back from its temp name and its BLAKE3
hash compared with what was sent before that rename; one that differs is removed
and never appears under its name, and its share counts as failed.
Temp files older than --stale-age, left by killed runs, are removed from
the folders bk-push writes. A share counts as stored only once its host
also holds the manifest. When fewer than --min-shares shares are stored
(by default k: anything restorable is kept, and exit 3 says it is
degraded), bk-push removes what it stored, shares and manifests, so
nothing of the failed backup looks complete anywhere.

With --go-ahead-fd FD (bk-backup(1) runs bk-push so), bk-push stores the
shares, then waits for the line "go" on descriptor FD before it writes a
manifest or advances --state; if the descriptor ends without it (another
stage of the job failed), it removes what it stored and exits 1. A
pipeline typed by hand, without the flag, commits on its own.

With --state, an incremental backup is stored only when the backup it
builds on, and every one that one needs, still stands on the hosts (its
manifest counts, it was not pruned, k of its shares are there): a retention
that keeps nothing recent may have removed it, and an incremental backup on
it would never restore. Else bk-push stores nothing, exits 1 naming it, and
the state stays as it was; bk-pack --full starts a new chain (bk-backup(1)
checks before it starts bk-pack, and does so by itself).

On each host a backup is the files NAME-TIME-SETID.shareI and
NAME-TIME-SETID.manifest.json in the host's folder; see
docs/FORMAT.md (section 5). Restore with bk-join HOSTS | bk-restore.`

// Tool describes bk-push: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:        "bk-push",
		Usage:       "send the shares of a share stream to their hosts, and write a manifest",
		ArgsUsage:   "HOSTS",
		Description: description,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "name", Value: "backup", Usage: "call the backup `NAME` (letters, digits, '.', '_', '-'); its ID is NAME-TIME-SETID"},
			&ucli.IntFlag{Name: "min-shares", Aliases: []string{"m"}, Usage: "keep the backup when at least `M` shares are stored, from k to n but not below what bk-join counts (2 hosts for k=1); 0 means that least (exit 3 says it is degraded)"},
			cli.SizeFlag("expect-size", "", "the `SIZE` of the stream bk-split reads (e.g. 20G), to check free space and quotas before a host takes data; default: that of the newest full backup of --name on the hosts"),
			&ucli.StringFlag{Name: "parent", Usage: "record `ID` as the backup this one builds on"},
			&ucli.StringFlag{Name: "state", Usage: "the state folder `DIR` of bk-pack --state: store the backup only if bk-pack finished it, record its chain in the manifest, then advance the state"},
			&ucli.IntFlag{Name: "go-ahead-fd", Value: -1, Usage: "once the shares are stored, wait for the line \"go\" on descriptor `FD` before writing the manifests (and advancing --state); anything else, or its end, removes what was stored: bk-backup(1) gives it when every other stage succeeded"},
			&ucli.BoolFlag{Name: "verify", Usage: "read every file back before giving it its name, and compare its hash with what was sent (doubles the transfer)"},
			cli.DurationFlag("stale-age", 24*time.Hour, "remove temp files older than `AGE` (e.g. 36h, 2d), as left by a killed run"),
		}, connect.Flags()...),
		Sections: []cli.Section{
			{Title: "Exit status", Body: `0  all n shares and their manifests were stored.

1  failed: fewer than --min-shares shares (each with the manifest on its
host) could be stored (what was stored was removed), the hosts cannot hold
the backup, or the share stream was damaged.

2  usage error: a bad flag, a --min-shares below what bk-join counts, a
bad or missing hosts file, a hosts file with fewer hosts than the stream
has shares, or standard input a terminal.

3  degraded: the backup was kept with fewer than n shares (but at least
--min-shares: by default k, or 2 for k=1 with several hosts, the
least bk-join counts); a share whose host did not take the manifest
does not count. A warning names each failed host.

130  interrupted; nothing of this run is left looking complete. Ctrl-C
stops every stage of a pipeline with 130.`},
			{Title: "Environment", Body: `BK_SSH  the ssh command, as --ssh: e.g. BK_SSH="ssh -F /etc/bk/ssh_config"`},
			{Title: "Examples", Body: `Back up a folder to the hosts of hosts.txt, any 2 of 3 restore it:

  bk-pack -r age1… ~/docs | bk-split -k 2 -n 3 | bk-push hosts.txt > last.json

Nightly from cron, with the size known so full hosts are swapped for spares
before the upload starts:

  30 2 * * *  bk-pack -q -R /etc/bk/recipients /home | bk-split -k 2 -n 3 | bk-push -q --name home --expect-size 50G /etc/bk/hosts > /var/log/bk/last.json

Restore the newest backup, or the one of a manifest:

  bk-join hosts.txt | bk-restore -i key.txt -C restored
  bk-join last.json | bk-restore -i key.txt -C restored`},
			{Title: "See also", Body: "bk-split(1), bk-join(1), bk-pack(1), bk-restore(1), ssh(1), ssh_config(5)"},
		},
		Progress: true,
		Action:   run,
	}
}

// hashesInProcess reports whether uploads to a host of cat, dialled with
// opts, compute in bk-push's own process (remote.HashesInProcess: an S3
// store, or any host with Verify). To the other kinds, bk-push's work is
// system calls (reads of the stream, writes to files, ssh or rclone),
// which run beside its goroutines on a processor of their own however
// many the Go runtime has; with two, the scheduler wakes an idle thread to
// look for work at each hand-over between goroutines, about a quarter of
// bk-push's own CPU to 3 SFTP hosts (bench row 9, perf: futex, nanosleep,
// epoll waits): without such hosts bk-push runs its Go code on one.
func hashesInProcess(cat *catalog.Catalog, opts remote.DialOptions) bool {
	for _, h := range cat.Hosts() {
		if remote.HashesInProcess(h.Location, h.DialOptions(opts)) {
			return true
		}
	}
	return false
}

// Main runs bk-push and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	if c.NArg() != 1 {
		return cli.Usagef("want one HOSTS file, got %d arguments", c.NArg())
	}
	if err := cli.RefuseTerminalInput(env.Stdin, "a share stream", "pipe bk-split's output in: bk-split -k 2 -n 3 < archive | bk-push hosts.txt"); err != nil {
		return err
	}
	name := c.String("name")
	if err := manifest.CheckName(name); err != nil {
		return cli.Usagef("--name: %v", err)
	}
	if p := c.String("parent"); p != "" {
		if _, _, ok := manifest.ParseID(p); !ok {
			return cli.Usagef("--parent %q is not a backup ID (NAME-TIME-SETID)", p)
		}
	}
	expect := int64(-1)
	if c.IsSet("expect-size") {
		expect = cli.Size(c, "expect-size").Bytes
	}
	if c.Int("min-shares") < 0 {
		return cli.Usagef("--min-shares %d: give a count of shares, or 0 for k", c.Int("min-shares"))
	}
	opts, err := connect.Options(env, c, c.Bool("verify"))
	if err != nil {
		return err
	}
	cat, err := connect.Open([]string{c.Args().First()}, opts)
	if err != nil {
		return err
	}
	defer cat.Close()
	if os.Getenv("GOMAXPROCS") == "" && !hashesInProcess(cat, opts.Dial) {
		runtime.GOMAXPROCS(1)
	}
	var hs *handshake
	var before []func(*manifest.Manifest) error
	if fd := c.Int("go-ahead-fd"); fd >= 0 {
		ga, err := openGoAhead(fd)
		if err != nil {
			return cli.Usagef("--go-ahead-fd %d: %v", fd, err)
		}
		defer ga.Close()
		// First: the state handshake must not advance without it.
		before = append(before, func(*manifest.Manifest) error { return waitGoAhead(ga) })
	}
	if check := unchanged(env.Stdin); check != nil {
		before = append(before, check)
	}
	if dir := c.String("state"); dir != "" {
		if c.IsSet("parent") {
			return cli.Usagef("--parent goes without --state, which names the parent itself")
		}
		hs = &handshake{dir: dir, standing: func(id string) error { return standing(ctx, cat, id) }}
		defer hs.close()
		before = append(before, hs.beforeManifest)
	}
	now := cli.Now()
	if dir := c.String("state"); dir != "" {
		now = afterLast(env, dir, now)
	}
	var progress *cli.Progress
	m, err := push.Push(ctx, input(env.Stdin), push.Options{
		BeforeManifest: chain(before),
		Catalog:        cat,
		Name:           name,
		Parent:         c.String("parent"),
		MinShares:      c.Int("min-shares"),
		ExpectSize:     expect,
		StaleAge:       cli.Duration(c, "stale-age"),
		Now:            now,
		Warn: func(format string, args ...any) {
			env.Msg.Warnf(format, args...)
			if len(args) == 1 && args[0] == push.ErrSizeUnknown {
				env.Msg.Hintf("give --expect-size, e.g. --expect-size $(du -sb DIR | cut -f1); later runs take the size of the last backup")
			}
		},
		Note: env.Msg.Notef,
		Progress: func(int64) func(int) {
			// push's total comes from --expect-size or the last backup: a
			// guess, not a total to show as one.
			progress = env.NewProgress(-1, "pushing")
			return progress.Add
		},
	})
	progress.Done()
	if m != nil {
		data, merr := m.Marshal()
		if merr != nil {
			return merr
		}
		if _, werr := env.Stdout.Write(data); werr != nil {
			return fmt.Errorf("writing the manifest to stdout: %w", werr)
		}
		env.Msg.Notef("stored backup %s: %d of %d shares", m.ID, len(m.Shares), m.N)
		if hs != nil {
			if cerr := hs.commit(m); cerr != nil {
				return cerr
			}
		}
	}
	return explain(err)
}

// explain turns push's errors into the tool's: exit codes, and hints that
// name flags.
func explain(err error) error {
	var (
		stream   *push.StreamError
		minErr   *push.MinSharesError
		minVouch *push.MinVouchError
		count    *push.HostCountError
		vouch    *push.VouchError
		same     *push.SameFolderError
		tooFew   *push.TooFewError
		degraded *push.DegradedError
	)
	switch {
	case errors.As(err, &stream):
		if errors.Is(err, shard.ErrIsShare) || errors.Is(err, shard.ErrNotShare) {
			return cli.WithHint(fmt.Errorf("stdin: %w", stream.Err), "bk-push reads what bk-split writes to stdout: bk-split -k 2 -n 3 < archive | bk-push hosts.txt")
		}
	case errors.As(err, &minErr):
		return cli.Usagef("--min-shares %d out of range: the stream has k=%d n=%d, so it must be from %d to %d", minErr.Min, minErr.K, minErr.N, minErr.K, minErr.N)
	case errors.As(err, &minVouch):
		return cli.WithHint(cli.Usagef("--min-shares %d too low: bk-join counts a backup only on %d of the %d hosts, so it must be at least %d; nothing was sent", minVouch.Min, minVouch.Need, minVouch.Hosts, minVouch.Need),
			"leave --min-shares out (the default is the least bk-join counts)")
	case errors.As(err, &count):
		return cli.WithHint(cli.AsUsage(err), "add hosts, or split into fewer shares (bk-split -n)")
	case errors.As(err, &vouch):
		return cli.WithHint(cli.AsUsage(err), "give a 1-of-1 stream a hosts file of its one host, or split into more shares (bk-split -k 1 -n 2)")
	case errors.As(err, &same):
		return cli.WithHint(cli.AsUsage(err), "give each share a disk of its own: drop one of the two lines from the hosts file")
	case errors.As(err, &tooFew) && !tooFew.Picked:
		return cli.WithHint(fmt.Errorf("only %d of %d hosts can take a share, fewer than --min-shares %d; nothing was stored", tooFew.Stored, tooFew.N, tooFew.Min),
			"fix or replace the hosts above, add spare hosts to the hosts file, or lower --min-shares")
	case errors.As(err, &tooFew):
		return cli.WithHint(fmt.Errorf("only %d of %d shares could be stored, fewer than --min-shares %d%s; nothing of this backup was kept%s",
			tooFew.Stored, tooFew.N, tooFew.Min, tooFew.How(), push.FailedList(tooFew.Failed)),
			"fix or replace the failed hosts, add spare hosts, or lower --min-shares")
	case errors.As(err, &degraded):
		return cli.Degradedf("%s", degraded.Error())
	}
	return err
}

// afterLast keeps a series' backups in the order they were made when the
// clock went back (daylight saving on a clock kept in local time, a
// correction): a backup takes a time after the series' last stored one,
// which it may build on. Ordered by time alone, retention would keep the
// earlier backup as "the newest of the day" and remove the one the state
// builds the next incremental on.
func afterLast(env *cli.Env, dir string, now time.Time) time.Time {
	id, _ := state.LastStored(dir) // no state: a first backup, any time will do
	_, last, ok := manifest.ParseID(id)
	if !ok || now.Truncate(time.Second).After(last) {
		return now
	}
	later := last.Add(time.Second)
	env.Msg.Warnf("the clock (%s) is not after the last backup of the series (%s): this backup takes the time %s",
		now.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), later.UTC().Format(time.RFC3339))
	return later
}

// standing is scrub.Standing of backup id, reading the manifests and
// tombstones of id and of the backups it builds on only.
func standing(ctx context.Context, cat *catalog.Catalog, id string) error {
	backups, listings := cat.WithAncestors(ctx, cat.Hosts(), id)
	return scrub.Standing(cat, listings, backups, id)
}
