// Package seek restores selected entries of archives read in pieces: the
// age layer through age's ReaderAt, the zstd frames through the seek table,
// the entries through the catalogue (internal/index), so that restoring one
// file reads the few frames that hold it, not the whole backup. What it
// reads goes through the same extractor as a full restore
// (archive.ExtractChain), with its checks, staging and refusals.
package seek

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/bk-backup/bk/internal/archive"
	"github.com/bk-backup/bk/internal/index"
	"github.com/bk-backup/bk/internal/seal"
)

// NotSeekableError says why an archive cannot be read in pieces, so must
// be read whole: no seek table or catalogue (made before bk wrote them, or
// by tar | zstd | age), or layers age's ReaderAt cannot read (armor).
type NotSeekableError struct {
	Name string // the archive, for messages
	Why  string
}

func (e *NotSeekableError) Error() string {
	if e.Name == "" {
		return e.Why
	}
	return e.Name + ": " + e.Why
}

// Archive is one archive opened for reading in pieces.
type Archive struct {
	Name      string // for messages: a backup ID or a file name
	Catalogue *index.Catalogue
	data      *seal.FrameReader
}

// Open opens the archive r of size bytes for reading in pieces. An archive
// that has no seek table or catalogue is a *NotSeekableError; a wrong key
// is seal's error, a catalogue or seek table that does not add up an error
// saying so.
func Open(name string, r io.ReaderAt, size int64, keys seal.Keys) (*Archive, error) {
	zr, zsize, _, err := seal.OpenAt(r, size, keys)
	if errors.Is(err, seal.ErrNotSeekable) {
		return nil, &NotSeekableError{name, "not a binary age or zstd stream (armored, or plain tar)"}
	}
	if err != nil {
		return nil, named(name, err)
	}
	t, err := seal.ReadSeekTable(zr, zsize)
	if errors.Is(err, seal.ErrNoSeekTable) {
		return nil, &NotSeekableError{name, "the archive has no seek table (made by an older bk-pack, or not by bk-pack)"}
	}
	if err != nil {
		return nil, named(name, err)
	}
	c, err := index.Open(zr, t)
	if errors.Is(err, index.ErrNoCatalogue) {
		return nil, &NotSeekableError{name, "the archive has no catalogue"}
	}
	if err != nil {
		return nil, named(name, err)
	}
	fr, err := seal.NewFrameReader(zr, t)
	if err != nil {
		return nil, err
	}
	if c.End > fr.Size() {
		fr.Close()
		return nil, named(name, fmt.Errorf("catalogue: the tar stream ends at %d, not %d: damaged", fr.Size(), c.End))
	}
	return &Archive{Name: name, Catalogue: c, data: fr}, nil
}

