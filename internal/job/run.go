package job

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
)

// SummaryFormat names the summary document (bk-backup --json).
const (
	SummaryFormat  = "bk-backup-summary"
	SummaryVersion = 1
)

// Summary is what a run did, as bk-backup prints it and hooks see it.
type Summary struct {
	Format   string        `json:"format"`
	Version  int           `json:"version"`
	Job      string        `json:"job"`
	Started  time.Time     `json:"started"`
	Seconds  float64       `json:"seconds"`
	Status   string        `json:"status"` // ok, degraded, failed, interrupted
	Exit     int           `json:"exit"`
	BackupID string        `json:"backup_id,omitempty"`
	Stored   bool          `json:"stored"` // a backup was committed this run
	Skipped  int           `json:"files_skipped"`
	Stages   []StageResult `json:"stages"`
	Hosts    []HostShares  `json:"hosts,omitempty"`
	Steps    []Step        `json:"steps,omitempty"` // hooks, prune, check, repair
	Errors   []string      `json:"errors,omitempty"`

	began time.Time // Started on the system clock, for Seconds
}

// HostShares is what one host took of the backup.
type HostShares struct {
	Host   string `json:"host"`
	Shares int    `json:"shares"`
	Bytes  int64  `json:"bytes"`
}

// Step is a hook or an upkeep tool run around the pipeline.
type Step struct {
	Kind    string  `json:"kind"` // before, after-success, after-failure, prune, check, repair
	Command string  `json:"command"`
	Exit    int     `json:"exit"`
	Status  string  `json:"status"`
	Seconds float64 `json:"seconds"`
}

// Options are what Run needs besides the config.
type Options struct {
	Job    string    // as given on the command line
	Quiet  bool      // -q for bk's tools
	Stderr io.Writer // the stages' and hooks' messages
	// Errorf reports a failure as it happens; Warnf what was worked
	// around; Notef says what is done.
	Errorf func(format string, args ...any)
	Warnf  func(format string, args ...any)
	Notef  func(format string, args ...any)
	// Now is the calendar's time (the summary's start, when a full check is
	// due); nil means the system clock.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Run runs the job once, holding its lock, and returns its summary; the
// summary's Exit is the job's exit code.
func Run(ctx context.Context, c *Config, opt Options) *Summary {
	s := &Summary{Format: SummaryFormat, Version: SummaryVersion, Job: c.Name, Started: opt.now().UTC(), Exit: 0, began: time.Now()}
	fail := func(code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.Errors = append(s.Errors, msg)
		opt.Errorf("%s", msg)
		if s.Exit == 0 || s.Exit == 3 {
			s.Exit = code
		}
	}
	defer func() { s.Seconds = time.Since(s.began).Seconds() }()

	lock, err := TakeLock(c.StateDir)
	if err != nil {
		fail(1, "%v", err)
		s.Status = "failed"
		return s
	}
	defer lock.Release()

	for _, h := range c.Before {
		st := s.hook(ctx, "before", h, c, opt)
		if st.Exit != 0 {
			fail(1, "before hook %q: %s: nothing was backed up", h, st.Status)
			break
		}
	}
	if s.Exit == 0 {
		s.runPipeline(ctx, c, opt, fail)
	}
	if s.Stored {
		s.upkeep(ctx, c, opt, fail)
	}
	if ctx.Err() != nil {
		s.Exit = 130
	}
	s.Status = statusOf(s.Exit)
	hooks, kind := c.AfterSuccess, "after-success"
	if s.Exit != 0 && s.Exit != 3 {
		hooks, kind = c.AfterFailure, "after-failure"
	}
	for _, h := range hooks {
		if st := s.hook(context.WithoutCancel(ctx), kind, h, c, opt); st.Exit != 0 {
			fail(1, "%s hook %q: %s", kind, h, st.Status)
		}
	}
	s.Status = statusOf(s.Exit)
	return s
}

func statusOf(code int) string {
	switch code {
	case 0:
		return "ok"
	case 3:
		return "degraded"
	case 130:
		return "interrupted"
	}
	return "failed"
}

// runPipeline runs the stages and keeps the manifest of a committed backup.
func (s *Summary) runPipeline(ctx context.Context, c *Config, opt Options, fail func(int, string, ...any)) {
	stages := c.Pipeline(opt.Quiet)
	if s.parentGone(ctx, c, opt) {
		stages[0].Args = withFull(stages[0].Args)
	}
	p, err := start(stages, true, opt.Stderr)
	if err != nil {
		fail(1, "starting the pipeline: %v", err)
		return
	}
	s.Stages = p.wait(ctx, func() bool { return true })
	s.Skipped = s.Stages[0].Skipped
	code := Combine(s.Stages)
	for _, r := range s.Stages {
		if r.Failed() {
			fail(code, "%s failed (%s): no backup was stored", r.Name, r.Status)
			break
		}
	}
	if code == 3 && s.Exit == 0 {
		s.Exit = 3
	}
	push := s.Stages[len(s.Stages)-1]
	if push.Failed() {
		return
	}
	var m manifest.Manifest
	data := p.out.Bytes()
	if err := json.Unmarshal(data, &m); err != nil || m.ID == "" {
		fail(1, "bk-push stored a backup but printed no manifest that reads: %v", err)
		return
	}
	s.Stored = true
	s.BackupID = m.ID
	byHost := map[string]*HostShares{}
	for _, sh := range m.Shares {
		h := byHost[sh.Host]
		if h == nil {
			h = &HostShares{Host: sh.Host}
			byHost[sh.Host] = h
		}
		h.Shares++
		h.Bytes += sh.Size
	}
	for _, h := range byHost {
		s.Hosts = append(s.Hosts, *h)
	}
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].Host < s.Hosts[j].Host })
	if err := WriteAtomic(filepath.Join(c.StateDir, "last.json"), data); err != nil {
		fail(1, "backup %s was stored, but its manifest could not be saved: %v", m.ID, err)
	}
}

