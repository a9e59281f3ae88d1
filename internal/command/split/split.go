// Package split is the bk-split command: its flags and wiring.
package split

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/shard"
	"github.com/bk-backup/bk/internal/units"
)

// Tool describes bk-split: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-split",
		Usage:     "cut a stream into N erasure-coded shares, any K of which rebuild it",
		ArgsUsage: "[FILE]",
		Description: `bk-split reads a byte stream from standard input (or FILE) and cuts it into
N shares with Reed-Solomon erasure coding, so that any K of them rebuild it
bit for bit with bk-join. Any stream will do: bk-pack's, a tar piped through
zstd, a database dump, an existing file.

The stream is read in stripes of K blocks of --block-size bytes, so its
length need not be known and memory stays at a few stripes whatever its size.
Each share holds one block of every stripe, so it is about 1/K of the stream.

Without -o the N shares go to standard output as one share stream: frames
that each name their share, for bk-push to send to N hosts, or for bk-join
to read back. With -o DIR they are written as N files, share-0.bks ... in
DIR, which appear only when complete.

Every share names its set (a random set ID), K, N and its own index, and
keeps, for every stripe, a BLAKE3 checksum of every share's block in that
stripe. A share that was damaged, or altered with its own checksums
recomputed, is caught through the others. Its trailer holds the stream's
exact length and a checksum of the whole stream.`,
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "k", Usage: "any `K` shares rebuild the stream (1 ≤ K ≤ N; K = N: no spare share)", Required: true},
			&ucli.IntFlag{Name: "n", Usage: "make `N` shares in all (N ≤ 256)", Required: true},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the shares as files in `DIR` (created if missing) instead of a share stream to stdout"},
			cli.SizeFlag("block-size", units.Bytes(shard.DefaultBlockSize).String(), "cut the stream into blocks of `SIZE`, a multiple of 64 from 64 to 16M (K and M are 1024s)"),
			&ucli.StringFlag{Name: "label", Usage: "keep `TEXT` (up to 256 bytes) in every share's header, e.g. what the stream is"},
			&ucli.BoolFlag{Name: "allow-empty", Usage: "split an empty input; without it an empty input is refused, since it most likely means that the stage before bk-split failed"},
		},
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  all N shares were written completely.

1  failed: reading the input or writing a share went wrong, or the input was
empty (without --allow-empty). With -o no share
file appears; on standard output the share stream has no end frame, so
bk-join and bk-push see that it is incomplete. Also when the next stage of
the pipeline quit before the end.

2  usage error: K or N out of range, a bad block size or label, a stripe
(N blocks) above 256 MiB, standard output a terminal (use -o DIR), or
standard input one.

130  interrupted. Ctrl-C stops every stage of a pipeline with 130, also a
   stage that finds the next one gone first.`},
			{Title: "EXAMPLES", Body: `Back up to three hosts, any two of which restore:

  bk-pack -r age1... ~/docs | bk-split -k 2 -n 3 | bk-push hosts

Cut an existing file into six share files, any four of which rebuild it:

  bk-split -k 4 -n 6 -o shares/ db.dump
  bk-join shares/ > db.dump

A round trip through a pipe:

  tar c photos | zstd | bk-split -k 3 -n 5 | bk-join | zstd -d | tar x`},
			{Title: "SEE ALSO", Body: `bk-join(1), bk-push(1), bk-pack(1); docs/FORMAT.md describes the share format.`},
		},
		Progress: true,
		Action:   run,
	}
}

// Main runs bk-split and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	if c.NArg() > 1 {
		return cli.Usagef("more than one FILE to split")
	}
	k, n := c.Int("k"), c.Int("n")
	if k < 1 || n > shard.MaxShares || k > n {
		return cli.Usagef("-k %d -n %d: need 1 ≤ K ≤ N ≤ %d", k, n, shard.MaxShares)
	}
	block := cli.Size(c, "block-size")
	if block.Bytes < 64 || block.Bytes > shard.MaxBlockSize || block.Bytes%64 != 0 {
		return cli.Usagef("--block-size %s: not a multiple of 64 from 64 to %s", block, block.Format(shard.MaxBlockSize))
	}
	bs := int(block.Bytes)
	opts := shard.SplitOptions{K: k, N: n, BlockSize: bs, Label: c.String("label"), AllowEmpty: c.Bool("allow-empty")}
	info := shard.SetInfo{K: k, N: n, BlockSize: bs, Label: opts.Label}
	if err := info.Check(); err != nil {
		return cli.Usagef("%v", err)
	}
	if err := info.CheckMemory(); err != nil {
		return cli.WithHint(cli.Usagef("%v", err), "--block-size "+units.Bytes(int64(shard.FittingBlockSize(n))).String()+" fits")
	}
	dir := c.String("output")
	if dir == "" {
		if err := cli.RefuseTerminal(env.Stdout, "a share stream", "-o DIR"); err != nil {
			return err
		}
	}

	in, size, err := input(env, c.Args().First())
	if err != nil {
		return err
	}
	defer in.Close()
	progress := env.NewProgress(size, "splitting")
	defer progress.Done()
	r := progress.Reader(in)

	if dir == "" {
		_, _, err = shard.SplitStream(ctx, r, env.Stdout, opts)
	} else {
		err = splitToDir(ctx, env, r, dir, opts)
	}
	if errors.Is(err, shard.ErrEmpty) {
		return cli.WithHint(errors.New("the input is empty: nothing written (did the stage before bk-split fail?)"),
			"--allow-empty splits an empty stream on purpose")
	}
	return err
}

// input opens FILE, or stdin for "" and "-"; size is -1 when unknown.
func input(env *cli.Env, name string) (io.ReadCloser, int64, error) {
	if name == "" || name == "-" {
		if err := cli.RefuseTerminalInput(env.Stdin, "a stream to split", "pipe a stream in, or name a FILE"); err != nil {
			return nil, 0, err
		}
		return io.NopCloser(env.Stdin), -1, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a folder, not a stream", name)
	}
	return f, st.Size(), nil
}

// ShareName is the file name of share index in a set of n shares.
func ShareName(index, n int) string {
	return fmt.Sprintf("share-%0*d.bks", len(strconv.Itoa(n-1)), index)
}

// splitToDir writes the shares as files that appear only when all of them
// are complete.
func splitToDir(ctx context.Context, env *cli.Env, r io.Reader, dir string, opts shard.SplitOptions) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	outs := make([]*cli.Output, opts.N)
	ws := make([]io.Writer, opts.N)
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Abort()
			}
		}
	}()
	for i := range outs {
		o, err := cli.OpenOutput(filepath.Join(dir, ShareName(i, opts.N)), nil, "")
		if err != nil {
			return err
		}
		outs[i], ws[i] = o, o
	}
	info, t, err := shard.Split(ctx, r, ws, opts)
	if err != nil {
		return err
	}
	for _, o := range outs {
		if err := o.Commit(); err != nil {
			return err
		}
	}
	env.Msg.Notef("set %s: %d shares in %s, any %d of which rebuild %s", info.ShortID(), info.N, dir, info.K, units.Bytes(t.Length))
	return nil
}