func named(name string, err error) error {
	if name == "" {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// Close releases the archive's decoder.
func (a *Archive) Close() { a.data.Close() }

// pick is what to read of each archive of a chain.
type pick struct {
	entries [][]index.Entry // per archive, in stream order
	added   map[pickKey]bool
	// pulled are the hard link targets the patterns left out, restored
	// so that the links can be made.
	pulled []string
}

type pickKey struct {
	member int
	offset int64
}

func (p *pick) add(i int, e index.Entry) {
	if !p.added[pickKey{i, e.Offset}] {
		p.added[pickKey{i, e.Offset}] = true
		p.entries[i] = append(p.entries[i], e)
	}
}

// seen is an entry of a catalogue, with the archive of the chain it is in.
type seen struct {
	member int
	e      index.Entry
}

// plan chooses, from the catalogues, the entries a restore with patterns
// needs from each archive of the chain (the full backup first):
//   - each selected name that is not a directory, from the last archive
//     that holds it (its newest version), or, when that is a delta, from
//     the last archive that holds it whole, with every delta after it;
//   - each selected directory, and each directory above a selected entry
//     that records deletions (a GNU.dumpdir), from every archive that holds
//     it: applying them in order removes what was deleted, as a full
//     restore of the chain does;
//   - any symlink of the same archive above a selected entry, so that the
//     extractor refuses the entry as it would in a full restore;
//   - the file each selected hard link points to, from the link's archive
//     (a hard link names an earlier file of its own archive), and when the
//     patterns leave that file out, its name too, as above: the file is
//     restored, as of the chain's last archive, so that the link can be
//     made.
func plan(ctx context.Context, chain []*Archive, match func(string) bool) (*pick, error) {
	p := &pick{entries: make([][]index.Entry, len(chain)), added: map[pickKey]bool{}}
	links, err := p.names(ctx, chain, match)
	if err != nil {
		return nil, err
	}
	pulled := map[string]bool{}
	for _, l := range links {
		target := path.Clean(l.e.Link)
		found := false
		err := chain[l.member].Catalogue.Each(func(e *index.Entry) error {
			if e.Offset >= l.e.Offset {
				return io.EOF
			}
			if e.Name == target && e.Type == tar.TypeReg {
				p.add(l.member, *e)
				found = true
			}
			return nil
		})
		if err != nil && err != io.EOF {
			return nil, named(chain[l.member].Name, err)
		}
		// A link to no earlier file is left for the extractor to refuse, as
		// a full restore does.
		if found && !match(target) && !pulled[target] {
			pulled[target] = true
			p.pulled = append(p.pulled, target)
		}
	}
	if len(pulled) > 0 {
		// The targets are regular files: no hard links among them.
		if _, err := p.names(ctx, chain, func(name string) bool { return pulled[name] }); err != nil {
			return nil, err
		}
	}
	for i := range p.entries {
		slices.SortFunc(p.entries[i], func(a, b index.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	return p, nil
}

// names adds the entries of the names match selects, their directories
// and symlinks, as plan says, and returns the hard links among them.
func (p *pick) names(ctx context.Context, chain []*Archive, match func(string) bool) ([]seen, error) {
	found := map[string][]seen{} // selected name → its entries, in chain order
	var names []string           // in the order first found
	dumpdirs := make([]map[string]index.Entry, len(chain))
	symlinks := make([]map[string]index.Entry, len(chain))
	for i, a := range chain {
		dumpdirs[i], symlinks[i] = map[string]index.Entry{}, map[string]index.Entry{}
		err := a.Catalogue.Each(func(e *index.Entry) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch {
			case e.Type == tar.TypeDir && e.Flags&index.FlagDumpdir != 0:
				dumpdirs[i][e.Name] = *e
			case e.Type == tar.TypeSymlink:
				symlinks[i][e.Name] = *e
			}
			if name := e.Target(); match(name) {
				if found[name] == nil {
					names = append(names, name)
				}
				found[name] = append(found[name], seen{i, *e})
			}
			return nil
		})
		if err != nil {
			return nil, named(a.Name, err)
		}
	}
	var links []seen
	for _, name := range names {
		all := found[name]
		// The newest whole version: the last entry that is not a delta.
		from := len(all) - 1
		for from > 0 && all[from].e.Flags&index.FlagDelta != 0 {
			from--
		}
		for j, s := range all {
			e := s.e
			if e.Type != tar.TypeDir && j < from {
				continue
			}
			p.add(s.member, e)
			if e.Type == tar.TypeLink {
				links = append(links, s)
			}
			for dir := e.Name; dir != "."; {
				dir = path.Dir(dir)
				if l, ok := symlinks[s.member][dir]; ok {
					p.add(s.member, l)
				}
				for k := range chain {
					if d, ok := dumpdirs[k][dir]; ok {
						p.add(k, d)
					}
				}
			}
		}
	}
	return links, nil
}

// Restore restores into dir the entries opts.Patterns select from the
// chain of archives (the full backup first; one archive alone is a chain
// of one), reading only those entries, as archive.ExtractChain restores
// the whole chain. Patterns are required: without them the whole archive
// is read, and a full restore does that better.
func Restore(ctx context.Context, chain []*Archive, dir string, opts archive.RestoreOptions) (archive.RestoreStats, error) {
	if len(opts.Patterns) == 0 {
		return archive.RestoreStats{}, errors.New("restoring in pieces needs patterns")
	}
	match, err := archive.Matcher(opts.Patterns)
	if err != nil {
		return archive.RestoreStats{}, err
	}
	p, err := plan(ctx, chain, match)
	if err != nil {
		return archive.RestoreStats{}, err
	}
	// The hard link targets pulled in are restored as if asked for, each
	// by its exact name.
	for _, name := range p.pulled {
		opts.Patterns = append(slices.Clip(opts.Patterns), globEscape(name))
	}
	i := 0
	members := func() (string, io.Reader, error) {
		if i == len(chain) {
			return "", nil, io.EOF
		}
		a, entries := chain[i], p.entries[i]
		i++
		name := a.Name
		if len(chain) == 1 {
			name = ""
		}
		return name, &pieces{a: a, entries: entries}, nil
	}
	return archive.ExtractChain(ctx, members, dir, opts)
}

// globEscape is a pattern that matches name alone (and what is under it).
func globEscape(name string) string {
	var b strings.Builder
	for _, c := range name {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// endOfArchive is the two zero blocks that end a tar stream.
var endOfArchive = make([]byte, 1024)

// pieces is the tar stream of some entries of an archive: each entry's
// bytes, read at its offset after checking that the header there is the
// entry's, then the end-of-archive marker.
type pieces struct {
	a       *Archive
	entries []index.Entry
	cur     io.Reader
	ended   bool
}

func (p *pieces) Read(b []byte) (int, error) {
	for {
		if p.cur != nil {
			n, err := p.cur.Read(b)
			if err == io.EOF {
				p.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		if len(p.entries) == 0 {
			if p.ended {
				return 0, io.EOF
			}
			p.ended = true
			p.cur = bytes.NewReader(endOfArchive)
			continue
		}
		e := p.entries[0]
		p.entries = p.entries[1:]
		if err := p.check(e); err != nil {
			return 0, err
		}
		p.cur = io.NewSectionReader(p.a.data, e.Offset, e.Length)
	}
}

// check reads the header at e's offset: it must be e's, or the catalogue
// does not describe this archive.
func (p *pieces) check(e index.Entry) error {
	if _, err := p.a.header(e); err != nil {
		return named(p.a.Name, err)
	}
	return nil
}

// header reads the header (and its PAX records) of entry e, which must be
// e's, or the catalogue does not describe this archive.
func (a *Archive) header(e index.Entry) (*tar.Header, error) {
	if e.Offset+e.Length > a.Catalogue.End {
		return nil, fmt.Errorf("catalogue: entry %q runs past the end of the tar stream: damaged", e.Name)
	}
	h, err := tar.NewReader(io.NewSectionReader(a.data, e.Offset, e.Length)).Next()
	if err != nil {
		return nil, fmt.Errorf("catalogue: no tar entry at byte %d, where it puts %q: %v", e.Offset, e.Name, err)
	}
	if name := strings.TrimSuffix(h.Name, "/"); path.Clean(name) != e.Name || h.Typeflag != e.Type {
		return nil, fmt.Errorf("catalogue: the entry at byte %d is %q, not %q as it says", e.Offset, h.Name, e.Name)
	}
	return h, nil
}

// List writes the tree the chain of archives leaves (the full backup
// first), as archive.ListChain does, from their catalogues. Only the
// headers that change what an earlier archive left are read: those of
// deltas, and of the directories of later archives that record deletions.
// A damage marker is not in the catalogue: files marked damaged are not
// warned about, as a full listing would.
func List(ctx context.Context, chain []*Archive, w io.Writer, patterns []string) (archive.RestoreStats, error) {
	t, err := archive.NewTree(patterns)
	if err != nil {
		return archive.RestoreStats{}, err
	}
	for i, a := range chain {
		err := a.Catalogue.Each(func(e *index.Entry) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.Flags&index.FlagDelta != 0 || (i > 0 && e.Flags&index.FlagDumpdir != 0) {
				h, err := a.header(*e)
				if err != nil {
					return err
				}
				return t.Add(h)
			}
			return t.Add(catalogued(e))
		})
		if err != nil {
			return archive.RestoreStats{}, named(a.Name, err)
		}
	}
	return t.List(w)
}

// catalogued is the header of e as its catalogue entry gives it: all a
// listing shows.
func catalogued(e *index.Entry) *tar.Header {
	name := e.Name
	if e.Type == tar.TypeDir {
		name += "/"
	}
	return &tar.Header{Typeflag: e.Type, Name: name, Mode: e.Mode, Uid: e.Uid, Gid: e.Gid, Uname: e.Uname,
		Gname: e.Gname, ModTime: e.ModTime, Size: e.Size, Linkname: e.Link}
}
