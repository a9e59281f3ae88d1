package sftp

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/internal/remote"
)

func init() {
	remote.Register(remote.Kind{Scheme: "sftp", Parse: Parse, Claims: claims, Example: "sftp://host/path, host:path"})
}

// Location is a folder on an SSH host.
type Location struct {
	User string // login name, "" for ssh's default
	Host string // host name or address, as ssh is to see it
	Port int    // 0 for ssh's default
	// Path is the folder as the server sees it: relative paths (and "")
	// start at the login folder.
	Path string
}

// String is the host, with its port when one was given.
func (l Location) String() string {
	if l.Port != 0 {
		return l.Host + ":" + strconv.Itoa(l.Port)
	}
	return l.Host
}

// URL is an sftp:// URL; a folder relative to the login folder is written
// sftp://host/~/path, as curl reads it.
func (l Location) URL() string {
	u := &url.URL{Scheme: "sftp", Host: l.Host, Path: l.Path}
	if l.Port != 0 {
		u.Host = net.JoinHostPort(l.Host, strconv.Itoa(l.Port))
	} else if ip := net.ParseIP(l.Host); ip != nil && ip.To4() == nil {
		u.Host = "[" + l.Host + "]"
	}
	if l.User != "" {
		u.User = url.User(l.User)
	}
	if len(l.Path) == 0 || l.Path[0] != '/' {
		u.Path = "/~/" + l.Path
		if l.Path == "" {
			u.Path = "/~"
		}
	}
	return u.String()
}

// Dial connects to the host.
func (l Location) Dial(ctx context.Context, opts remote.DialOptions) (remote.Remote, error) {
	r, err := Dial(ctx, l, opts)
	if err != nil {
		return nil, err // not a nil *SFTP in a non-nil interface
	}
	return r, nil
}

// claims takes "[user@]host:path" the way scp does: a colon before any
// slash makes it remote, so "./a:b" and "/a:b" stay local folders.
func claims(dest string) bool {
	_, _, ok := scpStyle(dest)
	return ok
}

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

// Parse reads sftp://[user@]host[:port]/path or scp's [user@]host:path.
func Parse(dest, _ string) (remote.Location, error) {
	if strings.HasPrefix(dest, "sftp://") {
		return parseURL(dest)
	}
	host, p, ok := scpStyle(dest)
	if !ok {
		return nil, fmt.Errorf("%q is not host:path", dest)
	}
	l := Location{Path: p}
	if u, hp, found := strings.Cut(host, "@"); found {
		l.User, host = u, hp
	}
	l.Host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if l.Path != "" {
		l.Path = path.Clean(l.Path)
	}
	return l, checkSSH(l, dest)
}

func parseURL(dest string) (remote.Location, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q", dest)
	}
	l := Location{Host: u.Hostname(), User: u.User.Username()}
	if _, hasPass := u.User.Password(); hasPass {
		return nil, fmt.Errorf("%q holds a password; use an ssh key instead", u.Redacted())
	}
	if p := u.Port(); p != "" {
		l.Port, err = strconv.Atoi(p)
		if err != nil || l.Port < 1 || l.Port > 65535 {
			return nil, fmt.Errorf("bad port %q in %q", p, dest)
		}
	}
	// As in curl: sftp://host/path is absolute, sftp://host/~/path starts
	// at the login folder.
	l.Path = u.Path
	if rel, ok := strings.CutPrefix(l.Path, "/~"); ok && (rel == "" || rel[0] == '/') {
		l.Path = strings.TrimPrefix(rel, "/")
	}
	if l.Path != "" {
		l.Path = path.Clean(l.Path)
	}
	return l, checkSSH(l, dest)
}

// checkSSH refuses names ssh would read as options.
func checkSSH(l Location, dest string) error {
	switch {
	case l.Host == "":
		return fmt.Errorf("no host name in %q", dest)
	case strings.HasPrefix(l.Host, "-") || strings.HasPrefix(l.User, "-"):
		return fmt.Errorf("host or user name may not start with '-' in %q", dest)
	case strings.ContainsAny(l.Host+l.User, " \t'\"\\/@"):
		return fmt.Errorf("bad host or user name in %q", dest)
	}
	return nil
}
