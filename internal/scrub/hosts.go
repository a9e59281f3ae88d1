package scrub

import (
	"context"
	"errors"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/remote"
)

// Unreachable is the state of a host that could not be listed.
const Unreachable State = "unreachable"

// Host is how one host of the hosts files fares: the shares checked on
// it, and what it holds.
type Host struct {
	Host    string `json:"host"`
	State   State  `json:"state"`
	Error   string `json:"error,omitempty"`
	Good    int    `json:"good"`
	Bad     int    `json:"bad"`
	Missing int    `json:"missing"`
	// Used is the bytes of the shares and other files bk keeps there, temp
	// files included (manifests, a few KiB each, left out);
	// Quota is the hosts file's limit (0: none); Free is the space left,
	// -1 when the host cannot say.
	Used  int64 `json:"used"`
	Quota int64 `json:"quota,omitempty"`
	Free  int64 `json:"free"`
	// Temp are leftovers of uploads: in progress, or of killed runs.
	Temp []TempFile `json:"temp,omitempty"`
}

// TempFile is an upload's temp file on a host.
type TempFile struct {
	Name string    `json:"name"`
	Size int64     `json:"size"`
	Time time.Time `json:"time"`
}

// Hosts sums up each host of listings: its usage and, from reports, the
// shares found good, bad or missing on it. A host is healthy when every
// share checked there is good, degraded when one is not.
func Hosts(ctx context.Context, listings []*catalog.Listing, reports []*Report) []Host {
	var out []Host
	for _, l := range listings {
		h := Host{Host: l.Host.String(), State: Healthy, Quota: l.Host.Quota.Bytes, Free: -1}
		if l.Err != nil {
			h.State, h.Error = Unreachable, l.Err.Error()
		} else {
			for _, fi := range l.Files {
				h.Used += fi.Size
			}
			for _, t := range l.Temp {
				h.Used += t.Size
				h.Temp = append(h.Temp, TempFile{t.Name, t.Size, t.ModTime})
			}
			if r, err := l.Host.Remote(ctx); err == nil {
				if free, err := r.Free(ctx); err == nil {
					h.Free = free
				} else if !errors.Is(err, remote.ErrUnknownSpace) {
					h.Error = err.Error()
				}
			}
		}
		for _, r := range reports {
			for _, s := range r.Shares {
				if s.Host != h.Host {
					continue
				}
				switch {
				case s.Good:
					h.Good++
				case s.Missing:
					h.Missing++
				default:
					h.Bad++
				}
			}
		}
		if h.State == Healthy && h.Bad+h.Missing > 0 {
			h.State = Degraded
		}
		out = append(out, h)
	}
	return out
}
