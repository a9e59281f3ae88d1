package job

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Stage is one process of a pipeline.
type Stage struct {
	Name string   // as the summary shows it: bk-pack, stage 1, bk-split…
	Args []string // the program and its arguments
}

// SeriesDir is the state folder bk-pack and bk-push share, inside the job's
// state folder.
func (c *Config) SeriesDir() string { return filepath.Join(c.StateDir, "series") }

// Pipeline returns the job's stages: bk-pack --state | the config's stages
// | bk-split | bk-push. quiet passes -q to bk's tools. bk-push's go-ahead
// descriptor is not among its arguments: Run adds it.
func (c *Config) Pipeline(quiet bool) []Stage {
	q := func(args []string) []string {
		if quiet {
			return append(args[:1:1], append([]string{"-q"}, args[1:]...)...)
		}
		return args
	}
	pack := []string{"bk-pack", "--state", c.SeriesDir()}
	for _, r := range c.Recipients {
		pack = append(pack, "-r", r)
	}
	for _, f := range c.RecipientFiles {
		pack = append(pack, "-R", f)
	}
	if c.PassphraseFile != "" {
		pack = append(pack, "--passphrase-file", c.PassphraseFile)
	}
	if c.Plaintext {
		pack = append(pack, "--plaintext")
	}
	if c.Level != 0 {
		pack = append(pack, "-l", strconv.Itoa(c.Level))
	}
	if c.OneFileSystem {
		pack = append(pack, "-x")
	}
	for _, e := range c.Excludes {
		pack = append(pack, "--exclude", e)
	}
	for _, e := range c.ExcludeFrom {
		pack = append(pack, "--exclude-from", e)
	}
	if c.FullAfter != 0 {
		pack = append(pack, "--full-after", strconv.Itoa(c.FullAfter))
	}
	if c.FullIfOlder != "" {
		pack = append(pack, "--full-if-older", c.FullIfOlder)
	}
	// From /, as member names are the paths without their leading "/"
	// (excludes match those): the same archive, without bk-pack's warning
	// that it removed the "/", every night.
	for _, p := range c.Paths {
		rel := strings.TrimLeft(filepath.Clean(p), "/")
		if rel == "" {
			rel = "."
		}
		pack = append(pack, rel)
	}
	stages := []Stage{{"bk-pack", c.prefixed(q(pack))}}
	for i, s := range c.Stages {
		stages = append(stages, Stage{"stage " + strconv.Itoa(i+1), c.prefixed([]string{"sh", "-c", s})})
	}
	split := []string{"bk-split", "-k", strconv.Itoa(c.K), "-n", strconv.Itoa(c.N)}
	if c.BlockSize != "" {
		split = append(split, "--block-size", c.BlockSize)
	}
	stages = append(stages, Stage{"bk-split", c.prefixed(q(split))})
	push := []string{"bk-push", "--state", c.SeriesDir(), "--name", c.Name}
	if c.MinShares != 0 {
		push = append(push, "--min-shares", strconv.Itoa(c.MinShares))
	}
	push = append(push, c.connectFlags()...)
	push = append(push, c.Hosts)
	return append(stages, Stage{"bk-push", c.prefixed(q(push))})
}

// DrillPipeline is the restore drill: bk-join of the newest backup | bk-restore --check.
func (c *Config) DrillPipeline(quiet bool) []Stage {
	join := append([]string{"bk-join", "--name", c.Name}, c.connectFlags()...)
	restore := []string{"bk-restore", "--check", "-i", c.Identity}
	if quiet {
		join = append(join[:1:1], append([]string{"-q"}, join[1:]...)...)
		restore = append(restore[:1:1], append([]string{"-q"}, restore[1:]...)...)
	}
	return []Stage{
		{"bk-join", c.prefixed(append(join, c.Hosts))},
		{"bk-restore", c.prefixed(restore)},
	}
}

func (c *Config) connectFlags() []string {
	if c.SSH != "" {
		return []string{"--ssh", c.SSH}
	}
	return nil
}

// prefixed runs args under nice and ionice when the config asks.
func (c *Config) prefixed(args []string) []string {
	var pre []string
	if c.Nice != 0 {
		pre = append(pre, "nice", "-n", strconv.Itoa(c.Nice))
	}
	if c.IONice != "" {
		class, level, _ := strings.Cut(c.IONice, ":")
		pre = append(pre, "ionice", "-c", map[string]string{"realtime": "1", "best-effort": "2", "idle": "3"}[class])
		if level != "" {
			pre = append(pre, "-n", level)
		}
	}
	return append(pre, args...)
}

// WorkDir is where every stage runs: paths to back up are given relative
// to it, every other path is absolute.
const WorkDir = "/"

// ShellLine writes stages as one line for sh or bash: the pipeline a user
// could type.
func ShellLine(stages []Stage) string {
	parts := make([]string, len(stages))
	for i, s := range stages {
		words := make([]string, len(s.Args))
		for j, a := range s.Args {
			words[j] = shellQuote(a)
		}
		parts[i] = strings.Join(words, " ")
	}
	return "cd " + WorkDir + " && " + strings.Join(parts, " | ")
}

// shellQuote leaves plain words alone and puts the rest in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
