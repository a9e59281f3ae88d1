package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote/local"
)

// Hosts reads the HOSTS arguments of the tools that work on the hosts
// alone (bk-ls, bk-check): each is a hosts file, or a folder that is a
// host itself, like a hosts file of one line.
func Hosts(args []string) ([]hostsfile.Host, error) {
	if len(args) == 0 {
		return nil, cli.Usagef("no HOSTS given: name a hosts file or a host folder")
	}
	var hosts []hostsfile.Host
	for _, arg := range args {
		st, err := os.Stat(arg)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("hosts file or folder %s: %w", arg, pe.Err)
		}
		if err != nil {
			return nil, cli.AsUsage(err)
		}
		if st.IsDir() {
			abs, err := filepath.Abs(arg)
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: abs}})
			continue
		}
		hs, err := hostsfile.ParseFile(arg)
		if err != nil {
			return nil, cli.AsUsage(err)
		}
		if len(hs) == 0 {
			return nil, cli.Usagef("no hosts in %s", arg)
		}
		hosts = append(hosts, hs...)
	}
	return hosts, nil
}

// List makes the catalog of the HOSTS arguments and lists what each host
// holds (catalog.ListBackups: every manifest, and the tombstones of the
// backups they are of), warning about each host that cannot be reached
// and each manifest that cannot be read. unreachable says whether a host
// could not be listed. The caller closes the catalog.
func List(ctx context.Context, env *cli.Env, c *ucli.Context) (cat *catalog.Catalog, listings []*catalog.Listing, unreachable bool, err error) {
	return ListHosts(ctx, env, c, c.Args().Slice())
}

// ListAll is List reading every tombstone too, the old ones bk-prune
// removes among them.
func ListAll(ctx context.Context, env *cli.Env, c *ucli.Context) (cat *catalog.Catalog, listings []*catalog.Listing, unreachable bool, err error) {
	return list(ctx, env, c, c.Args().Slice(), func(cat *catalog.Catalog) []*catalog.Listing { return cat.List(ctx, cat.Hosts(), nil) })
}

// ListHosts is List of the hosts files and folders args.
func ListHosts(ctx context.Context, env *cli.Env, c *ucli.Context, args []string) (cat *catalog.Catalog, listings []*catalog.Listing, unreachable bool, err error) {
	return list(ctx, env, c, args, func(cat *catalog.Catalog) []*catalog.Listing { return cat.ListBackups(ctx, cat.Hosts()) })
}

func list(ctx context.Context, env *cli.Env, c *ucli.Context, args []string, read func(*catalog.Catalog) []*catalog.Listing) (cat *catalog.Catalog, listings []*catalog.Listing, unreachable bool, err error) {
	hosts, err := Hosts(args)
	if err != nil {
		return nil, nil, false, err
	}
	opts, err := Options(env, c, false)
	if err != nil {
		return nil, nil, false, err
	}
	cat = catalog.New(hosts, opts)
	listings = read(cat)
	unreachable = Unreachable(env, listings)
	Damaged(env, listings)
	return cat, listings, unreachable, ctx.Err()
}

// Unreachable warns about each host of listings that could not be listed,
// and reports whether there was one.
func Unreachable(env *cli.Env, listings []*catalog.Listing) bool {
	return warnUnreachable(env, listings, "%v")
}

// Skip warns about each host of listings that could not be listed, as
// skipped: a reader does without it.
func Skip(env *cli.Env, listings []*catalog.Listing) {
	warnUnreachable(env, listings, "%v; skipped")
}

func warnUnreachable(env *cli.Env, listings []*catalog.Listing, format string) bool {
	unreachable := false
	for _, l := range listings {
		if l.Err != nil {
			unreachable = true
			env.Msg.Warnf(format, l.Err)
		}
	}
	return unreachable
}

// Damaged warns about each manifest and tombstone of listings that could
// not be read or parsed.
func Damaged(env *cli.Env, listings []*catalog.Listing) {
	for _, l := range listings {
		for _, d := range l.Damaged {
			env.Msg.Warnf("host %s: %v", l.Host, d)
		}
	}
}

// Find makes the catalog of the hosts files and folders args and finds the
// backup q asks for there (catalog.Find: the manifests of the newest
// candidates only), warning about each host that cannot be reached and
// each manifest read that cannot be. The caller closes the catalog.
func Find(ctx context.Context, env *cli.Env, c *ucli.Context, args []string, q catalog.Query) (*catalog.Catalog, *catalog.Backup, []*catalog.Listing, error) {
	hosts, err := Hosts(args)
	if err != nil {
		return nil, nil, nil, err
	}
	opts, err := Options(env, c, false)
	if err != nil {
		return nil, nil, nil, err
	}
	cat := catalog.New(hosts, opts)
	b, listings, err := FindIn(ctx, env, cat, q)
	return cat, b, listings, err
}

// FindIn is Find in the catalog cat.
func FindIn(ctx context.Context, env *cli.Env, cat *catalog.Catalog, q catalog.Query) (*catalog.Backup, []*catalog.Listing, error) {
	// The hosts are listed once: this warns before Find's own warnings.
	Skip(env, cat.List(ctx, cat.Hosts(), func(string) bool { return false }))
	b, listings, err := cat.Find(ctx, q)
	Damaged(env, listings)
	if ctx.Err() != nil {
		return nil, listings, ctx.Err()
	}
	return b, listings, err
}

// WriteJSON writes v to w as indented JSON, the way the tools' --json
// reports look.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
