package scrub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
)

// Unreachable is the state of a host that could not be listed.
const Unreachable State = "unreachable"

// NotAppendOnly is the state of a host the hosts file says is append-only
// (append-only=yes) that let its test file be removed or changed.
const NotAppendOnly State = "not append-only"

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
	// Orphans are shares no manifest names: of failed runs, on an
	// append-only host, or of a prune cut short.
	Orphans []TempFile `json:"orphans,omitempty"`
	// Allows is what a host the hosts file says is append-only let its
	// test file suffer ("remove", "overwrite", "truncate", "chmod",
	// "rename"); then its State is NotAppendOnly.
	Allows []string `json:"allows,omitempty"`
}

// TempFile is an upload's temp file on a host.
type TempFile struct {
	Name string    `json:"name"`
	Size int64     `json:"size"`
	Time time.Time `json:"time"`
}

// Hosts sums up each host of listings: its usage and, from reports, the
// shares found good, bad or missing on it (a bad copy of a share good
// elsewhere counts as bad). A host is healthy when every share checked
// there is good, degraded when one is not.
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
			for _, o := range catalog.OrphanShares(listings, l) {
				h.Orphans = append(h.Orphans, TempFile{o.Name, o.Size, o.ModTime})
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
				for _, c := range s.BadCopies {
					if c.Host == h.Host {
						h.Bad++
					}
				}
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

// ProbeAppendOnly tries each reachable host of listings that the hosts
// file says is append-only, on a test file of its own
// (remote.AppendOnlyProber), and marks hosts (Hosts' summary of listings,
// in their order) NotAppendOnly when it allowed anything. Each probe
// leaves its test file on an append-only host.
func ProbeAppendOnly(ctx context.Context, listings []*catalog.Listing, hosts []Host) {
	for i, l := range listings {
		if l.Err != nil || l.Host.AppendOnly != hostsfile.AppendOnlyClient {
			continue
		}
		if r, err := l.Host.Remote(ctx); err == nil {
			probeAppendOnly(ctx, r, &hosts[i])
		}
		if len(hosts[i].Allows) > 0 {
			hosts[i].State = NotAppendOnly
		}
	}
}

func probeAppendOnly(ctx context.Context, r remote.Remote, h *Host) {
	p, ok := r.(remote.AppendOnlyProber)
	if !ok {
		h.Allows = []string{"anything (it cannot be probed)"}
		return
	}
	allowed, err := p.ProbeAppendOnly(ctx)
	if err != nil {
		h.Error = err.Error()
		h.Allows = []string{"no test (" + err.Error() + ")"}
		return
	}
	h.Allows = allowed
}

// AppendOnlyError says which hosts marked append-only are not, nil when
// none.
func AppendOnlyError(hosts []Host) error {
	var bad []string
	for _, h := range hosts {
		if h.State == NotAppendOnly {
			bad = append(bad, fmt.Sprintf("%s allows %s", h.Host, strings.Join(h.Allows, ", ")))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("not append-only, though the hosts file says append-only=yes: %s", strings.Join(bad, "; "))
}
