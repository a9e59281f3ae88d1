// Package find matches the names of a catalogue (internal/index) against
// what a user remembers of a file: a fragment of its name or path, or a
// glob, and ranks the matches, closest first.
package find

import (
	"fmt"
	"path"
	"strings"
)

// Ranks of a match, best first; a higher number is a closer match.
const (
	RankName      = 6 // the base name is the pattern
	RankGlobName  = 5 // a glob matches the base name
	RankPrefix    = 4 // the base name starts with the pattern
	RankInName    = 3 // the base name holds the pattern
	RankGlobPath  = 2 // a glob matches the whole path (or a parent)
	RankInPath    = 1 // the path holds the pattern
	RankScattered = 0 // the base name holds the pattern's characters in order
)

// Matcher matches names against one pattern.
type Matcher struct {
	pattern string
	glob    bool
	fold    bool
}

// New makes a Matcher. A pattern with *, ? or [ is a glob (path.Match,
// against the base name or the whole path); any other is a fragment.
// Unless caseSensitive, case is ignored.
func New(pattern string, caseSensitive bool) (*Matcher, error) {
	if pattern == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	m := &Matcher{pattern: pattern, fold: !caseSensitive, glob: strings.ContainsAny(pattern, "*?[")}
	if m.fold {
		m.pattern = strings.ToLower(pattern)
	}
	if m.glob {
		if _, err := path.Match(m.pattern, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %v", pattern, err)
		}
	}
	return m, nil
}

// Match says whether name (a member name) matches, and how closely.
func (m *Matcher) Match(name string) (rank int, ok bool) {
	if m.fold {
		name = strings.ToLower(name)
	}
	base := path.Base(name)
	if m.glob {
		if ok, _ := path.Match(m.pattern, base); ok {
			return RankGlobName, true
		}
		for n := name; ; {
			if ok, _ := path.Match(m.pattern, n); ok {
				return RankGlobPath, true
			}
			i := strings.LastIndexByte(n, '/')
			if i < 0 {
				return 0, false
			}
			n = n[:i]
		}
	}
	switch {
	case base == m.pattern:
		return RankName, true
	case strings.HasPrefix(base, m.pattern):
		return RankPrefix, true
	case strings.Contains(base, m.pattern):
		return RankInName, true
	case strings.Contains(name, m.pattern):
		return RankInPath, true
	case scattered(base, m.pattern):
		return RankScattered, true
	}
	return 0, false
}

// scattered says whether s holds the characters of p in order.
func scattered(s, p string) bool {
	for _, c := range p {
		i := strings.IndexRune(s, c)
		if i < 0 {
			return false
		}
		s = s[i+len(string(c)):]
	}
	return true
}
