package join

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/push/connect"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/shard"
)

// hostFlags pick a backup when a SOURCE is a hosts file.
func hostFlags() []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "backup", Usage: "join the backup with this `ID` rather than the newest (with a hosts file)"},
		&ucli.StringFlag{Name: "name", Usage: "join the newest backup of this `NAME` (bk-push --name) (with a hosts file)"},
		&ucli.BoolFlag{Name: "list", Usage: "list the backups whose manifests the SOURCEs hold or name, newest first, and exit"},
	}, connect.Flags()...)
}

// maxManifest bounds what is read of a manifest on a host.
const maxManifest = 1 << 20

// kind is what a SOURCE file holds, judged by its first bytes.
type kind int

const (
	kindShare kind = iota // a share file, a share stream, or unknown: shard handles it
	kindManifest
	kindHosts
)

func sniff(path string) (kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return kindShare, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.IsDir() {
		return kindShare, err
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return kindShare, err
	}
	head = head[:n]
	switch {
	case strings.HasPrefix(string(head), "bk-sh"):
		return kindShare, nil
	case manifest.Sniff(head):
		return kindManifest, nil
	case isText(head):
		return kindHosts, nil
	}
	return kindShare, nil
}

// isText tells a hosts file from binary data: printable UTF-8 lines.
func isText(b []byte) bool {
	for _, c := range string(b) {
		if c == 0xfffd || (c < ' ' && c != '\n' && c != '\t' && c != '\r') {
			return false
		}
	}
	return len(b) > 0
}

// remoteSet is what the manifest and hosts-file SOURCEs add: the shares of
// one backup on their hosts, each host dialled when first read.
type remoteSet struct {
	env   *cli.Env
	dial  connect.Dial
	hosts map[string]*conn // by host URL
	// manifests found, by ID; found counts the hosts that hold each.
	manifests map[string]*manifest.Manifest
	found     map[string]int
	fromHosts bool // a hosts file was given: pick a backup among manifests
	given     []*manifest.Manifest
}

// openRemote takes the manifest and hosts-file SOURCEs out of args, reads
// the manifests they hold or name, and returns the rest of args for the
// share files and folders.
func openRemote(ctx context.Context, env *cli.Env, c *ucli.Context, args []string) (*remoteSet, []string, error) {
	dial, err := connect.Dialer(env, c)
	if err != nil {
		return nil, nil, err
	}
	rs := &remoteSet{env: env, dial: dial, hosts: map[string]*conn{},
		manifests: map[string]*manifest.Manifest{}, found: map[string]int{}}
	var rest, hostFiles []string
	for _, arg := range args {
		k, err := sniff(arg)
		if err != nil {
			rest = append(rest, arg) // sourcesOf says what is wrong with it
			continue
		}
		switch k {
		case kindManifest:
			data, err := os.ReadFile(arg)
			if err != nil {
				return nil, nil, err
			}
			m, err := manifest.Parse(data)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", arg, err)
			}
			rs.given = append(rs.given, m)
			rs.add(m)
		case kindHosts:
			hostFiles = append(hostFiles, arg)
		default:
			rest = append(rest, arg)
		}
	}
	if len(hostFiles) > 0 {
		rs.fromHosts = true
		if err := rs.scan(ctx, hostFiles); err != nil {
			return nil, nil, err
		}
	}
	if (c.String("backup") != "" || c.String("name") != "") && !rs.fromHosts {
		return nil, nil, cli.Usagef("--backup and --name pick a backup on the hosts of a hosts file; give one as SOURCE")
	}
	return rs, rest, nil
}

func (rs *remoteSet) add(m *manifest.Manifest) {
	if _, ok := rs.manifests[m.ID]; !ok {
		rs.manifests[m.ID] = m
	}
	rs.found[m.ID]++
}

// conn returns the connection to the host of url, made on first use.
func (rs *remoteSet) conn(h hostsfile.Host) *conn {
	url := manifest.HostURL(h)
	if c, ok := rs.hosts[url]; ok {
		return c
	}
	c := &conn{host: h, dial: rs.dial}
	rs.hosts[url] = c
	return c
}

// scan reads the manifests on every host of the hosts files, all at once.
// A host that cannot be reached or read costs a warning.
func (rs *remoteSet) scan(ctx context.Context, files []string) error {
	var conns []*conn
	for _, f := range files {
		hosts, err := hostsfile.ParseFile(f)
		if err != nil {
			return cli.WithHint(err, "a SOURCE that is neither a share nor a manifest is read as a hosts file")
		}
		for _, h := range hosts {
			c := rs.conn(h)
			if !slices.Contains(conns, c) {
				conns = append(conns, c)
			}
		}
	}
	if len(conns) == 0 {
		return fmt.Errorf("no hosts in %s", strings.Join(files, ", "))
	}
	found := make([][]*manifest.Manifest, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var err error
			found[i], err = c.manifests(ctx, rs.env.Msg)
			if err != nil {
				rs.env.Msg.Warnf("%v; skipped", err)
			}
		})
	}
	wg.Wait()
	for _, ms := range found {
		for _, m := range ms {
			rs.add(m)
		}
	}
	return ctx.Err()
}