// WriteAtomic writes data to path through a temp file in its folder,
// synced and renamed: path holds the old bytes or the new, never a part.
func WriteAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// hook runs one hook command with sh, the summary so far in its
// environment, its output on stderr (stdout is the summary's).
func (s *Summary) hook(ctx context.Context, kind, command string, c *Config, opt Options) Step {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdout = opt.Stderr
	cmd.Stderr = opt.Stderr
	cmd.Env = append(os.Environ(), s.env(c)...)
	return s.step(kind, command, cmd)
}

func (s *Summary) step(kind, command string, cmd *exec.Cmd) Step {
	t := time.Now()
	code, status := exitOf(cmd.Run())
	st := Step{Kind: kind, Command: command, Exit: code, Status: status, Seconds: time.Since(t).Seconds()}
	s.Steps = append(s.Steps, st)
	return st
}

// env is the summary as hooks see it.
func (s *Summary) env(c *Config) []string {
	doc, _ := json.Marshal(s)
	var bytes int64 = -1
	if len(s.Stages) > 0 {
		bytes = s.Stages[0].BytesOut
	}
	return []string{
		"BK_JOB=" + c.Name,
		"BK_CONFIG=" + c.File,
		"BK_STATUS=" + statusOf(s.Exit),
		"BK_EXIT=" + strconv.Itoa(s.Exit),
		"BK_BACKUP_ID=" + s.BackupID,
		"BK_ARCHIVE_BYTES=" + strconv.FormatInt(bytes, 10),
		"BK_FILES_SKIPPED=" + strconv.Itoa(s.Skipped),
		"BK_SECONDS=" + strconv.FormatFloat(time.Since(s.began).Seconds(), 'f', 1, 64),
		"BK_ERRORS=" + strings.Join(s.Errors, "\n"),
		"BK_SUMMARY_JSON=" + string(doc),
	}
}

// Drill runs the restore drill: bk-join of the job's newest backup |
// bk-restore --check with the config's identity.
func Drill(ctx context.Context, c *Config, opt Options) *Summary {
	s := &Summary{Format: SummaryFormat, Version: SummaryVersion, Job: c.Name, Started: opt.now().UTC(), began: time.Now()}
	defer func() { s.Seconds = time.Since(s.began).Seconds() }()
	if c.Identity == "" {
		s.Exit = 2
		s.Errors = append(s.Errors, "the restore drill needs the key: name it in the config (identity = /root/bk-key.txt)")
		opt.Errorf("%s: %s", c.File, s.Errors[0])
		s.Status = statusOf(s.Exit)
		return s
	}
	p, err := start(c.DrillPipeline(opt.Quiet), false, opt.Stderr)
	if err != nil {
		s.Exit = 1
		s.Errors = append(s.Errors, err.Error())
		opt.Errorf("starting the drill: %v", err)
	} else {
		s.Stages = p.wait(ctx, func() bool { return true })
		s.Exit = Combine(s.Stages)
		for _, r := range s.Stages {
			if r.Failed() {
				msg := fmt.Sprintf("restore drill: %s failed (%s)", r.Name, r.Status)
				s.Errors = append(s.Errors, msg)
				opt.Errorf("%s", msg)
				break
			}
		}
	}
	s.Status = statusOf(s.Exit)
	return s
}
