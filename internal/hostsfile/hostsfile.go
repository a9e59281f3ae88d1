// Package hostsfile parses the hosts file: one backup destination a line,
// a local folder or an SFTP location, each with optional key=value options
// such as a quota. Section 4 of docs/FORMAT.md describes the syntax.
package hostsfile

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Kind says which backend serves a destination.
type Kind int

// The kinds of destination.
const (
	Local Kind = iota // a folder on this machine: USB disk, NAS mount
	SFTP              // a folder on an SSH host, reached with the system ssh
)

// Host is one destination of the hosts file.
type Host struct {
	File string // the hosts file, for messages ("" when parsed from a string)
	Line int    // 1-based line number
	Kind Kind
	// Path is the folder: absolute for Local; for SFTP as the server sees
	// it, relative paths (and "") starting at the login folder.
	Path  string
	User  string // SFTP: login name, "" for ssh's default
	Host  string // SFTP: host name or address, as ssh is to see it
	Port  int    // SFTP: 0 for ssh's default
	Quota int64  // bytes bk may use there, 0 for no limit
}

// String names the destination in messages: the host for SFTP (with its
// port when one was given), the folder for Local.
func (h Host) String() string {
	if h.Kind == Local {
		return h.Path
	}
	if h.Port != 0 {
		return h.Host + ":" + strconv.Itoa(h.Port)
	}
	return h.Host
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
func Parse(r io.Reader, file, base string) ([]Host, error) {
	var hosts []Host
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		h, ok, err := ParseLine(sc.Text(), base)
		where := Host{File: file, Line: n}.Where()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if ok {
			h.File, h.Line = file, n
			hosts = append(hosts, h)
		}
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
	h, err = parseDest(dest, base)
	if err != nil {
		return Host{}, false, err
	}
	for _, opt := range strings.Fields(rest) {
		if opt[0] == '#' {
			break
		}
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

func parseDest(dest, base string) (Host, error) {
	switch {
	case strings.HasPrefix(dest, "file://"):
		u, err := url.Parse(dest)
		if err != nil {
			return Host{}, fmt.Errorf("bad URL %q", dest)
		}
		if u.Host != "" && u.Host != "localhost" {
			return Host{}, fmt.Errorf("file URL %q names a host; use sftp:// for a remote folder", dest)
		}
		return localHost(u.Path, base)
	case strings.HasPrefix(dest, "sftp://"):
		return parseSFTPURL(dest)
	case strings.Contains(dest, "://"):
		return Host{}, fmt.Errorf("unknown kind of destination %q (want a folder, file://, sftp:// or host:path)", dest)
	}
	if host, p, ok := scpStyle(dest); ok {
		h := Host{Kind: SFTP, Path: p}
		if u, hp, found := strings.Cut(host, "@"); found {
			h.User, host = u, hp
		}
		h.Host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if h.Path != "" {
			h.Path = path.Clean(h.Path)
		}
		return h, checkSSH(h, dest)
	}
	return localHost(dest, base)
}

// scpStyle splits "[user@]host:path" the way scp does: a colon before any
// slash makes it remote, so "./a:b" and "/a:b" stay local folders.
func scpStyle(dest string) (host, p string, ok bool) {
	if strings.HasPrefix(dest, "[") || strings.Contains(dest, "@[") {
		if end := strings.Index(dest, "]:"); end >= 0 {
			return dest[:end+1], dest[end+2:], true
		}
		return "", "", false
	}
	colon := strings.IndexByte(dest, ':')
	if colon <= 0 {
		return "", "", false
	}
	if slash := strings.IndexByte(dest, '/'); slash >= 0 && slash < colon {
		return "", "", false
	}
	return dest[:colon], dest[colon+1:], true
}

func parseSFTPURL(dest string) (Host, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return Host{}, fmt.Errorf("bad URL %q", dest)
	}
	h := Host{Kind: SFTP, Host: u.Hostname(), User: u.User.Username()}
	if _, hasPass := u.User.Password(); hasPass {
		return Host{}, fmt.Errorf("%q holds a password; use an ssh key instead", u.Redacted())
	}
	if p := u.Port(); p != "" {
		h.Port, err = strconv.Atoi(p)
		if err != nil || h.Port < 1 || h.Port > 65535 {
			return Host{}, fmt.Errorf("bad port %q in %q", p, dest)
		}
	}
	// As in curl: sftp://host/path is absolute, sftp://host/~/path starts
	// at the login folder.
	h.Path = u.Path
	if rel, ok := strings.CutPrefix(h.Path, "/~"); ok && (rel == "" || rel[0] == '/') {
		h.Path = strings.TrimPrefix(rel, "/")
	}
	if h.Path != "" {
		h.Path = path.Clean(h.Path)
	}
	return h, checkSSH(h, dest)
}

// checkSSH refuses names ssh would read as options.
func checkSSH(h Host, dest string) error {
	switch {
	case h.Host == "":
		return fmt.Errorf("no host name in %q", dest)
	case strings.HasPrefix(h.Host, "-") || strings.HasPrefix(h.User, "-"):
		return fmt.Errorf("host or user name may not start with '-' in %q", dest)
	case strings.ContainsAny(h.Host+h.User, " \t'\"\\/@"):
		return fmt.Errorf("bad host or user name in %q", dest)
	}
	return nil
}

// localHost makes a Local destination of p: "~" and "~user" start at a home
// folder, and a relative folder is relative to base (the hosts file's
// folder), so the file means the same from wherever bk runs.
func localHost(p, base string) (Host, error) {
	if p == "" {
		return Host{}, fmt.Errorf("empty folder name")
	}
	if rest, ok := strings.CutPrefix(p, "~"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		home, err := homeDir(name)
		if err != nil {
			return Host{}, fmt.Errorf("folder %q: %w", p, err)
		}
		p = filepath.Join(home, sub)
	}
	if !filepath.IsAbs(p) {
		if base == "" {
			return Host{}, fmt.Errorf("relative folder %q needs the hosts file's folder", p)
		}
		p = filepath.Join(base, p)
	}
	return Host{Kind: Local, Path: filepath.Clean(p)}, nil
}

func homeDir(name string) (string, error) {
	if name == "" {
		return os.UserHomeDir()
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.HomeDir, nil
}

func (h *Host) setOption(opt string) error {
	key, val, ok := strings.Cut(opt, "=")
	if !ok {
		return fmt.Errorf("option %q: want key=value", opt)
	}
	switch key {
	case "quota":
		n, err := ParseSize(val)
		if err != nil {
			return fmt.Errorf("option quota: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("option quota: must be more than 0")
		}
		h.Quota = n
	default:
		return fmt.Errorf("unknown option %q (known: quota)", key)
	}
	return nil
}

var units = map[string]int64{
	"": 1, "B": 1,
	"K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12, "P": 1e15, "PB": 1e15,
	"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40, "PIB": 1 << 50,
}

// ParseSize reads a byte count such as "500G", "2TiB" or "1.5T". SI
// suffixes (K, M, G, T, P, with or without B) are powers of 1000, as disk
// makers count; IEC suffixes (KiB … PiB) powers of 1024. Case is ignored.
func ParseSize(s string) (int64, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r > '9' })
	unit, ok := units[strings.ToUpper(s[len(num):])]
	if !ok || num == "" {
		return 0, fmt.Errorf("bad size %q (want e.g. 500G, 2TiB)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 500G, 2TiB)", s)
	}
	size := f * float64(unit)
	if size >= 1<<63 {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return int64(size), nil
}
