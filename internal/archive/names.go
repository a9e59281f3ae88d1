package archive

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// storedName turns a path given to Pack into its member name the way GNU tar
// does: cleaned, with leading "/" and "../" removed. It reports what it
// removed ("/" or "../"), if anything.
func storedName(p string) (name, removed string) {
	name = path.Clean(p)
	for {
		switch {
		case strings.HasPrefix(name, "/"):
			name = strings.TrimLeft(name, "/")
			if removed == "" {
				removed = "/"
			}
		case name == "..":
			name = ""
			removed = "../"
		case strings.HasPrefix(name, "../"):
			name = name[3:]
			removed = "../"
		default:
			if name == "" {
				name = "."
			}
			return name, removed
		}
	}
}

// memberName checks a name read from an archive (an entry's path or a hard
// link's target) and returns it cleaned. It refuses names that are empty,
// absolute, contain a ".." component or a NUL byte: such names could reach
// outside the target directory.
func memberName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("empty path")
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("absolute path")
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("path contains a NUL byte")
	}
	// One pass over the elements, without allocating: names from bk-pack
	// and tar are clean but for a directory's trailing slash, and need no
	// path.Clean then (a tenth of a restore's own work on small files).
	rest := strings.TrimRight(name, "/")
	clean := true
	for e, more := rest, true; more; {
		var c string
		c, e, more = strings.Cut(e, "/")
		switch c {
		case "..":
			return "", fmt.Errorf("path contains \"..\"")
		case "", ".":
			clean = false
		}
	}
	if clean {
		return rest, nil
	}
	return path.Clean(name), nil
}

// excluded reports whether a member name matches one of the exclude patterns,
// tar-like: a pattern matches the base name or the whole name.
func excluded(patterns []string, name string) bool {
	base := path.Base(name)
	for _, p := range patterns {
		if ok, _ := path.Match(p, base); ok {
			return true
		}
		if ok, _ := path.Match(strings.TrimSuffix(p, "/"), name); ok {
			return true
		}
	}
	return false
}

// selector decides which entries a restore, list or check covers: a pattern
// selects a member whose name, or the name of one of its parent directories,
// equals it or matches it as a path.Match glob. It remembers which patterns
// matched so that a pattern that matched nothing can be reported, as tar does.
type selector struct {
	patterns []string
	used     []bool
}

func newSelector(patterns []string) (*selector, error) {
	s := &selector{used: make([]bool, len(patterns))}
	for _, p := range patterns {
		clean, _ := storedName(strings.TrimPrefix(p, "./"))
		if _, err := path.Match(clean, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %v", p, err)
		}
		s.patterns = append(s.patterns, clean)
	}
	return s, nil
}

// all reports whether every entry is selected (no patterns).
func (s *selector) all() bool { return len(s.patterns) == 0 }

func (s *selector) match(name string) bool {
	if s.all() {
		return true
	}
	hit := false
	for i, p := range s.patterns {
		if p == "." || matchPrefix(p, name) {
			s.used[i] = true
			hit = true
		}
	}
	return hit
}

// wouldMatch is match without recording the use.
func (s *selector) wouldMatch(name string) bool {
	if s.all() {
		return true
	}
	for _, p := range s.patterns {
		if p == "." || matchPrefix(p, name) {
			return true
		}
	}
	return false
}

// matchPrefix reports whether pattern matches name or one of its parents.
func matchPrefix(pattern, name string) bool {
	for n := name; ; {
		if ok, _ := path.Match(pattern, n); ok {
			return true
		}
		i := strings.LastIndexByte(n, '/')
		if i < 0 {
			return false
		}
		n = n[:i]
	}
}

// ErrNotInArchive is the error of patterns that matched no entry.
var ErrNotInArchive = errors.New("not found in archive")

// unused returns an error naming the patterns that matched no entry.
func (s *selector) unused() error {
	var missing []string
	for i, u := range s.used {
		if !u {
			missing = append(missing, fmt.Sprintf("%q", s.patterns[i]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrNotInArchive, strings.Join(missing, ", "))
	}
	return nil
}

// Matcher reports whether restore patterns select a member name, as a
// restore with them does: the name or one of its parent directories
// matches a pattern. No patterns select everything.
func Matcher(patterns []string) (func(name string) bool, error) {
	s, err := newSelector(patterns)
	if err != nil {
		return nil, err
	}
	return s.wouldMatch, nil
}
