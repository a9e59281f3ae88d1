// Package pack is the bk-pack command: its flags and wiring.
package pack

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/command/passphrase"
	"github.com/bk-backup/bk/internal/index"
	"github.com/bk-backup/bk/internal/seal"
	"github.com/bk-backup/bk/internal/state"
	"github.com/bk-backup/bk/internal/units"
)

// Tool describes bk-pack: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-pack",
		Usage:     "pack files into a compressed, encrypted archive stream",
		ArgsUsage: "PATH...",
		Description: `bk-pack walks each PATH and writes one archive to standard output (or -o FILE):
a PAX tar stream, compressed with zstd and encrypted with age. Standard tools
read it back without bk:

  age -d -i key.txt < archive | zstd -d | tar -x

Encryption is on by default: name at least one recipient (-r, -R) or ask for
a passphrase (-p). With a public key a cron job holds no secret: only the
restore needs the identity. --plaintext writes an unencrypted archive.

Paths are stored as given, like tar: a leading "/" is removed, so an absolute
PATH restores below the restore folder. Paths that overlap (home home/alice)
are stored once. Regular files, directories, symlinks,
hard links, modes, modification times (nanoseconds), owners and extended
attributes are kept. A file with holes is stored from its data only, as a GNU
sparse 1.0 entry, and restored with its holes (by bk-restore and GNU tar). FIFOs, sockets and devices are skipped with a warning.

A file that cannot be read is skipped with a warning naming it; the rest of
the backup goes on and bk-pack exits 3. A file whose read fails part way (an
I/O error on a failing disk) is stored with zeros in place of what could not
be read and marked damaged in the archive: bk-pack warns and exits 3, and
bk-restore warns naming it and exits 3 too. A file that changed while it was
read gets a warning.

Incremental backups: with --state DIR, bk-pack keeps the file index of the
series in DIR (created mode 0700; it holds file names, keep it on this
machine). The first run is a full backup. Later runs store only entries that
are new or changed (size, times, mode, owner, inode, device, type or link
target differ, or modified within the second the last scan started), plus
every directory with a GNU.dumpdir record listing its content, so deletions
are recorded too. Each archive is still age(zstd(tar)): extracting the full
and each incremental, in order, with tar -x -G into an empty folder gives the
tree. A new chain starts with --full, after --full-after incremental backups
(default 30) or when the full one is older than --full-if-older (default
30d): a nightly job keeps chains of about a month. A lost or damaged state
makes a full backup, with a warning saying why.

The state advances only when the backup was stored: with -o FILE, once FILE
is complete; on standard output, when bk-push --state DIR has stored it. A
run that fails leaves the state as it was, so the next incremental covers
everything since the last stored backup. Two runs of one series at once are
refused.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the archive to `FILE`, which appears only when complete"},
			&ucli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Usage: "encrypt to `RECIPIENT`: an age public key (age1…) or an SSH public key; repeatable"},
			&ucli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}, Usage: "encrypt to the recipients listed in `FILE`, one a line; repeatable"},
			&ucli.BoolFlag{Name: "passphrase", Aliases: []string{"p"}, Usage: "encrypt with a passphrase from $BK_PASSPHRASE, --passphrase-file or the terminal"},
			&ucli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from the first line of `FILE` (implies -p)"},
			&ucli.BoolFlag{Name: "plaintext", Usage: "do not encrypt"},
			&ucli.IntFlag{Name: "level", Aliases: []string{"l"}, Value: seal.DefaultLevel, Usage: "zstd compression `LEVEL`, 1 (fastest) to 19 (smallest), as zstd counts"},
			&ucli.StringSliceFlag{Name: "exclude", Usage: "skip entries whose name or path matches `PATTERN` (shell glob); repeatable"},
			&ucli.StringSliceFlag{Name: "exclude-from", Usage: "read exclude patterns from `FILE`, one a line; repeatable"},
			&ucli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}, Usage: "stay on the file system of each PATH"},
			&ucli.StringFlag{Name: "state", Usage: "keep the state of an incremental series in `DIR`: store only what changed since the last stored backup"},
			&ucli.BoolFlag{Name: "full", Usage: "with --state: make a full backup, starting a new chain"},
			&ucli.IntFlag{Name: "full-after", Value: defaultFullAfter, Usage: "with --state: a full backup after `N` incremental ones"},
			&ucli.StringFlag{Name: "full-if-older", Value: defaultFullIfOlder, Usage: "with --state: a full backup when the chain's full one is older than `DURATION` (30d, 12h)"},
		},
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  the archive is complete.

1  failed: nothing was written under the -o name. Arguments and every PATH
   are checked before the first byte is written, so a run that fails at once
   writes nothing to a pipe either; one that fails later leaves an age stream
   without its final chunk, which does not decrypt as complete. Also when
   the next stage of the pipeline quit before the end.

2  usage error, including no encryption choice, more than 1024 recipients
   (the most an age header holds), and standard output being a terminal.

3  the archive is complete but some files could not be read and were skipped,
   or could be read only in part and are stored marked damaged; each was
   named in a warning.

130  interrupted. Ctrl-C stops every stage of a pipeline with 130, also a
   stage that finds the next one gone first.`},
			{Title: "ENVIRONMENT", Body: `BK_PASSPHRASE  the passphrase for -p, when no --passphrase-file is given.`},
			{Title: "EXAMPLES", Body: `Make a key pair once, keep key.txt offline, encrypt to its public key:

  bk-keygen -o key.txt
  bk-pack -r age1... ~/docs > docs.bk

Nightly, to three hosts, any two of which restore it:

  bk-pack -R /etc/bk/recipients --exclude '*.tmp' /home | bk-split -k 2 -n 3 | bk-push /etc/bk/hosts

Restore with standard tools only:

  age -d -i key.txt < docs.bk | zstd -d | tar -x`},
			{Title: "SEE ALSO", Body: `bk-restore(1), bk-keygen(1), bk-split(1), bk-push(1), age(1), zstd(1), tar(1)`},
		},
		// The measured live heap is about 37 MiB: 2 MiB zstd chunks in
		// flight on each core and the 8 MiB read-ahead.
		MemoryLimit: 48 << 20,
		Progress:    true,
		Action:      run,
	}
}

