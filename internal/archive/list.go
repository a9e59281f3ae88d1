package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// List reads the tar stream r with the same rules as Extract and writes one
// line per selected entry to w, like tar -tv: mode, owner/group, size (or
// major,minor for a device), mtime (local time), path, then "-> target" for a
// symlink or "link to target" for a hard link. Unusual bytes in names are
// escaped as GNU tar does (\\, \n, \t, \ooo). warn (may be nil) receives
// a warning for each selected file marked damaged.
func List(ctx context.Context, r io.Reader, w io.Writer, patterns []string, warn func(string, ...any)) (RestoreStats, error) {
	return scanAll(ctx, r, patterns, warn, newLister(w))
}

// Check reads and checks the tar stream r as Extract would (headers, safety
// rules, the stream to its end) and writes nothing. Device entries are
// refused, as by a restore that does not allow them. warn (may be nil)
// receives a warning for each selected file marked damaged.
func Check(ctx context.Context, r io.Reader, patterns []string, warn func(string, ...any)) (RestoreStats, error) {
	return scanAll(ctx, r, patterns, warn, nil)
}

func scanAll(ctx context.Context, r io.Reader, patterns []string, warn func(string, ...any), l *lister) (RestoreStats, error) {
	var stats RestoreStats
	sc, err := newScanner(ctx, r, patterns, nil, warn, l != nil)
	if err != nil {
		return stats, err
	}
	err = scanEntries(sc, &stats, l)
	if l != nil {
		if ferr := l.w.Flush(); err == nil {
			err = ferr
		}
	}
	return stats, err
}

// scanEntries reads the scanner's archive to its end, counting (and, with
// a lister, listing) the selected entries.
func scanEntries(sc *scanner, stats *RestoreStats, l *lister) error {
	for {
		e, err := sc.next()
		if err == io.EOF {
			stats.Damaged += sc.damaged
			return nil
		}
		if err != nil {
			return err
		}
		if e.selected {
			stats.count(e)
			if l != nil {
				l.line(e.h)
			}
		}
		if _, err := sc.copyContent(io.Discard, e); err != nil {
			return err
		}
	}
}

func newLister(w io.Writer) *lister {
	return &lister{w: bufio.NewWriter(w), width: 19, loc: time.Local}
}

type lister struct {
	w     *bufio.Writer
	width int // GNU tar's running width of "owner/group size"
	loc   *time.Location
}

func (l *lister) line(h *tar.Header) {
	owner := h.Uname
	if owner == "" {
		owner = strconv.Itoa(h.Uid)
	}
	group := h.Gname
	if group == "" {
		group = strconv.Itoa(h.Gid)
	}
	size := strconv.FormatInt(h.Size, 10)
	switch h.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		size = fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
	case tar.TypeLink, tar.TypeSymlink, tar.TypeDir, tar.TypeFifo:
		size = "0"
	}
	pad := len(owner) + 1 + len(group) + 1 + len(size)
	if pad > l.width {
		l.width = pad
	}
	fmt.Fprintf(l.w, "%s %s/%s %*s %s %s", modeString(h), owner, group, l.width-pad+len(size), size,
		h.ModTime.In(l.loc).Format("2006-01-02 15:04"), quoteName(h.Name))
	switch h.Typeflag {
	case tar.TypeSymlink:
		fmt.Fprintf(l.w, " -> %s", quoteName(h.Linkname))
	case tar.TypeLink:
		fmt.Fprintf(l.w, " link to %s", quoteName(h.Linkname))
	}
	l.w.WriteByte('\n')
}

var typeChars = map[byte]byte{tar.TypeReg: '-', tar.TypeDir: 'd', tar.TypeSymlink: 'l', tar.TypeLink: 'h',
	tar.TypeChar: 'c', tar.TypeBlock: 'b', tar.TypeFifo: 'p'}

// modeString renders a mode as ls and tar do, e.g. "drwxr-xr-x", "-rwsr-x---".
func modeString(h *tar.Header) string {
	b := []byte("?rwxrwxrwx")
	if c, ok := typeChars[h.Typeflag]; ok {
		b[0] = c
	}
	for i := range 9 {
		if h.Mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit int64, at int, set, unset byte) {
		if h.Mode&bit != 0 {
			if b[at] == '-' {
				b[at] = unset
			} else {
				b[at] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

// quoteName escapes a name the way GNU tar's default quoting does.
func quoteName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
