package s3

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/bk-backup/bk/internal/remote"
)

func init() {
	remote.Register(remote.Kind{Scheme: "s3", Parse: Parse, Example: "s3://bucket/prefix"})
}

// Location is a hosts-file line of this kind: "s3://BUCKET/PREFIX" and its
// options.
type Location struct {
	Bucket    string
	Prefix    string // a folder path in the bucket, "" for the top
	Endpoint  string // URL of the store; "" for AWS
	Region    string // "" to ask the store, or $AWS_REGION
	PathStyle bool   // bucket in the URL path rather than the host name
	Profile   string // of ~/.aws/credentials; "" for $AWS_PROFILE or default
}

// Scheme starts a destination of this kind.
const Scheme = "s3://"

// Parse reads "s3://BUCKET/PREFIX", with the options in a URL query as
// URL writes them for a manifest.
func Parse(dest, _ string) (remote.Location, error) {
	dest, query, _ := strings.Cut(dest, "?")
	l, err := ParseDest(dest)
	if err != nil {
		return nil, err
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("%q: bad query: %v", dest, err)
	}
	for key, vals := range values {
		ok, err := l.SetOption(key, vals[len(vals)-1])
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%q: unknown option %q (known: %s)", dest, key, strings.Join(l.Options(), ", "))
		}
	}
	return l, nil
}

// ParseDest reads "s3://BUCKET/PREFIX" into a Location.
func ParseDest(dest string) (*Location, error) {
	rest, ok := strings.CutPrefix(dest, Scheme)
	if !ok {
		return nil, fmt.Errorf("%q does not start with %s", dest, Scheme)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, fmt.Errorf("%q names no bucket", dest)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := remote.CheckName(prefix); err != nil {
			return nil, fmt.Errorf("%q: bad prefix %q", dest, prefix)
		}
	}
	return &Location{Bucket: bucket, Prefix: prefix}, nil
}

// SetOption applies one key=value option of the hosts-file line; ok is
// false for a key this kind does not know.
func (l *Location) SetOption(key, value string) (ok bool, err error) {
	switch key {
	case "endpoint":
		u, err := url.Parse(value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return true, fmt.Errorf("endpoint=%s: want a URL such as http://127.0.0.1:7070", value)
		}
		l.Endpoint = value
	case "region":
		l.Region = value
	case "path-style":
		switch value {
		case "yes":
			l.PathStyle = true
		case "no":
			l.PathStyle = false
		default:
			return true, fmt.Errorf("path-style=%s: want yes or no", value)
		}
	case "profile":
		if value == "" {
			return true, fmt.Errorf("profile= needs a name")
		}
		l.Profile = value
	default:
		return false, nil
	}
	return true, nil
}

// String is the destination as written: "s3://bucket/prefix".
func (l *Location) String() string {
	if l.Prefix == "" {
		return Scheme + l.Bucket
	}
	return Scheme + l.Bucket + "/" + l.Prefix
}

// Options implements remote.Configurable.
func (l *Location) Options() []string { return []string{"endpoint", "region", "path-style", "profile"} }

// HashesInProcess implements remote.InProcessHasher: every part is hashed
// (SHA-256) for its request, and encrypted with TLS where the endpoint
// is https.
func (l *Location) HashesInProcess() bool { return true }

// URL is the destination with what it takes to reach the store in a
// query: endpoint, region and path-style, the same for every user; not
// the profile, which is this user's choice of keys.
func (l *Location) URL() string {
	q := url.Values{}
	if l.Endpoint != "" {
		q.Set("endpoint", l.Endpoint)
	}
	if l.Region != "" {
		q.Set("region", l.Region)
	}
	if l.PathStyle {
		q.Set("path-style", "yes")
	}
	if len(q) == 0 {
		return l.String()
	}
	return l.String() + "?" + q.Encode()
}

// Dial connects to the store.
func (l *Location) Dial(ctx context.Context, opts remote.DialOptions) (remote.Remote, error) {
	r, err := Dial(ctx, *l, opts)
	if err != nil {
		return nil, err // not a nil *S3 in a non-nil interface
	}
	return r, nil
}
