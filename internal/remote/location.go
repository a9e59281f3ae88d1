package remote

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Location is where a host's folder is: what the destination part of a
// hosts-file line names, parsed by the kind of host it belongs to.
type Location interface {
	// String names the host in messages: "nas.local", "nas.local:2222",
	// "/mnt/usb/bk".
	String() string
	// URL is the destination as a manifest records it, with no options;
	// ParseLocation reads it back to an equal Location. Two lines that
	// name the same folder the same way have the same URL.
	URL() string
	// Dial connects; the folder must exist.
	Dial(ctx context.Context, opts DialOptions) (Remote, error)
}

// Configurable is a Location that takes options of its own from its
// hosts-file line, such as an S3 store's endpoint=.
type Configurable interface {
	Location
	// SetOption applies key=value; ok is false for a key it does not know.
	SetOption(key, value string) (ok bool, err error)
	// Options are the keys it knows, for messages.
	Options() []string
}

// Kind is one kind of host. Each kind's package registers itself from an
// init function; package kinds imports them all.
type Kind struct {
	// Scheme is the URL scheme of its destinations: "sftp" for sftp://….
	Scheme string
	// Parse reads a destination: a URL of Scheme, or a form that Claims
	// accepted, or any other text for the Fallback kind. base is the
	// folder a relative local path is relative to ("" when there is none).
	Parse func(dest, base string) (Location, error)
	// Claims reports whether a destination written without "://" is of
	// this kind (scp's host:path is SFTP); nil claims none.
	Claims func(dest string) bool
	// Fallback marks the kind that takes what no other kind claims: a
	// plain folder. One kind may be the fallback.
	Fallback bool
	// Example shows the syntax in the error for an unknown scheme.
	Example string
}

var registry struct {
	sync.RWMutex
	kinds []Kind // sorted by scheme, so Claims are asked in a fixed order
}

// Register adds a kind of host. It panics when the scheme or the fallback
// is taken: two packages must not fight over a destination.
func Register(k Kind) {
	registry.Lock()
	defer registry.Unlock()
	for _, old := range registry.kinds {
		if old.Scheme == k.Scheme || (old.Fallback && k.Fallback) {
			panic("remote: kind " + k.Scheme + " registered twice")
		}
	}
	registry.kinds = append(registry.kinds, k)
	slices.SortFunc(registry.kinds, func(a, b Kind) int { return strings.Compare(a.Scheme, b.Scheme) })
}

// ParseLocation reads a destination as written in a hosts file or a
// manifest: "scheme://…" goes to the kind of that scheme, other text to
// the kind that claims it, else to the fallback kind.
func ParseLocation(dest, base string) (Location, error) {
	registry.RLock()
	kinds := registry.kinds
	registry.RUnlock()
	if scheme, _, ok := strings.Cut(dest, "://"); ok {
		for _, k := range kinds {
			if k.Scheme == scheme {
				return k.Parse(dest, base)
			}
		}
		return nil, fmt.Errorf("unknown kind of destination %q (want %s)", dest, examples(kinds))
	}
	for _, k := range kinds {
		if k.Claims != nil && k.Claims(dest) {
			return k.Parse(dest, base)
		}
	}
	for _, k := range kinds {
		if k.Fallback {
			return k.Parse(dest, base)
		}
	}
	return nil, fmt.Errorf("unknown kind of destination %q (no kind of host is registered)", dest)
}

func examples(kinds []Kind) string {
	var ex []string
	for _, k := range kinds {
		ex = append(ex, k.Example)
	}
	return strings.Join(ex, ", ")
}
