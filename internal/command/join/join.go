// Package join is the bk-join command: its flags and wiring.
package join

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/shard"
)

// Tool describes bk-join: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-join",
		Usage:     "rebuild a stream from K of its N shares",
		ArgsUsage: "[SOURCE...]",
		Description: `bk-join rebuilds the stream that bk-split cut into shares and writes it to
standard output (or -o FILE). Each SOURCE is a share file or a folder holding
share files; without SOURCE it reads a share stream from standard input, so
"bk-split ... | bk-join" is a round trip. A single file holding a saved share
stream is read as one too.

It reads the blocks of K shares, data shares first, which need no
decoding, and the checksums that every other reachable share keeps of them
(skipping their blocks, except on S3, where one GET reads the checksums of
the records in 128 KiB, blocks of less than 128 KiB between them included;
through rclone whole shares are read), and checks every block used against
all those records. A missing, damaged, truncated or padded part of a share is treated
as missing for that stripe only, and another share's block is read there
instead, so two shares damaged in different stripes still rebuild. A share
altered together with its own checksums is caught through the others'
records. Fewer than K dishonest hosts, even colluding, cannot change the
stream nor stop the restore; K or more can at most make it fail, naming
the shares of the two versions they make (docs/FORMAT.md, "Reading
shares").

Missing shares are normal: up to N-K of them cost a warning, not an
error, but the exit status is 3. A few missing shares are named a line
each; more than five are counted in one line that names the first four,
and -v names every one. Every damaged share is named in a
warning. The whole stream's length and checksum are checked against the
shares' trailers before its last stripe is written, so the output is never
longer than what verified; a trailer counts only when the rebuilt data
confirms it, and where trailers disagree, the one K shares hold.

The set rebuilt is the one a manifest names, or the one most shares belong
to; a share of another set is a bad share. Shares of two sets in equal
numbers are refused. The same share given twice counts once.

A SOURCE may also be a manifest that bk-push printed or stored (bk-join
reads the shares it lists from their hosts), or a hosts file (bk-join reads
the manifests on its hosts and joins the newest backup, or the one --backup,
--name or --before picks; --list lists them). A folder that holds manifests is a host
too, like a hosts file of one line; a folder of share files and no manifest
is a set of shares. What a SOURCE is, is told from its content.

An incremental backup (bk-pack --state) restores with its chain: from a
hosts file or a manifest, bk-join outputs the full backup and each
incremental one up to the chosen one, each checked against the manifests
(the chosen backup's manifest pins every ancestor's set and stream hash),
in one chain stream that bk-restore reads (docs/FORMAT.md, section 7). A
missing link is an error naming the backup. A backup without a parent is
output as stored, a plain archive; --single outputs the chosen backup's own
archive even when it is incremental. Share files or a folder of shares
alone do not know their chain: they give that one stream as it is.
--before TIME picks the newest backup made before TIME. Shares are
fetched from several hosts at once and only K good ones are needed: a host
that is down, or sends a damaged block, is named in a warning and another
host read in its place. SFTP hosts are reached with the system ssh, as by
bk-push.

Each share is looked for on every host given, not only where the manifest
says, so a disk mounted elsewhere or a NAS with a new address restores
through a hosts file that says where it is now (with a manifest too:
bk-join last.json HOSTS).

A manifest found on the hosts counts only when identical copies stand on at
least max(2, k) of the hosts given (all of them, when fewer are given), and
its k and n are those of the earlier backups of its name: so one host, or
fewer than k colluding ones, cannot plant a backup. One that does not count
is skipped with a warning naming the hosts that hold it, and the next newest
is taken; --backup ID takes it anyway, with a warning. A manifest given as a
file is trusted as given. The rebuilt stream must have the manifest's set,
length and hash; its last stripe is held back until it does, so a stream
that is not the manifest's never comes out whole.`,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the stream to `FILE`, which appears only when complete and verified"},
			&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "name every missing share in a warning of its own, not only the first few"},
		}, hostFlags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  the stream was rebuilt completely and matches its length and checksum,
and every share read was healthy.

1  failed: fewer than K good blocks in some stripe (the message names the
stripe, how many good blocks it had, and each share that was missing or
bad), two versions of a stripe or of the stream's end each held by K
shares (the message names both groups), shares of two sets in equal
numbers, or no share at all. Standard output then holds only whole stripes
that verified, a prefix of the stream; with -o no file appears. Also when
the next stage of the pipeline quit before the end.

2  usage error: a bad flag, a bad hosts file, standard output a terminal,
or standard input one when no SOURCE is given.

3  the stream was rebuilt completely and verified, but a share was missing
or bad (a block, a record, a trailer, a share of another set, an
unreachable host), or a share stream lacked its end frame: each is named
in a warning. The output is whole; the backup needs repair.

130  interrupted. Ctrl-C stops every stage of a pipeline with 130, also a
stage that finds the next one gone first.`},
			{Title: "EXAMPLES", Body: `Rebuild from the share files in a folder, some of which may be lost:

  bk-join shares/ > db.dump

