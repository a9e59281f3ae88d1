// Package xattr reads and sets extended attributes and carries them in tar
// streams as PAX records SCHILY.xattr.<name>, the name as the system gives
// it, as GNU tar and bsdtar do: "user.x" or "security.x" on Linux, "user.x"
// for FreeBSD's user namespace, macOS names as they are
// ("com.apple.quarantine"). ACLs (Linux's "system." namespace, FreeBSD's
// system namespace) are not extended attributes here, as in GNU tar.
package xattr

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// RecordPrefix starts the PAX record key of an extended attribute.
const RecordPrefix = "SCHILY.xattr."

// Attr is one extended attribute.
type Attr struct{ Name, Value string }

// Records returns attrs as PAX records. A name that no record key can hold
// (one with '=', which ends the key) is left out and named in the error,
// with the other records still returned.
func Records(attrs []Attr) (map[string]string, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	recs := make(map[string]string, len(attrs))
	var bad []string
	for _, a := range attrs {
		if a.Name == "" || strings.ContainsAny(a.Name, "=\x00") {
			bad = append(bad, fmt.Sprintf("%q", a.Name))
			continue
		}
		recs[RecordPrefix+a.Name] = a.Value
	}
	if bad != nil {
		return recs, fmt.Errorf("%s: a tar record cannot name it", strings.Join(bad, ", "))
	}
	return recs, nil
}

// FromRecords returns the extended attributes among PAX records, by name.
func FromRecords(recs map[string]string) []Attr {
	var attrs []Attr
	for k, v := range recs {
		if name, ok := strings.CutPrefix(k, RecordPrefix); ok {
			attrs = append(attrs, Attr{name, v})
		}
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Name < attrs[j].Name })
	return attrs
}

// Settable reports whether this system has a place for an attribute of
// that name: a namespace it knows (Linux), the user namespace (FreeBSD),
// any name (macOS).
func Settable(name string) bool { return settable(name, namespaces) }

// settable reports whether name lies in one of namespaces (each a prefix
// with its dot); nil namespaces take every name.
func settable(name string, namespaces []string) bool {
	if name == "" {
		return false
	}
	if namespaces == nil {
		return true
	}
	for _, ns := range namespaces {
		if len(name) > len(ns) && strings.HasPrefix(name, ns) {
			return true
		}
	}
	return false
}

// The namespaces each system takes, by the names it gives them. They all
// live here so that the tests on one system check the others.
var (
	linuxNamespaces   = []string{"user.", "trusted.", "security.", "system."}
	freebsdNamespaces = []string{"user."}
	darwinNamespaces  []string // none: any name
)

// Unsettable gathers the attributes a restore left out because the system
// or file system has no place for them, for one warning at the end rather
// than one per file.
type Unsettable struct {
	count int
	names []string // the first few distinct ones, quoted: they come from the archive
	more  bool     // there were other names
}

const unsettableShown = 3

// Add counts one attribute left out.
func (u *Unsettable) Add(name string) {
	u.count++
	switch q := strconv.Quote(name); {
	case slices.Contains(u.names, q):
	case len(u.names) < unsettableShown:
		u.names = append(u.names, q)
	default:
		u.more = true
	}
}

// Warning is the one warning for all that were left out, or "" if none.
func (u *Unsettable) Warning() string {
	if u.count == 0 {
		return ""
	}
	noun := "extended attributes"
	if u.count == 1 {
		noun = "extended attribute"
	}
	names := strings.Join(u.names, ", ")
	if u.more {
		names += ", ..."
	}
	return fmt.Sprintf("%d %s not restored: this system or file system has no place for them (%s)", u.count, noun, names)
}