// pick chooses the backup to join: the given manifests, or among those on
// the hosts the one --backup or --name names, else the newest.
func (rs *remoteSet) pick(c *ucli.Context) (*manifest.Manifest, error) {
	if !rs.fromHosts {
		if len(rs.given) == 0 {
			return nil, nil
		}
		return rs.given[0], nil
	}
	all := rs.sorted()
	id, name := c.String("backup"), c.String("name")
	for _, m := range all {
		if (id == "" || m.ID == id) && (name == "" || m.Name == name) {
			return m, nil
		}
	}
	what := "no backup"
	switch {
	case id != "":
		what = "no backup " + id
	case name != "":
		what = "no backup named " + name
	}
	return nil, cli.WithHint(fmt.Errorf("%s found on the hosts reached", what), "bk-join --list HOSTS lists the backups found")
}

func (rs *remoteSet) sorted() []*manifest.Manifest {
	var all []*manifest.Manifest
	for _, m := range rs.manifests {
		all = append(all, m)
	}
	manifest.SortNewestFirst(all)
	return all
}

// sources returns the shares of the chosen backup. With several manifests
// given, the shares of all count (shard refuses to mix sets).
func (rs *remoteSet) sources(c *ucli.Context) ([]shard.Source, error) {
	chosen, err := rs.pick(c)
	if err != nil || chosen == nil {
		return nil, err
	}
	ms := []*manifest.Manifest{chosen}
	if !rs.fromHosts {
		ms = rs.given
	}
	if rs.fromHosts {
		rs.env.Msg.Notef("joining backup %s (%s)", chosen.ID, cli.Bytes(chosen.StreamSize))
	}
	var sources []shard.Source
	for _, m := range ms {
		for _, s := range m.Shares {
			h, err := manifest.ParseHost(s.Host)
			if err != nil {
				return nil, err
			}
			c := rs.conn(h)
			if c.failed() {
				continue // warned about while scanning; shard counts the share as missing
			}
			sources = append(sources, &hostShare{c: c, path: s.Path})
		}
	}
	return sources, nil
}

// list prints the backups found, newest first.
func (rs *remoteSet) list(w io.Writer) error {
	all := rs.sorted()
	if len(all) == 0 {
		return errors.New("no backup found")
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tK/N\tSIZE\tSHARES\tMANIFESTS\tLABEL")
	for _, m := range all {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%d\t%d\t%s\n", m.ID, m.Time.Format("2006-01-02 15:04:05Z"),
			m.K, m.N, cli.Bytes(m.StreamSize), len(m.Shares), rs.found[m.ID], m.Label)
	}
	return tw.Flush()
}

func (rs *remoteSet) Close() {
	for _, c := range rs.hosts {
		c.close()
	}
}

// conn is one host, dialled once on first use; a failed dial is not
// retried, so a host that is down costs one timeout, not one per stripe.
type conn struct {
	host hostsfile.Host
	dial connect.Dial

	mu    sync.Mutex // held while dialling: callers want the same connection
	tried bool
	r     remote.Remote
	err   error
}

func (c *conn) get(ctx context.Context) (remote.Remote, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tried {
		c.tried = true
		c.r, c.err = c.dial(ctx, c.host)
	}
	return c.r, c.err
}

// failed reports whether the host was dialled and could not be reached.
func (c *conn) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tried && c.err != nil
}

func (c *conn) close() {
	if c.r != nil {
		c.r.Close()
	}
}

// manifests reads the manifests in the host's folder; a damaged one costs
// a warning.
func (c *conn) manifests(ctx context.Context, msg *cli.Messages) ([]*manifest.Manifest, error) {
	r, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := r.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []*manifest.Manifest
	for _, fi := range infos {
		if _, ok := manifest.IDFromManifestPath(fi.Name); !ok || fi.Dir {
			continue
		}
		m, err := readManifest(ctx, r, fi.Name)
		if err != nil {
			msg.Warnf("host %s: %s: %v", c.host, fi.Name, err)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func readManifest(ctx context.Context, r remote.Remote, name string) (*manifest.Manifest, error) {
	rc, err := r.Open(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(bufio.NewReader(rc), maxManifest))
	if err != nil {
		return nil, err
	}
	return manifest.Parse(data)
}

// hostShare is a share on a host, as a shard.Source.
type hostShare struct {
	c    *conn
	path string
}

func (s *hostShare) Name() string { return "host " + s.c.host.String() }

func (s *hostShare) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	r, err := s.c.get(ctx)
	if err == nil {
		var rc io.ReadCloser
		if rc, err = r.Open(ctx, s.path, offset); err == nil {
			return rc, nil
		}
	}
	return nil, hostless{s.Name() + ": ", err}
}

// hostless drops the "host X: " that remote errors start with, since
// messages about a source start with its name already.
type hostless struct {
	prefix string
	err    error
}

func (h hostless) Error() string { return strings.TrimPrefix(h.err.Error(), h.prefix) }
func (h hostless) Unwrap() error { return h.err }

// listBackups is bk-join --list.
func listBackups(ctx context.Context, env *cli.Env, c *ucli.Context) error {
	rs, _, err := openRemote(ctx, env, c, c.Args().Slice())
	if err != nil {
		return err
	}
	defer rs.Close()
	return rs.list(env.Stdout)
}
