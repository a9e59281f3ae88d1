// Package restore is the bk-restore command: its flags and wiring.
package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/chain"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/passphrase"
	"github.com/bk-backup/bk/internal/seal"
	"github.com/bk-backup/bk/internal/seek"
	"github.com/bk-backup/bk/internal/units"
)

// Tool describes bk-restore: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-restore",
		Usage:     "restore, list or check an archive made by bk-pack",
		ArgsUsage: "-C DIR [PATTERN...]",
		Description: `bk-restore reads an archive from standard input (or -f FILE) and restores it
into DIR. It recognises age encryption, zstd compression and plain tar by
their first bytes, so it also restores a "tar | zstd" stream made without bk.

Nothing appears in DIR under its final name until the whole stream has been
read and authenticated: entries are written into a staging folder inside DIR
and moved into place at the end. A truncated or tampered archive, or a wrong
key, fails with nothing restored.

Extraction is safe against hostile archives: absolute names, ".." and writes
through symlinks are refused, setuid/setgid bits are dropped (unless
--same-permissions or root), device nodes are not created (unless --devices),
and a symlink already in DIR is never followed. DIR must be empty or absent
unless --overwrite is given.

Runs of zeros in files (and the holes of sparse files) are restored as holes,
in whole 4 KiB blocks, so a sparse file takes no more room than it did.

PATTERNs restore a subset: a shell glob matched against the stored path, or
a path prefix (a directory and everything under it).

Incremental backups (bk-pack --state) restore as a chain: the full backup,
then each incremental one up to the chosen backup, in order. bk-join sends
the whole chain in one stream; from files, give -f once for each, the full
one first. bk-restore applies them in order, deletions included, and still
moves nothing into DIR until every archive of the chain was read and
authenticated. -t lists the tree as of the last backup of the chain;
--check verifies every archive of it.

Restoring a few files reads only them. With PATTERNs and -f FILE, or with
--from HOSTS, bk-restore finds the selected entries in the archive's
catalogue (bk-pack writes one inside the zstd layer) and reads only the age
chunks and zstd frames that hold them; from the hosts, only the stripes of
the shares under those are fetched, each checked as bk-join checks it, and a
missing host or a bad share is named and costs exit 3, as with bk-join.
--from picks the newest backup on the hosts, or --name's, or --backup's
(bk-find says which backups hold a file), or the newest made before
--before's time, and restores through its chain:
each path from the newest backup holding it as of the one chosen, and what
was deleted since is not brought back. The entries go through the same
checks, staging and refusals as a full restore, with their exact metadata.
A selected hard link whose target the PATTERNs leave out brings the target
along (restored too, linked), where reading a whole stream must skip the
link (exit 3): the catalogue tells ahead which file it needs. -t with
--from lists the tree as of the backup picked from the catalogues of its
chain, reading little more than them (files marked damaged are not flagged
there: --check reads the whole backup).
An archive without a catalogue (made by an older bk-pack, or by
tar | zstd | age) is read whole, as bk-join | bk-restore would, and a note
says why.`,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "directory", Aliases: []string{"C"}, Usage: "restore into `DIR` (created if absent)"},
			&ucli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the archive from `FILE` instead of standard input; repeated, the archives of a chain, the full one first"},
			&ucli.StringSliceFlag{Name: "identity", Aliases: []string{"i"}, Usage: "decrypt with the age identity or SSH private key in `FILE`; repeatable"},
			&ucli.BoolFlag{Name: "passphrase", Aliases: []string{"p"}, Usage: "decrypt with a passphrase from $BK_PASSPHRASE, --passphrase-file or the terminal"},
			&ucli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from the first line of `FILE`"},
			&ucli.BoolFlag{Name: "list", Aliases: []string{"t"}, Usage: "list the entries (mode, owner, size, time, path) instead of restoring"},
			&ucli.BoolFlag{Name: "check", Usage: "read and verify the whole archive, write nothing: the restore drill"},
			&ucli.BoolFlag{Name: "overwrite", Usage: "restore into a non-empty DIR, replacing entries of the same name"},
			&ucli.BoolFlag{Name: "same-permissions", Usage: "keep setuid, setgid and sticky bits"},
			&ucli.BoolFlag{Name: "same-owner", Usage: "restore owners (the default when run as root)"},
			&ucli.BoolFlag{Name: "no-same-owner", Usage: "do not restore owners, even as root"},
			&ucli.BoolFlag{Name: "devices", Usage: "create device nodes and FIFOs found in the archive"},
		}, fromFlags()...),
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  everything was restored (or listed, or checked) and the archive verified.

1  failed: the archive is damaged, truncated, not authentic, or the key is
   wrong; an entry was refused as unsafe (or is a device, without --devices);
   a PATTERN matched nothing. Nothing was moved into DIR.

2  usage error, including standard input being a terminal (without -f).

3  restored (or listed, or checked), but some entries were skipped (a hard
   link whose target a PATTERN left out), or some files are marked damaged:
   bk-pack met a read error part way through them and stored zeros for the
   rest. Each was named in a warning.

