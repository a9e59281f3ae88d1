package manifest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/bk-backup/bk/internal/hostsfile"
)

// HostURL names a destination the way a manifest records it: a file:// or
// sftp:// URL that a hosts file accepts, with no options. An SFTP folder
// relative to the login folder is written sftp://host/~/path.
func HostURL(h hostsfile.Host) string {
	if h.Kind == hostsfile.Local {
		return (&url.URL{Scheme: "file", Path: h.Path}).String()
	}
	u := &url.URL{Scheme: "sftp", Host: h.Host, Path: h.Path}
	if h.Port != 0 {
		u.Host = net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	} else if net.ParseIP(h.Host) != nil && net.ParseIP(h.Host).To4() == nil {
		u.Host = "[" + h.Host + "]"
	}
	if h.User != "" {
		u.User = url.User(h.User)
	}
	if len(h.Path) == 0 || h.Path[0] != '/' {
		u.Path = "/~/" + h.Path
		if h.Path == "" {
			u.Path = "/~"
		}
	}
	return u.String()
}

// ParseHost reads back a URL that HostURL wrote.
func ParseHost(hostURL string) (hostsfile.Host, error) {
	h, ok, err := hostsfile.ParseLine(hostURL, "")
	if err == nil && !ok {
		err = fmt.Errorf("empty host")
	}
	if err != nil {
		return hostsfile.Host{}, fmt.Errorf("host %q in manifest: %w", hostURL, err)
	}
	return h, nil
}