// Main runs bk-pack and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	if c.NArg() == 0 {
		return cli.Usagef("no PATH to pack")
	}
	recipients, err := recipients(c)
	if err != nil {
		return err
	}
	if level := c.Int("level"); level < 1 || level > 19 {
		return cli.Usagef("--level %d: must be 1 to 19", level)
	}
	excludes, err := excludes(c)
	if err != nil {
		return err
	}
	if err := archive.CheckArgs(c.Args().Slice(), archive.PackOptions{Excludes: excludes}); err != nil {
		return err
	}
	plan, err := planOptions(c)
	if err != nil {
		return err
	}
	out, err := cli.OpenOutput(c.String("output"), env.Stdout, "an archive")
	if err != nil {
		return err
	}
	defer out.Abort()

	opts := archive.PackOptions{
		Excludes:      excludes,
		OneFileSystem: c.Bool("one-file-system"),
		Warn:          env.Msg.Warnf,
	}
	var series *state.Series
	var run *state.Run
	if dir := c.String("state"); dir != "" {
		if series, err = state.Open(dir, "bk-pack"); err != nil {
			return err
		}
		defer series.Close()
		if run, err = beginRun(env, series, plan); err != nil {
			return err
		}
		defer run.Abort()
		opts.Index = run.Tracker
		opts.Deltas = run.Tracker
		opts.Dumpdirs = run.Plan.Level > 0
		if why, warn := run.Tracker.DeltasMissing(); warn {
			env.Msg.Warnf("%s: large files that changed are stored whole this time", why)
		} else if why != "" {
			env.Msg.Notef("%s: large files that changed are stored whole this time", why)
		}
	}

	progress := env.NewProgress(-1, "packing")
	opts.Progress = progress.Add
	counted := &archive.CountWriter{W: out} // the archive's bytes, which bk-push checks
	stats, err := pack(ctx, counted, recipients, c.Int("level"), c.Args().Slice(), opts)
	progress.Done()
	if errors.Is(err, seal.ErrTooManyRecipients) {
		return cli.Usagef("%v", err)
	}
	if err != nil {
		return err
	}
	if run != nil {
		if err := run.Finish(counted.N); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		env.Msg.Notef("level %d backup: %d entries stored, %d unchanged", run.Plan.Level, run.Tracker.Stored, run.Tracker.Unchanged)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if run != nil && c.String("output") != "" {
		// The file is the stored backup.
		if err := series.Commit(run.Pending, state.Member{}); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	env.Msg.Notef("packed %s, %s, %s, %s", cli.Count(stats.Files, "file", "files"), cli.Count(stats.Dirs, "directory", "directories"), cli.Count(stats.Links, "link", "links"), units.Bytes(stats.Bytes))
	var degraded []string
	if stats.Skipped > 0 {
		degraded = append(degraded, cli.Count(int64(stats.Skipped), "entry", "entries")+" could not be read and skipped")
	}
	if stats.Damaged > 0 {
		degraded = append(degraded, cli.Count(int64(stats.Damaged), "file", "files")+" could not be read in full: stored with zeros for the rest, marked damaged")
	}
	if len(degraded) > 0 {
		return cli.Degradedf("%s", strings.Join(degraded, "; "))
	}
	return nil
}

// pack writes tar → zstd → age into out, with the catalogue and the seek
// table in skippable frames of the zstd layer, closing each layer so the age stream
// ends with its final, authenticated chunk. After an error it closes none:
// an age stream without its final chunk never decrypts as complete.
//
// age writes 64 KiB chunks; they reach out gathered into 1 MiB writes, so
// the next stage of a pipeline is woken a sixteenth as often. What was made
// before an error is written too, as it was without the buffer.
func pack(ctx context.Context, out io.Writer, recipients []age.Recipient, level int, paths []string, opts archive.PackOptions) (archive.PackStats, error) {
	w := bufio.NewWriterSize(out, outputBuffer)
	stats, err := packTo(ctx, w, recipients, level, paths, opts)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return stats, err
}

// outputBuffer is the size of bk-pack's writes: the pipes bk's tools
// read grow to 1 MiB (cli.growPipes).
const outputBuffer = 1 << 20

func packTo(ctx context.Context, w io.Writer, recipients []age.Recipient, level int, paths []string, opts archive.PackOptions) (archive.PackStats, error) {
	var encrypted io.WriteCloser = nopCloser{w}
	var sealed []seal.Option
	if len(recipients) > 0 {
		var err error
		if encrypted, err = seal.Encrypt(w, recipients...); err != nil {
			return archive.PackStats{}, err
		}
		sealed = append(sealed, seal.Sealed())
	}
	compressed, err := seal.CompressSeekable(encrypted, level, sealed...)
	if err != nil {
		return archive.PackStats{}, err
	}
	catalogue, err := index.NewWriter(compressed)
	if err != nil {
		return archive.PackStats{}, err
	}
	opts.Entry = func(h *tar.Header, offset int64) error {
		if h == nil {
			return catalogue.End(offset)
		}
		return catalogue.Add(h, offset)
	}
	stats, err := archive.Pack(ctx, compressed, paths, opts)
	if err != nil {
		return stats, err
	}
	if err := compressed.Finish(catalogue.Trailer); err != nil {
		return stats, err
	}
	return stats, encrypted.Close()
}

// Defaults that keep a nightly job's chain at about a month.
const (
	defaultFullAfter   = 30
	defaultFullIfOlder = "30d"
)

// planOptions checks the incremental flags.
func planOptions(c *ucli.Context) (state.PlanOptions, error) {
	o := state.PlanOptions{Full: c.Bool("full"), FullAfter: c.Int("full-after"), Now: cli.Now()}
	if c.String("state") == "" {
		for _, f := range []string{"full", "full-after", "full-if-older"} {
			if c.IsSet(f) {
				return o, cli.Usagef("--%s goes with --state", f)
			}
		}
		return o, nil
	}
	if o.FullAfter < 0 {
		return o, cli.Usagef("--full-after %d: must be 0 or more", o.FullAfter)
	}
	d, err := units.ParseDuration(c.String("full-if-older"))
	if err != nil {
		return o, cli.Usagef("--full-if-older: %v", err)
	}
	o.FullIfOlder = d
	for _, p := range c.Args().Slice() {
		o.Paths = append(o.Paths, archive.MemberName(p))
	}
	return o, nil
}

// beginRun plans the run (saying why it is a full one, when it is) and
// starts it.
func beginRun(env *cli.Env, series *state.Series, o state.PlanOptions) (*state.Run, error) {
	plan, err := series.Plan(o)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	switch {
	case plan.Why != "" && plan.Warn:
		env.Msg.Warnf("%s: making a full backup", plan.Why)
	case plan.Why != "":
		env.Msg.Notef("%s: making a full backup", plan.Why)
	}
	run, err := series.Begin(plan, o.Paths)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return run, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// recipients turns -r, -R and -p into age recipients; none means plaintext,
// which must have been asked for.
func recipients(c *ucli.Context) ([]age.Recipient, error) {
	wantPass := c.Bool("passphrase") || c.IsSet("passphrase-file")
	keys := c.StringSlice("recipient")
	files := c.StringSlice("recipients-file")
	if c.Bool("plaintext") {
		if wantPass || len(keys) > 0 || len(files) > 0 {
			return nil, cli.Usagef("--plaintext goes with no -r, -R or -p")
		}
		return nil, nil
	}
	if wantPass && (len(keys) > 0 || len(files) > 0) {
		// age itself refuses this: a passphrase recipient must be alone.
		return nil, cli.Usagef("-p can't be combined with -r or -R")
	}
	if !wantPass && len(keys) == 0 && len(files) == 0 {
		return nil, cli.WithHint(cli.Usagef("no recipient given"),
			"encrypt with -r age1… (make a key with bk-keygen), -R FILE or -p; or ask for --plaintext")
	}
	if wantPass {
		pass, err := passphrase.Load(c.String("passphrase-file"), true)
		if err != nil {
			return nil, err
		}
		r, err := seal.PassphraseRecipient(pass)
		if err != nil {
			return nil, err
		}
		return []age.Recipient{r}, nil
	}
	var out []age.Recipient
	for _, k := range keys {
		r, err := seal.ParseRecipient(k)
		if err != nil {
			return nil, cli.Usagef("-r %s: %v", k, err)
		}
		out = append(out, r)
	}
	for _, f := range files {
		rs, err := seal.ReadRecipientsFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func excludes(c *ucli.Context) ([]string, error) {
	patterns := c.StringSlice("exclude")
	for _, f := range c.StringSlice("exclude-from") {
		lines, err := cli.ReadLines(f)
		if err != nil {
			return nil, err
		}
		patterns = append(patterns, lines...)
	}
	return patterns, nil
}