130  interrupted; nothing was moved into DIR. Ctrl-C stops every stage of
   a pipeline with 130.`},
			{Title: "ENVIRONMENT", Body: `BK_PASSPHRASE  the passphrase for -p, when no --passphrase-file is given.`},
			{Title: "EXAMPLES", Body: `Restore from the hosts, with one host gone:

  bk-join hosts.txt | bk-restore -i key.txt -C ~/restored

The monthly restore drill, from cron, writing nothing:

  bk-join /etc/bk/hosts | bk-restore -q -i /root/key.txt --check

Restore only one folder from an archive file:

  bk-restore -i key.txt -f docs.bk -C /tmp/r home/me/docs/taxes

One file straight from the hosts, from the backup bk-find named:

  bk-find -i key.txt hosts.txt taxes
  bk-restore --from hosts.txt --backup ID -i key.txt -C /tmp/r home/me/taxes.pdf`},
			{Title: "SEE ALSO", Body: `bk-pack(1), bk-join(1), bk-find(1), age(1), zstd(1), tar(1)`},
		},
		Progress: true,
		Action:   run,
	}
}

// Main runs bk-restore and returns its exit code.
func Main(args []string, stdio cli.Stdio) int {
	return cli.Main(Tool(), args, stdio)
}

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	list, check, dir := c.Bool("list"), c.Bool("check"), c.String("directory")
	switch {
	case list && check:
		return cli.Usagef("-t and --check exclude each other")
	case (list || check) && dir != "":
		return cli.Usagef("-C goes with restoring, not with -t or --check")
	case !list && !check && dir == "":
		return cli.Usagef("no -C DIR to restore into")
	}
	before, err := cli.Time(c, "before")
	if err != nil {
		return err
	}
	keys, err := passphrase.Keys(c.StringSlice("identity"), c.String("passphrase-file"))
	if err != nil {
		return err
	}
	patterns := c.Args().Slice()
	opts := archive.RestoreOptions{
		Patterns:        patterns,
		Overwrite:       c.Bool("overwrite"),
		SamePermissions: c.Bool("same-permissions") || os.Geteuid() == 0,
		Owners:          !c.Bool("no-same-owner") && (c.Bool("same-owner") || os.Geteuid() == 0),
		Devices:         c.Bool("devices"),
		Warn:            env.Msg.Warnf,
	}
	if len(c.StringSlice("from")) > 0 {
		switch {
		case check:
			return cli.WithHint(cli.Usagef("--from restores or lists selected files: --check reads whole backups"), "check a backup with: bk-join HOSTS | bk-restore --check")
		case len(c.StringSlice("file")) > 0:
			return cli.Usagef("--from and -f exclude each other")
		case len(patterns) == 0 && !list:
			return cli.WithHint(cli.Usagef("--from restores selected files: give a PATTERN"), "restore a whole backup with: bk-join HOSTS | bk-restore -C DIR")
		}
		stats, report, err := restoreFrom(ctx, env, c, before, keys, dir, opts, list)
		if err := finish(env, stats, err, keys, list, false); err != nil {
			return err
		}
		if report.Degraded() {
			verb := "restored"
			if list {
				verb = "listed"
			}
			return cli.Degradedf("%s, but not from healthy shares: %s", verb, degradedShares(report))
		}
		return nil
	}
	for _, f := range []string{"backup", "name", "before"} {
		if c.IsSet(f) {
			return cli.Usagef("--%s goes with --from", f)
		}
	}
	if dir != "" && len(patterns) > 0 && len(c.StringSlice("file")) > 0 && !slices.Contains(c.StringSlice("file"), "-") {
		stats, err := restoreInPieces(ctx, env, c.StringSlice("file"), keys, dir, opts)
		var whole *seek.NotSeekableError
		if errors.As(err, &whole) {
			env.Msg.Notef("reading the archives whole: %v", err)
		} else {
			return finish(env, stats, err, keys, false, false)
		}
	}
	progress := env.NewProgress(filesSize(c.StringSlice("file")), "restoring")
	defer progress.Done()
	members, chained, closeAll, err := openMembers(c.StringSlice("file"), env.Stdin, keys, progress.Reader)
	if err != nil {
		return err
	}
	defer closeAll()

	var stats archive.RestoreStats
	switch {
	case list:
		stats, err = listArchives(ctx, members, chained, env, patterns)
	case check:
		stats, err = archive.CheckChain(ctx, members, patterns, env.Msg.Warnf)
	default:
		stats, err = archive.ExtractChain(ctx, members, dir, opts)
	}
	progress.Done()
	return finish(env, stats, err, keys, list, check)
}

// finish reports how a restore, list or check went.
func finish(env *cli.Env, stats archive.RestoreStats, err error, keys seal.Keys, list, check bool) error {
	if errors.Is(err, archive.ErrNotEmpty) {
		err = cli.WithHint(err, "restore into a new folder, or give --overwrite to replace entries in this one")
	}
	if errors.Is(err, archive.ErrNotInArchive) {
		err = cli.WithHint(err, "a PATTERN is a path as stored, e.g. home/alice/docs: bk-restore -t (with --from HOSTS too) lists them, bk-find -i KEY HOSTS FRAGMENT finds them")
	}
	if err != nil {
		return passphrase.Hint(err, len(keys.Identities) > 0)
	}
	verb := "restored"
	switch {
	case list:
		verb = "listed"
	case check:
		verb = "checked"
	}
	env.Msg.Notef("%s %s, %s, %s, %s", verb, cli.Count(stats.Files, "file", "files"), cli.Count(stats.Dirs, "directory", "directories"), cli.Count(stats.Links, "link", "links"), units.Bytes(stats.Bytes))
	var degraded []string
	if stats.Damaged > 0 {
		degraded = append(degraded, cli.Count(int64(stats.Damaged), "file is", "files are")+" damaged (bk-pack could not read all of it)")
	}
	if stats.Skipped > 0 {
		degraded = append(degraded, cli.Count(int64(stats.Skipped), "entry was", "entries were")+" skipped")
	}
	if len(degraded) > 0 {
		return cli.Degradedf("%s", strings.Join(degraded, "; "))
	}
	return nil
}

// restoreInPieces restores what the patterns select from the archive
// files (a chain: the full one first), reading only the frames that hold
// it. An archive without a seek table or catalogue is a
// *seek.NotSeekableError, before anything is restored.
func restoreInPieces(ctx context.Context, env *cli.Env, files []string, keys seal.Keys, dir string, opts archive.RestoreOptions) (archive.RestoreStats, error) {
	var chain []*seek.Archive
	defer func() {
		for _, a := range chain {
			a.Close()
		}
	}()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return archive.RestoreStats{}, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return archive.RestoreStats{}, err
		}
		if !st.Mode().IsRegular() {
			return archive.RestoreStats{}, &seek.NotSeekableError{Name: name, Why: "not a regular file"}
		}
		a, err := seek.Open(name, f, st.Size(), keys)
		if err != nil {
			return archive.RestoreStats{}, err
		}
		if len(files) == 1 {
			a.Name = ""
		}
		chain = append(chain, a)
	}
	env.Msg.Notef("reading only the selected entries, through the archives' catalogues")
	return seek.Restore(ctx, chain, dir, opts)
}

// openMembers opens the archives to restore as a chain: the files given
// (one or more), or standard input, which holds one archive or a chain
// stream from bk-join. Each archive is decrypted and decompressed as it is
// reached.
// filesSize is the size of the archive files, the total the progress
// shows; -1 when it is not known (standard input).
func filesSize(files []string) int64 {
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if f == "-" || err != nil || !st.Mode().IsRegular() {
			return -1
		}
		total += st.Size()
	}
	if len(files) == 0 {
		return -1
	}
	return total
}

func openMembers(files []string, stdin io.Reader, keys seal.Keys, progress func(io.Reader) io.Reader) (members archive.Members, chained bool, closeAll func(), err error) {
	var next func() (string, io.Reader, error)
	var input io.Closer = io.NopCloser(nil)
	switch {
	case len(files) > 1 || (len(files) == 1 && files[0] != "-"):
		chained = len(files) > 1
		i := 0
		next = func() (string, io.Reader, error) {
			if i == len(files) {
				return "", nil, io.EOF
			}
			f, err := os.Open(files[i])
			if err != nil {
				return "", nil, err
			}
			input.Close()
			input = f
			i++
			if len(files) == 1 {
				return "", f, nil
			}
			return files[i-1], f, nil
		}
	default:
		if err := cli.RefuseTerminalInput(stdin, "an archive", "pipe an archive in, or give -f FILE"); err != nil {
			return nil, false, nil, err
		}
		br := bufio.NewReaderSize(stdin, 64<<10)
		if !chain.IsChain(br) {
			next = archive.Single(br)
			break
		}
		cr, err := chain.NewReader(br)
		if err != nil {
			return nil, false, nil, err
		}
		next = cr.Next
		chained = true
	}
	var stream io.ReadCloser
	closeAll = func() {
		if stream != nil {
			stream.Close()
		}
		input.Close()
	}
	members = func() (string, io.Reader, error) {
		if stream != nil {
			stream.Close()
			stream = nil
		}
		name, r, err := next()
		if err != nil {
			return name, nil, err
		}
		s, _, err := seal.Open(progress(r), keys)
		if err != nil {
			if name != "" {
				err = fmt.Errorf("backup %s: %w", name, err)
			}
			return name, nil, err
		}
		stream = s
		return name, s, nil
	}
	return members, chained, closeAll, nil
}

// listArchives lists one archive in its own order, or the tree a chain leaves.
func listArchives(ctx context.Context, members archive.Members, chained bool, env *cli.Env, patterns []string) (archive.RestoreStats, error) {
	if chained {
		return archive.ListChain(ctx, members, env.Stdout, patterns, env.Msg.Warnf)
	}
	_, r, err := members()
	if err != nil {
		return archive.RestoreStats{}, err
	}
	return archive.List(ctx, r, env.Stdout, patterns, env.Msg.Warnf)
}