From share files in several places:

  bk-join /mnt/a/share-0.bks /mnt/b/share-3.bks /mnt/c/share-5.bks -o backup.bk

The newest backup on the hosts of a hosts file, with hosts down; another
one by name; what is there:

  bk-join /etc/bk/hosts | bk-restore -i key.txt -C restored
  bk-join --name home /etc/bk/hosts | bk-restore -i key.txt --check
  bk-join --list /etc/bk/hosts

The backup a manifest describes (bk-push prints it):

  bk-join last.json | bk-restore -i key.txt -C restored

A round trip through a pipe:

  bk-split -k 4 -n 6 < file | bk-join | cmp - file`},
			{Title: "SEE ALSO", Body: `bk-split(1), bk-restore(1), bk-push(1); docs/FORMAT.md describes the share format and manifests.`},
		},
		Progress: true,
		// The live heap is a few MiB of buffers, allocated anew for each
		// backup of a chain: collecting when the heap is five times it,
		// not twice, cut bk-join's CPU time by 18 % over the soak's
		// restores (issue 16), for 6 to 8 MiB more of memory.
		GCPercent: 400,
		Action:    run,
	}
}

// Main runs bk-join and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	if c.Bool("list") {
		return listBackups(ctx, env, c)
	}
	out, err := cli.OpenOutput(c.String("output"), env.Stdout, "a rebuilt stream")
	if err != nil {
		return err
	}
	defer out.Abort()
	opts := shard.JoinOptions{Warn: env.Msg.Warnf, Note: env.Msg.Notef, EachMissing: c.Bool("verbose")}
	progress := env.NewProgress(-1, "joining")
	defer progress.Done()
	w := progress.Writer(out)

	var report shard.JoinReport
	if c.NArg() == 0 {
		if err := cli.RefuseTerminalInput(env.Stdin, "a share stream", "pipe a share stream in, or give SOURCEs: share files, folders, a manifest or a hosts file"); err != nil {
			return err
		}
		report, err = shard.JoinStream(ctx, env.Stdin, w, opts)
	} else {
		report, err = joinSources(ctx, env, c, w, opts)
	}
	if err != nil {
		return explain(err)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	return degraded(report, opts.EachMissing)
}

// degraded is exit 3 when the stream, though whole and verified, was
// rebuilt around a share that was missing or bad. Many missing shares are
// summed up unless each is to be named.
func degraded(r shard.JoinReport, eachMissing bool) error {
	if !r.Degraded() {
		return nil
	}
	var parts []string
	switch {
	case len(r.Missing) > 0 && eachMissing:
		parts = append(parts, "missing "+strings.Join(r.Missing, ", "))
	case len(r.Missing) > 0:
		parts = append(parts, "missing "+shard.Summary(r.Missing))
	}
	if len(r.Damaged) > 0 {
		parts = append(parts, "bad "+strings.Join(r.Damaged, ", "))
	}
	if r.Incomplete != nil {
		parts = append(parts, "share stream incomplete")
	}
	return cli.Degradedf("stream rebuilt and verified, but not from healthy shares: %s", strings.Join(parts, "; "))
}

// sourcesOf turns the SOURCE arguments into shard sources, each file once.
func sourcesOf(args []string) ([]shard.Source, error) {
	var sources []shard.Source
	var seen []os.FileInfo
	add := func(src shard.FileSource) error {
		st, err := os.Stat(string(src))
		if err != nil {
			return err
		}
		for _, s := range seen {
			if os.SameFile(s, st) {
				return nil
			}
		}
		seen = append(seen, st)
		sources = append(sources, src)
		return nil
	}
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", arg, errors.Unwrap(err))
		}
		if !st.IsDir() {
			if err := add(shard.FileSource(arg)); err != nil {
				return nil, err
			}
			continue
		}
		inDir, err := shard.DirSources(arg)
		if err != nil {
			return nil, err
		}
		if len(inDir) == 0 {
			return nil, fmt.Errorf("source %s: empty folder", arg)
		}
		for _, src := range inDir {
			if err := add(src.(shard.FileSource)); err != nil {
				return nil, err
			}
		}
	}
	return sources, nil
}

// streamFile opens path if it holds a saved share stream.
func streamFile(path string) (*os.File, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	if _, err := shard.ReadHeader(f); !errors.Is(err, shard.ErrIsStream) {
		f.Close()
		return nil, false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// explain adds a hint to the errors a user can fix.
func explain(err error) error {
	switch {
	case errors.Is(err, shard.ErrMixedSets):
		return cli.WithHint(err, "give the shares of one set only; a folder's files all count")
	case errors.Is(err, shard.ErrIsShare):
		return cli.WithHint(errors.New("standard input is a share file, not a share stream"),
			"give share files as arguments: bk-join FILE...")
	case errors.Is(err, shard.ErrNotShare):
		return errors.New("standard input is not a bk share stream")
	}
	return err
}
