// Package hostsfile parses the hosts file: one backup destination a line,
// each with optional key=value options such as a quota. It splits a line
// into destination and options; the kind of host the destination names
// parses it (package remote's registry, filled by package kinds). Section 4
// of docs/FORMAT.md describes the syntax.
package hostsfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/units"
)

// Host is one destination of the hosts file: where it is, parsed by its
// kind of host (package remote's registry), and the options of its line.
type Host struct {
	File string // the hosts file, for messages ("" when parsed from a string)
	Line int    // 1-based line number
	remote.Location
	Quota units.Size // bytes bk may use there, 0 for no limit; as written, for messages
	// AppendOnly is the line's append-only= option.
	AppendOnly AppendOnly
	// Verify is the line's verify=yes: uploads there are read back and
	// compared, as with bk-push --verify.
	Verify bool
	// NoFsync is the line's fsync=no: uploads there do not wait for the
	// host's disk.
	NoFsync bool
}

// AppendOnly says how a host keeps a compromised client from destroying
// its backups (README, "Protect backups from the client").
type AppendOnly int

const (
	// NotAppendOnly: the account may remove files (append-only=no, the
	// default).
	NotAppendOnly AppendOnly = iota
	// AppendOnlyClient: the account may create files and nothing else
	// destructive (append-only=yes). bk never removes there, and bk-ls and
	// bk-check report a host that allows more.
	AppendOnlyClient
	// AppendOnlyAdmin: the folder is an append-only host's, reached with
	// credentials that may remove (append-only=admin, in the admin hosts
	// file): bk-prune removes there, ordering backups by the time the host
	// stored them.
	AppendOnlyAdmin
)

// DialOptions are opts for dialling h: with AppendOnly set for an
// append-only=yes line, AppendOnlyAdmin for an append-only=admin one,
// Verify for a verify=yes one and NoFsync for an fsync=no one.
func (h Host) DialOptions(opts remote.DialOptions) remote.DialOptions {
	opts.AppendOnly = h.AppendOnly == AppendOnlyClient
	opts.AppendOnlyAdmin = h.AppendOnly == AppendOnlyAdmin
	opts.Verify = opts.Verify || h.Verify
	opts.NoFsync = opts.NoFsync || h.NoFsync
	return opts
}

// Where is "file:line" for messages about this line.
func (h Host) Where() string {
	if h.File == "" {
		return "line " + strconv.Itoa(h.Line)
	}
	return h.File + ":" + strconv.Itoa(h.Line)
}

// ParseFile reads the hosts file at name. Relative local folders in it are
// taken relative to the file's own folder.
func ParseFile(name string) ([]Host, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, err
	}
	return Parse(f, name, filepath.Dir(abs))
}

// Parse reads a hosts file from r. file names it in errors; relative local
// folders are taken relative to base. An error names the file and line.
// Two lines naming one host (the same URL, however written) are an error
// naming both: a host listed twice is a slip, and would be counted as two.
func Parse(r io.Reader, file, base string) ([]Host, error) {
	var hosts []Host
	lineOf := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		h, ok, err := ParseLine(sc.Text(), base)
		where := Host{File: file, Line: n}.Where()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if !ok {
			continue
		}
		if first, dup := lineOf[h.URL()]; dup {
			return nil, fmt.Errorf("%s: %s is on line %d already: list each host once", where, h.URL(), first)
		}
		lineOf[h.URL()] = n
		h.File, h.Line = file, n
		hosts = append(hosts, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return hosts, nil
}

// ParseLine parses one line; ok is false for a blank or comment line.
func ParseLine(line, base string) (h Host, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return Host{}, false, nil
	}
	dest, rest, err := splitDest(line)
	if err != nil {
		return Host{}, false, err
	}
	loc, err := remote.ParseLocation(dest, base)
	if err != nil {
		return Host{}, false, err
	}
	h = Host{Location: loc}
	seen := map[string]bool{}
	for _, opt := range strings.Fields(rest) {
		if opt[0] == '#' {
			break
		}
		// A key given twice is a slip (an edit that left the old value):
		// neither value is taken silently.
		key, _, _ := strings.Cut(opt, "=")
		if seen[key] {
			return Host{}, false, fmt.Errorf("option %s given twice", key)
		}
		seen[key] = true
		if err := h.setOption(opt); err != nil {
			return Host{}, false, err
		}
	}
	return h, true, nil
}

// splitDest cuts the destination off the line; a destination with spaces
// is written in double quotes.
func splitDest(line string) (dest, rest string, err error) {
	if line[0] == '"' {
		end := strings.IndexByte(line[1:], '"')
		if end < 0 {
			return "", "", fmt.Errorf("missing closing quote")
		}
		dest, rest = line[1:end+1], line[end+2:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return "", "", fmt.Errorf("need a space after the closing quote")
		}
		if dest == "" {
			return "", "", fmt.Errorf("empty destination")
		}
		return dest, rest, nil
	}
	dest, rest, _ = strings.Cut(strings.ReplaceAll(line, "\t", " "), " ")
	return dest, rest, nil
}

func (h *Host) setOption(opt string) error {
	key, val, ok := strings.Cut(opt, "=")
	if !ok {
		return fmt.Errorf("option %q: want key=value", opt)
	}
	switch key {
	case "quota":
		n, err := units.ParseSize(val)
		if err != nil {
			return fmt.Errorf("option quota: %w", err)
		}
		if n.Bytes == 0 {
			return fmt.Errorf("option quota: must be more than 0")
		}
		h.Quota = n
	case "append-only":
		modes := map[string]AppendOnly{"no": NotAppendOnly, "yes": AppendOnlyClient, "admin": AppendOnlyAdmin}
		mode, ok := modes[val]
		if !ok {
			return fmt.Errorf("option append-only: %q is not yes, no or admin", val)
		}
		h.AppendOnly = mode
	case "verify":
		verify, ok := map[string]bool{"yes": true, "no": false}[val]
		if !ok {
			return fmt.Errorf("option verify: %q is not yes or no", val)
		}
		h.Verify = verify
	case "fsync":
		fsync, ok := map[string]bool{"yes": true, "no": false}[val]
		if !ok {
			return fmt.Errorf("option fsync: %q is not yes or no", val)
		}
		h.NoFsync = !fsync
	default:
		known := []string{"quota", "append-only", "verify", "fsync"}
		if c, ok := h.Location.(remote.Configurable); ok {
			if ok, err := c.SetOption(key, val); ok {
				return err
			}
			known = append(known, c.Options()...)
		}
		return fmt.Errorf("unknown option %q (known: %s)", key, strings.Join(known, ", "))
	}
	return nil
}
