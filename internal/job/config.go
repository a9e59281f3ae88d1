// Package job runs a scheduled backup as bk-backup does: it reads a job's
// config, runs its pipeline (bk-pack --state | stages | bk-split | bk-push)
// as processes joined by pipes, decides from every stage's exit whether
// bk-push may commit, keeps the manifest, and runs the hooks and the
// keyless upkeep (prune, check, repair) the config asks for.
package job

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/catalog"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/units"
)

// ConfigVersion is the version of the config format this package reads;
// a config says it with "format = 1".
const ConfigVersion = 1

// DefaultStateRoot holds a job's state folder when its config names none.
const DefaultStateRoot = "/var/lib/bk"

// Config is one job, as its file says.
type Config struct {
	File string // the config file, as found
	Name string // the backup's name (bk-push --name); also the job's

	Paths          []string
	Excludes       []string
	ExcludeFrom    []string
	OneFileSystem  bool
	Recipients     []string
	RecipientFiles []string
	PassphraseFile string
	Plaintext      bool
	Level          int // 0: bk-pack's default

	K, N      int
	BlockSize string
	MinShares int
	Hosts     string
	SSH       string

	StateDir    string
	FullAfter   int    // 0: bk-pack's default
	FullIfOlder string // "": bk-pack's default

	Keep           []string // bk-prune flags, e.g. --keep-daily 7
	Check          bool
	FullCheckEvery time.Duration // 0: never a full check
	Repair         bool

	Before       []string
	AfterSuccess []string
	AfterFailure []string
	Stages       []string

	Nice   int // 0: as bk-backup runs
	IONice string
	// Identity decrypts for the restore drill.
	Identity string
}

// ConfigError names the file and line of a mistake in a config.
type ConfigError struct {
	File string
	Line int // 0: the file as a whole
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Find returns the config file of job: a path when it has a slash or
// ends in .conf, else DIR/JOB.conf.
func Find(job, dir string) string {
	if strings.ContainsRune(job, '/') || strings.HasSuffix(job, ".conf") {
		return job
	}
	return filepath.Join(dir, job+".conf")
}

// key is what a config key takes and where it goes.
type key struct {
	repeat bool
	set    func(c *Config, v string) error
}

var keys = map[string]key{
	"name":            {set: func(c *Config, v string) error { c.Name = v; return manifest.CheckName(v) }},
	"path":            {repeat: true, set: func(c *Config, v string) error { c.Paths = append(c.Paths, v); return nil }},
	"exclude":         {repeat: true, set: func(c *Config, v string) error { c.Excludes = append(c.Excludes, v); return nil }},
	"exclude-from":    {repeat: true, set: func(c *Config, v string) error { c.ExcludeFrom = append(c.ExcludeFrom, v); return nil }},
	"one-file-system": {set: func(c *Config, v string) error { return setBool(&c.OneFileSystem, v) }},
	"recipient":       {repeat: true, set: func(c *Config, v string) error { c.Recipients = append(c.Recipients, v); return nil }},
	"recipients-file": {repeat: true, set: func(c *Config, v string) error { c.RecipientFiles = append(c.RecipientFiles, v); return nil }},
	"passphrase-file": {set: func(c *Config, v string) error { c.PassphraseFile = v; return nil }},
	"plaintext":       {set: func(c *Config, v string) error { return setBool(&c.Plaintext, v) }},
	"level":           {set: func(c *Config, v string) error { return setInt(&c.Level, v, 1, 19) }},
	"k":               {set: func(c *Config, v string) error { return setInt(&c.K, v, 1, 255) }},
	"n":               {set: func(c *Config, v string) error { return setInt(&c.N, v, 2, 256) }},
	"block-size": {set: func(c *Config, v string) error {
		_, err := units.ParseSize(v)
		c.BlockSize = v
		return err
	}},
	"min-shares": {set: func(c *Config, v string) error { return setInt(&c.MinShares, v, 1, 256) }},
	"hosts":      {set: func(c *Config, v string) error { c.Hosts = v; return nil }},
	"ssh":        {set: func(c *Config, v string) error { c.SSH = v; return nil }},
	"state-dir":  {set: func(c *Config, v string) error { c.StateDir = v; return nil }},
	"full-after": {set: func(c *Config, v string) error { return setInt(&c.FullAfter, v, 0, 1<<20) }},
	"full-if-older": {set: func(c *Config, v string) error {
		_, err := units.ParseDuration(v)
		c.FullIfOlder = v
		return err
	}},
	"keep-last":    {set: keepCount("--keep-last")},
	"keep-daily":   {set: keepCount("--keep-daily")},
	"keep-weekly":  {set: keepCount("--keep-weekly")},
	"keep-monthly": {set: keepCount("--keep-monthly")},
	"keep-within": {set: func(c *Config, v string) error {
		if _, err := units.ParseDuration(v); err != nil {
			return err
		}
		c.Keep = append(c.Keep, "--keep-within", v)
		return nil
	}},
	"check": {set: func(c *Config, v string) error { return setBool(&c.Check, v) }},
	"full-check-every": {set: func(c *Config, v string) error {
		d, err := units.ParseDuration(v)
		c.FullCheckEvery = d
		return err
	}},
	"repair":        {set: func(c *Config, v string) error { return setBool(&c.Repair, v) }},
	"before":        {repeat: true, set: func(c *Config, v string) error { c.Before = append(c.Before, v); return nil }},
	"after-success": {repeat: true, set: func(c *Config, v string) error { c.AfterSuccess = append(c.AfterSuccess, v); return nil }},
	"after-failure": {repeat: true, set: func(c *Config, v string) error { c.AfterFailure = append(c.AfterFailure, v); return nil }},
	"stage":         {repeat: true, set: func(c *Config, v string) error { c.Stages = append(c.Stages, v); return nil }},
	"nice":          {set: func(c *Config, v string) error { return setInt(&c.Nice, v, -20, 19) }},
	"ionice":        {set: setIONice},
	"identity":      {set: func(c *Config, v string) error { c.Identity = v; return nil }},
	"format":        {set: func(*Config, string) error { return nil }}, // read before the others
}

func setBool(b *bool, v string) error {
	switch v {
	case "yes", "true":
		*b = true
	case "no", "false":
		*b = false
	default:
		return fmt.Errorf("%q is not yes or no", v)
	}
	return nil
}

func setInt(n *int, v string, lo, hi int) error {
	i, err := strconv.Atoi(v)
	if err != nil || i < lo || i > hi {
		return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
	}
	*n = i
	return nil
}

func keepCount(flag string) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		var n int
		if err := setInt(&n, v, 0, 1<<20); err != nil {
			return err
		}
		c.Keep = append(c.Keep, flag, v)
		return nil
	}
}

