package rclone

import (
	"context"
	"fmt"
	"strings"

	"github.com/bk-backup/bk/internal/remote"
)

func init() {
	remote.Register(remote.Kind{Scheme: "rclone", Parse: Parse, Claims: claims, Example: "rclone:remote:path"})
}

// Location is an rclone path, "REMOTE:PATH", given to rclone as it is.
type Location struct{ Path string }

// String is the destination as written: "rclone:REMOTE:PATH".
func (l Location) String() string { return Scheme + l.Path }

// URL is the destination as written, which ParseLocation reads back.
func (l Location) URL() string { return l.String() }

// Dial checks that rclone runs and knows the remote.
func (l Location) Dial(ctx context.Context, opts remote.DialOptions) (remote.Remote, error) {
	if err := remote.RefuseAppendOnly(l.String(), opts); err != nil {
		return nil, err
	}
	r, err := Dial(ctx, l.Path, opts)
	if err != nil {
		return nil, err // not a nil *Rclone in a non-nil interface
	}
	return r, nil
}

// claims takes "rclone:…" before SFTP's scp syntax can read it as host
// "rclone": an SSH host of that name is written sftp://rclone/path.
func claims(dest string) bool { return strings.HasPrefix(dest, Scheme) }

// Parse reads "rclone:REMOTE:PATH" (":local:/srv/x" names an on-the-fly
// remote, as rclone reads it).
func Parse(dest, _ string) (remote.Location, error) {
	root, ok := strings.CutPrefix(dest, Scheme)
	if !ok {
		return nil, fmt.Errorf("%q does not start with %s", dest, Scheme)
	}
	if !strings.Contains(root, ":") {
		return nil, fmt.Errorf("%q: want rclone:REMOTE:PATH, as rclone names a path", dest)
	}
	return Location{Path: root}, nil
}
