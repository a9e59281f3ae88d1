package local

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/bk-backup/bk/internal/remote"
)

func init() {
	remote.Register(remote.Kind{Scheme: "file", Parse: Parse, Fallback: true, Example: "a folder, file:///path"})
}

// Location is a folder on this machine, an absolute clean path.
type Location struct{ Path string }

// String is the folder.
func (l Location) String() string { return l.Path }

// URL is a file:// URL.
func (l Location) URL() string { return (&url.URL{Scheme: "file", Path: l.Path}).String() }

// Nearby implements remote.Nearby: the folder is on this machine.
func (l Location) Nearby() bool { return true }

// Dial opens the folder.
func (l Location) Dial(_ context.Context, opts remote.DialOptions) (remote.Remote, error) {
	if err := remote.RefuseAppendOnly(l.Path, opts); err != nil {
		return nil, err
	}
	r, err := New(l.Path, opts)
	if err != nil {
		return nil, err // not a nil *Local in a non-nil interface
	}
	return r, nil
}

// Parse reads a folder written as a path or a file:// URL. "~" and "~user"
// start at a home folder, and a relative folder is relative to base (the
// hosts file's folder), so the file means the same from wherever bk runs.
func Parse(dest, base string) (remote.Location, error) {
	p := dest
	if strings.HasPrefix(dest, "file://") {
		u, err := url.Parse(dest)
		if err != nil {
			return nil, fmt.Errorf("bad URL %q", dest)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file URL %q names a host; use sftp:// for a remote folder", dest)
		}
		p = u.Path
	}
	if p == "" {
		return nil, fmt.Errorf("empty folder name")
	}
	if rest, ok := strings.CutPrefix(p, "~"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		home, err := homeDir(name)
		if err != nil {
			return nil, fmt.Errorf("folder %q: %w", p, err)
		}
		p = filepath.Join(home, sub)
	}
	if !filepath.IsAbs(p) {
		if base == "" {
			return nil, fmt.Errorf("relative folder %q needs the hosts file's folder", p)
		}
		p = filepath.Join(base, p)
	}
	return Location{Path: filepath.Clean(p)}, nil
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