// setIONice takes CLASS[:LEVEL] as ionice(1) counts: idle, best-effort:0-7,
// realtime:0-7.
func setIONice(c *Config, v string) error {
	class, level, _ := strings.Cut(v, ":")
	switch class {
	case "idle", "best-effort", "realtime":
	default:
		return fmt.Errorf("%q: want idle, best-effort[:0-7] or realtime[:0-7]", v)
	}
	if level != "" {
		var n int
		if class == "idle" || setInt(&n, level, 0, 7) != nil {
			return fmt.Errorf("%q: want idle, best-effort[:0-7] or realtime[:0-7]", v)
		}
	}
	c.IONice = v
	return nil
}

// Load reads and checks the config file path. job names the job when the
// config has no name. Relative paths in it are taken from the config's
// folder, so a config and its files can move together.
func Load(path, job string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := parse(f, path)
	if err != nil {
		return nil, err
	}
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(job), ".conf")
		if err := manifest.CheckName(c.Name); err != nil {
			return nil, &ConfigError{File: path, Err: fmt.Errorf("no name given, and the job's %v", err)}
		}
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for _, list := range [][]string{c.Paths, c.ExcludeFrom, c.RecipientFiles} {
		for i := range list {
			abs(&list[i])
		}
	}
	for _, p := range []*string{&c.PassphraseFile, &c.Hosts, &c.StateDir, &c.Identity} {
		abs(p)
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(DefaultStateRoot, c.Name)
	}
	if err := c.check(); err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	return c, nil
}

func parse(f *os.File, path string) (*Config, error) {
	c := &Config{File: path}
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fail := func(format string, args ...any) error {
			return &ConfigError{File: path, Line: line, Err: fmt.Errorf(format, args...)}
		}
		name, value, ok := strings.Cut(text, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fail("want KEY = VALUE, got %q", text)
		}
		if _, ok := seen["format"]; !ok {
			if name != "format" {
				return nil, fail("the first setting must be \"format = %d\"", ConfigVersion)
			}
			if value != strconv.Itoa(ConfigVersion) {
				return nil, fail("format %q: this bk-backup reads format %d", value, ConfigVersion)
			}
		}
		k, ok := keys[name]
		if !ok {
			return nil, fail("unknown key %q", name)
		}
		if first, ok := seen[name]; ok && !k.repeat {
			return nil, fail("%s given twice (first on line %d)", name, first)
		}
		seen[name] = line
		if value == "" {
			return nil, fail("%s: empty value", name)
		}
		if err := k.set(c, value); err != nil {
			return nil, fail("%s: %v", name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	if _, ok := seen["format"]; !ok {
		return nil, &ConfigError{File: path, Err: fmt.Errorf("empty: a config starts with \"format = %d\"", ConfigVersion)}
	}
	return c, nil
}

// check finds what is missing or contradictory, and secrets that others
// could read.
func (c *Config) check() error {
	switch {
	case len(c.Paths) == 0:
		return errors.New("no path: name what to back up (path = /home)")
	case c.K == 0 || c.N == 0:
		return errors.New("k and n are required (e.g. k = 2, n = 3)")
	case c.K >= c.N:
		return fmt.Errorf("k = %d must be less than n = %d", c.K, c.N)
	case c.MinShares != 0 && (c.MinShares < catalog.Vouchers(c.K, c.N) || c.MinShares > c.N):
		return fmt.Errorf("min-shares = %d must be from %d (the least bk-join counts, k = %d) to n = %d", c.MinShares, catalog.Vouchers(c.K, c.N), c.K, c.N)
	case c.Hosts == "":
		return errors.New("no hosts: name the hosts file (hosts = /etc/bk/hosts)")
	}
	ways := 0
	if len(c.Recipients)+len(c.RecipientFiles) > 0 {
		ways++
	}
	if c.PassphraseFile != "" {
		ways++
	}
	if c.Plaintext {
		ways++
	}
	if ways != 1 {
		return errors.New("say how to encrypt, one way: recipient/recipients-file, passphrase-file, or plaintext = yes")
	}
	for _, secret := range []string{c.PassphraseFile, c.Identity} {
		if secret == "" {
			continue
		}
		if err := CheckSecretFile(secret); err != nil {
			return err
		}
	}
	return nil
}

// CheckSecretFile refuses a key or passphrase file that others than its
// owner may read or write: a secret must not leak through the backup job.
func CheckSecretFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is mode %04o: a secret must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	return nil
}
