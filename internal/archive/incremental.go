package archive

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Index tells Pack which entries of the tree changed since an earlier
// backup, so that it writes an incremental archive. Pack calls it from one
// goroutine for the listings (tops first, then each directory in walk
// order, before the directory's own entry is written) and from another for
// Unstored.
type Index interface {
	// Tops is given the paths to pack, by member name, and says which to
	// store. Directories are always stored (their content is walked).
	Tops(tops []Child) ([]bool, error)
	// List is given the listing of directory dir (a member name) under the
	// top with the given index, sorted by name, and says which children to
	// store.
	List(top int, dir string, children []Child) ([]bool, error)
	// Unstored is told of a member List or Tops chose that could not be
	// stored, or only in part (unreadable, vanished, a read error).
	Unstored(name string)
}

// Child is one entry of a directory listing given to an Index.
type Child struct {
	Name   string      // base name; for Tops, the member name
	Info   fs.FileInfo // from Lstat
	Target string      // a symlink's target
}

// dumpdirRecord is the PAX record of GNU tar's incremental format that
// lists a directory's content: "Y" name stored in this archive, "N" name
// unchanged (in an earlier archive), "D" name a directory; each followed by
// a NUL, the list ending with an empty name.
const dumpdirRecord = "GNU.dumpdir"

// walked is one entry of a directory listing on its way to visit.
type walked struct {
	disk, name string
	fi         fs.FileInfo
	listed     int // index in the listing given to the Index, or -1
}

// listDir reads and Lstats the content of the directory disk (member name
// name), leaving out excluded names. Special files stay in the result (visit
// warns about them) but out of the listing an Index sees. Once the context
// is done it returns the context's error.
func (p *packer) listDir(disk, name string) ([]walked, []Child, error) {
	ents, err := os.ReadDir(disk)
	if err != nil {
		return nil, nil, err
	}
	kids := make([]walked, 0, len(ents))
	var listing []Child
	for _, e := range ents {
		child := filepath.Join(disk, e.Name())
		member := path.Join(name, e.Name())
		if excluded(p.opts.Excludes, member) {
			continue
		}
		fi, err := os.Lstat(child)
		if err != nil {
			if !p.notef(true, "skipping %s: %v", child, err) {
				return nil, nil, p.ctx.Err()
			}
			continue
		}
		w := walked{disk: child, name: member, fi: fi, listed: -1}
		if c, ok := childOf(e.Name(), child, fi); ok {
			w.listed = len(listing)
			listing = append(listing, c)
		}
		kids = append(kids, w)
	}
	return kids, listing, nil
}

// childOf describes an entry for an Index, or says it is one Pack does not
// store (a special file).
func childOf(name, disk string, fi fs.FileInfo) (Child, bool) {
	c := Child{Name: name, Info: fi}
	m := fi.Mode()
	switch {
	case m.IsRegular(), m.IsDir():
	case m&fs.ModeSymlink != 0:
		// An unreadable target is stored as none: the entry then counts as
		// changed, and visit reports the error.
		c.Target, _ = os.Readlink(disk)
	default:
		return c, false
	}
	return c, true
}

// dumpdir builds the GNU.dumpdir value of a listing.
func dumpdir(listing []Child, store []bool) string {
	var b strings.Builder
	for i, c := range listing {
		switch {
		case c.Info.IsDir():
			b.WriteByte('D')
		case store[i]:
			b.WriteByte('Y')
		default:
			b.WriteByte('N')
		}
		b.WriteString(c.Name)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	return b.String()
}

// unstored tells the Index, if any, that a chosen member was not stored.
func (p *packer) unstored(name string) {
	if p.opts.Index != nil {
		p.opts.Index.Unstored(name)
	}
}

// MemberName is the name Pack stores the path p under.
func MemberName(p string) string {
	name, _ := storedName(p)
	return name
}
