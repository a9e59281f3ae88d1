package push

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The errors Push returns, typed so that the command layer can name its
// flags in hints and pick exit codes.

// ErrSizeUnknown is warned when neither ExpectSize nor an earlier backup
// tells the size: space is then checked only as data flows.
var ErrSizeUnknown = errors.New("backup size unknown: free space and quotas are checked only as data flows")

// StreamError is a share stream that could not be read.
type StreamError struct{ Err error }

func (e *StreamError) Error() string { return "reading the share stream: " + e.Err.Error() }
func (e *StreamError) Unwrap() error { return e.Err }

// MinSharesError is a MinShares the stream's k and n rule out.
type MinSharesError struct{ Min, K, N int }

func (e *MinSharesError) Error() string {
	return fmt.Sprintf("at least %d shares asked for, out of range: the stream has k=%d n=%d, so it must be from %d to %d", e.Min, e.K, e.N, e.K, e.N)
}

// MinVouchError is a MinShares, within k to n, below the hosts that must
// hold a backup for bk-join to count it (k=1: 2 of several hosts).
type MinVouchError struct{ Min, Need, Hosts int }

func (e *MinVouchError) Error() string {
	return fmt.Sprintf("at least %d shares asked for, but bk-join counts a backup only on %d of the %d hosts; nothing was sent", e.Min, e.Need, e.Hosts)
}

// HostCountError is a hosts file with fewer hosts than the stream has
// shares.
type HostCountError struct{ Hosts, N int }

func (e *HostCountError) Error() string {
	return fmt.Sprintf("the hosts file lists %d hosts, but the stream has n=%d shares", e.Hosts, e.N)
}

// VouchError is a stream of fewer shares than the hosts that must hold a
// backup for bk-join to count it (a 1-of-1 stream to several hosts): its
// manifest would stand on too few of them.
type VouchError struct{ N, Need, Hosts int }

func (e *VouchError) Error() string {
	return fmt.Sprintf("the stream has n=%d shares, so its backup would stand on %d of the %d hosts, and bk-join counts a backup only on %d of them; nothing was sent", e.N, e.N, e.Hosts, e.Need)
}

// SameFolderError means two hosts are one folder under two names: a file
// written to one appears in the other.
type SameFolderError struct{ A, B string }

func (e *SameFolderError) Error() string {
	return fmt.Sprintf("hosts %s and %s are the same folder (a test file written to one appears in the other): two shares there would be lost together; nothing was stored", e.A, e.B)
}

// TooFewError means fewer than MinShares shares could be stored: too few
// hosts passed their checks (not Picked; what reached those that did was
// removed), or after the hosts were picked, when what was stored has been
// removed again.
type TooFewError struct {
	Stored, N, Min int
	Picked         bool
	Early          bool // the stream was given up before its end
	Failed         []Failure
}

func (e *TooFewError) Error() string {
	if !e.Picked {
		return fmt.Sprintf("only %d of %d hosts can take a share, fewer than the %d required; nothing was stored", e.Stored, e.N, e.Min)
	}
	return fmt.Sprintf("only %d of %d shares could be stored, fewer than the %d required%s; nothing of this backup was kept%s",
		e.Stored, e.N, e.Min, e.How(), FailedList(e.Failed))
}

// How is " (stopped early)" when the stream was given up before its end.
func (e *TooFewError) How() string {
	if e.Early {
		return " (stopped early)"
	}
	return ""
}

// DegradedError means the backup was kept, but with fewer than N shares or
// with its manifest missing on a host that stored a share.
type DegradedError struct {
	ID                   string
	Stored, N, Manifests int
	Failed               []Failure
}

func (e *DegradedError) Error() string {
	return fmt.Sprintf("backup %s: stored %d of %d shares (manifest on %d hosts)%s", e.ID, e.Stored, e.N, e.Manifests, FailedList(e.Failed))
}

// Failure is a share that was not stored, and why.
type Failure struct {
	Index int
	Host  string // "" when no host was left for it
	Err   error
}

// FailedList is "; failed: share 1 on nas, …", or "" when none failed.
func FailedList(failed []Failure) string {
	if len(failed) == 0 {
		return ""
	}
	var parts []string
	for _, f := range failed {
		if f.Host == "" {
			parts = append(parts, fmt.Sprintf("share %d (no host left)", f.Index))
		} else {
			parts = append(parts, fmt.Sprintf("share %d on %s", f.Index, f.Host))
		}
	}
	slices.Sort(parts)
	return "; failed: " + strings.Join(parts, ", ")
}
