// Package soak simulates a year of nightly bk-backup jobs on a changing
// tree, with hosts that go offline, die, fill up and come back stale, and
// faults injected (bit rot, truncated shares, killed stages and prunes,
// clock jumps), running the real tools as processes. After each night it
// restores one backup that is still kept, chain and all, and compares it
// with the tree as it was when that backup was made. It is `make soak`.
package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is one simulation.
type Config struct {
	Seed   uint64
	Nights int
	// From is the first night whose backups are restored and compared; the
	// nights before run as they would (same tree, same faults), unchecked,
	// so a failure on night N replays with From = N.
	From  int
	Start time.Time // the first night's date; jobs run at 02:30 UTC
	Dir   string    // work folder, emptied first
	Bin   string    // the folder holding the bk-* tools
	Short bool      // fewer faults: the form `make test` runs
	Log   io.Writer // a line a night
}

// Failure is a mismatch or an unexplained failure: it stops the run.
type Failure struct {
	Seed   uint64
	Nights int // of the run
	Night  int
	Date   string
	What   string
	Short  bool
}

func (f *Failure) Error() string {
	// The same NIGHTS: the plan of host events and faults is laid out
	// over them, so fewer would meet other faults on other nights.
	replay := fmt.Sprintf("make soak SEED=%d FROM=%d NIGHTS=%d", f.Seed, f.Night, f.Nights)
	if f.Short {
		replay += " SOAKFLAGS=-short"
	}
	return fmt.Sprintf("night %d (%s), seed %d: %s\nreplay: %s", f.Night, f.Date, f.Seed, f.What, replay)
}

// Result is what the summary reports.
type Result struct {
	Nights, Runs, Stored, Kept, Compared int
	Faults                               map[string]int
	Repairs                              int
	HostBytes                            []HostUsage
	FullEveryNight                       int64 // bytes the kept backups would take as full ones
	// BigChanged counts the nights the large file changed before a backup
	// was stored; BigDeltas those of them whose archive was smaller than
	// the file, so it went as a delta.
	BigChanged, BigDeltas int
	// SSHShared says the tools' ssh logins to h3 shared a connection a
	// night (ssh's ControlMaster), the first login of each night a real
	// one.
	SSHShared               bool
	Mismatches, Unexplained int
	Wall                    time.Duration
	// CPU is the processor time (user and system) spent by phase: the
	// tools run in it, and in "soak" this process itself.
	CPU map[string]time.Duration
}

// The phases the summary's CPU times are counted by.
const (
	phaseJobs     = "bk-backup jobs (stages, prune, check, repair)"
	phaseRestores = "nightly restores (bk-ls, bk-join, bk-restore)"
	phasePrunes   = "killed prunes"
	phaseHosts    = "host events (snapshots, moves)"
	phaseSSHD     = "sshd (SFTP host h3), the ssh masters"
	phaseS3       = "versitygw (S3 host h4)"
	phaseFinale   = "final check, repair and restores"
	phaseSoak     = "soak (tree changes, scans, kills)"
)

// HostUsage is one host's bytes at the end.
type HostUsage struct {
	Name, Kind, State string
	Bytes             int64
}

// attempt is one run of the job: when (on the tools' clock) and the tree
// it saw.
type attempt struct {
	night   int
	at      time.Time
	tree    Manifest
	grown   []byte // live.log after the run (it grew while read)
	stored  string // the backup ID bk-backup reported, if any
	killed  bool
	summary summary
}

type sim struct {
	cfg      Config
	res      *Result
	plan     []night
	hosts    []*host // as the hosts file lists them
	all      []*host
	srv      *servers
	tree     *tree
	env      []string
	conf     string
	hostFile string
	key      string
	attempts []*attempt
	snapshot map[string]string
	// hashes are the last scan's of the tree, for the next to reuse.
	hashes *hashes
	// bigChanged: the large file changed since the last backup stored.
	bigChanged bool
	night      int
	date       time.Time
	// counted: the children's CPU time the phases have counted so far,
	// so that a phase started inside another counts only once.
	counted time.Duration
	// mu guards res's counts while the finale restores two at a time.
	mu sync.Mutex
}

// Run runs the simulation and returns its result; a *Failure when a
// restore did not match or a tool failed where nothing explains it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	began := time.Now()
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	s := &sim{cfg: cfg, res: &Result{Faults: map[string]int{}, CPU: map[string]time.Duration{}}, plan: makePlan(cfg.Seed, cfg.Nights, cfg.Short),
		snapshot: map[string]string{}}
	note := func(format string, args ...any) { fmt.Fprintf(cfg.Log, "soak: "+format+"\n", args...) }
	becomeSubreaper()
	var err error
	if s.all, s.srv, err = startHosts(cfg.Dir, note); err != nil {
		return nil, err
	}
	defer s.srv.stop(s.phase)
	s.res.SSHShared = s.srv.shared
	s.hosts = slices.Clone(s.all)
	if err := s.setup(); err != nil {
		return nil, err
	}
	for s.night = 0; s.night < cfg.Nights; s.night++ {
		if err := ctx.Err(); err != nil {
			// An interrupted run still sums up the nights it ran.
			return s.finish(began), err
		}
		s.date = cfg.Start.AddDate(0, 0, s.night).Add(2*time.Hour + 30*time.Minute)
		if err := s.runNight(ctx); err != nil {
			return s.finish(began), err
		}
		s.res.Nights++
	}
	if err := s.phase(phaseFinale, func() error { return s.finale(ctx) }); err != nil {
		return s.finish(began), err
	}
	return s.finish(began), nil
}

func (s *sim) finish(began time.Time) *Result {
	s.res.Wall = time.Since(began)
	for _, h := range s.all {
		s.res.HostBytes = append(s.res.HostBytes, HostUsage{Name: h.name, Kind: h.kind, State: h.state, Bytes: usage(h.dir)})
	}
	s.srv.stop(s.phase)
	s.res.CPU[phaseSoak] = cpuTime(syscall.RUSAGE_SELF)
	return s.res
}

// phase runs f and counts the CPU time of the children waited for
// meanwhile (with theirs) as the phase's, but for what phases started
// inside f counted (host events stop servers in phases of their own).
func (s *sim) phase(name string, f func() error) error {
	before, countedBefore := cpuTime(syscall.RUSAGE_CHILDREN), s.counted
	err := f()
	own := cpuTime(syscall.RUSAGE_CHILDREN) - before - (s.counted - countedBefore)
	s.res.CPU[name] += own
	s.counted += own
	return err
}

// cpuTime is the user and system time of this process (RUSAGE_SELF) or
// of its children waited for, with theirs (RUSAGE_CHILDREN).
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *sim) fail(what string, args ...any) error {
	return &Failure{Seed: s.cfg.Seed, Nights: s.cfg.Nights, Night: s.night, Date: s.date.Format("2006-01-02"), What: fmt.Sprintf(what, args...), Short: s.cfg.Short}
}

func (s *sim) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, "night %3d %s: %s\n", s.night, s.date.Format("2006-01-02 Mon"), fmt.Sprintf(format, args...))
}

func (s *sim) setup() error {
	d := s.cfg.Dir
	s.tree = &tree{root: filepath.Join(d, "home"), rng: rand.New(rand.NewPCG(s.cfg.Seed, 0x54524545))}
	if err := os.MkdirAll(s.tree.root, 0o755); err != nil {
		return err
	}
	if err := s.tree.seed(); err != nil {
		return err
	}
	// The tools are found on $PATH by this process (exec) and by
	// bk-backup, which starts the stages and upkeep tools.
	if err := os.Setenv("PATH", s.cfg.Bin+string(os.PathListSeparator)+os.Getenv("PATH")); err != nil {
		return err
	}
	// The tools' cache of what they read from the hosts, in the work
	// folder, as a user's is in their home: the year measures what users
	// get.
	s.env = append(append(os.Environ(), s.srv.env...), "BK_CACHE_DIR="+filepath.Join(d, "cache"))
	s.conf = filepath.Join(d, "soak.conf")
	s.hostFile = filepath.Join(d, "hosts.txt")
	s.key = filepath.Join(d, "key.txt")
	if _, err := s.tool(nil, "bk-keygen", "-q", "-o", s.key); err != nil {
		return fmt.Errorf("bk-keygen: %w", err)
	}
	out, err := s.tool(nil, "bk-keygen", "-y", s.key)
	if err != nil {
		return fmt.Errorf("bk-keygen -y: %w", err)
	}
	return os.WriteFile(filepath.Join(d, "recipients"), out, 0o644)
}

// tool runs a bk tool (or any command) to the end and returns its stdout;
// an exit status other than 0 or 3 is an error holding its stderr.
func (s *sim) tool(extraEnv []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(slices.Clone(s.env), extraEnv...)
	cmd.Dir = s.cfg.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := exitCode(err); code == 3 {
		err = nil
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// clockEnv is the environment that sets the tools' clock.
func clockEnv(t time.Time) []string { return []string{"BK_NOW=" + t.UTC().Format(time.RFC3339Nano)} }

func (s *sim) host(name string) *host {
	for _, h := range s.all {
		if h.name == name {
			return h
		}
	}
	panic("no host " + name)
}

// hostEvents applies the night's plan to the hosts and the hosts file.
func (s *sim) hostEvents() error {
	p := s.plan[s.night]
	var did []string
	for _, n := range p.back {
		if h := s.host(n); h.state == "offline" {
			if err := h.comeBack(s.srv); err != nil {
				return err
			}
			did = append(did, n+" back")
		}
	}
	if n := p.stale; n != "" {
		h := s.host(n)
		// The host's disk comes back restored from the copy: whatever was
		// on it since is gone.
		if err := os.RemoveAll(h.away()); err != nil {
			return err
		}
		if err := os.Rename(s.snapshot[n], h.dir); err != nil {
			return err
		}
		h.state = "up"
		s.res.Faults[faultStale]++
		did = append(did, n+" back with its disk of a week ago")
	}
	if n := p.snapshot; n != "" {
		s.snapshot[n] = filepath.Join(s.cfg.Dir, "hosts", n+".snapshot")
		if err := copyDir(s.host(n).dir, s.snapshot[n]); err != nil {
			return err
		}
	}
	for _, n := range p.offline {
		if h := s.host(n); h.state == "up" {
			if err := h.goOffline(s.srv, s.phase); err != nil {
				return err
			}
			s.res.Faults[faultOffline]++
			did = append(did, n+" offline")
		}
	}
	if n := p.die; n != "" {
		h := s.host(n)
		if err := os.RemoveAll(h.dir); err != nil {
			return err
		}
		h.state = "dead"
		s.res.Faults[faultDeath]++
		did = append(did, n+" died")
	}
	if n := p.replace; n != "" {
		// The admin drops the dead host's line and adds a new spare.
		s.hosts = slices.DeleteFunc(s.hosts, func(h *host) bool { return h.name == n })
		nh := &host{name: "h6", kind: "folder", dir: filepath.Join(s.cfg.Dir, "hosts", "h6"), state: "up"}
		nh.line = nh.dir
		if err := os.MkdirAll(nh.dir, 0o755); err != nil {
			return err
		}
		s.hosts = append(s.hosts, nh)
		s.all = append(s.all, nh)
		did = append(did, n+" replaced by a new spare h6")
	}
	if n := p.quota; n != "" {
		h := s.host(n)
		h.quota = fmt.Sprintf("quota=%d", usage(h.dir)+64<<10)
		s.res.Faults[faultQuota]++
		did = append(did, n+" "+h.quota)
	}
	if n := p.unquota; n != "" {
		s.host(n).quota = ""
		did = append(did, n+" quota raised")
	}
	if len(did) > 0 {
		s.logf("hosts: %s", strings.Join(did, ", "))
	}
	return writeHostsFile(s.hostFile, s.hosts)
}

// damage rots and truncates shares on the hosts, as disks do by day.
func (s *sim) damage(rng *rand.Rand) error {
	p := s.plan[s.night]
	for range p.rot {
		files := shareFiles(s.hosts)
		if len(files) == 0 {
			break
		}
		f := files[rng.IntN(len(files))]
		if err := flipByte(f, rng); err != nil {
			return err
		}
		s.res.Faults[faultRot]++
		s.logf("bit rot in %s", s.rel(f))
	}
	if p.truncate {
		if files := shareFiles(s.hosts); len(files) > 0 {
			f := files[rng.IntN(len(files))]
			fi, err := os.Stat(f)
			if err != nil {
				return err
			}
			if err := os.Truncate(f, fi.Size()*int64(rng.IntN(10))/10); err != nil {
				return err
			}
			s.res.Faults[faultTruncate]++
			s.logf("share truncated: %s", s.rel(f))
		}
	}
	return nil
}

func (s *sim) rel(p string) string {
	r, err := filepath.Rel(s.cfg.Dir, p)
	if err != nil {
		return p
	}
	return r
}

func flipByte(path string, rng *rand.Rand) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	off := rng.Int64N(fi.Size())
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 1 << rng.IntN(8)
	_, err = f.WriteAt(b, off)
	return err
}

// runNight runs one night and, under -v, says where its CPU time went: the
// cost of a night is what grows through the year. The night's ssh
// connection ends with it, so that its CPU time (sshd's, the master's)
// counts in the night's line.
func (s *sim) runNight(ctx context.Context) error {
	before := maps.Clone(s.res.CPU)
	sshd, s3, self := serverCPU("sshd"), serverCPU("versitygw"), cpuTime(syscall.RUSAGE_SELF)
	err := s.nightWork(ctx)
	_ = s.phase(phaseSSHD, s.srv.endNight)
	var parts []string
	var total time.Duration
	add := func(name string, d time.Duration) {
		parts = append(parts, fmt.Sprintf("%s %.1fs", name, d.Seconds()))
		total += d
	}
	for _, p := range []string{phaseJobs, phaseRestores, phasePrunes, phaseHosts} {
		if d := s.res.CPU[p] - before[p]; d > 0 {
			add(strings.Fields(p)[0], d)
		}
	}
	// A server's time: what its phase counted (when it stopped) and what
	// it spent running on.
	add("sshd", s.res.CPU[phaseSSHD]-before[phaseSSHD]+serverCPU("sshd")-sshd)
	add("versitygw", s.res.CPU[phaseS3]-before[phaseS3]+serverCPU("versitygw")-s3)
	add("soak", cpuTime(syscall.RUSAGE_SELF)-self)
	s.logf("cpu %.1fs: %s", total.Seconds(), strings.Join(parts, ", "))
	return err
}

// serverCPU is the CPU time the servers named comm (sshd, versitygw: this
// process's children that run all night), with their children waited for,
// have spent so far: the phases count it only when a server stops.
func serverCPU(comm string) time.Duration {
	var sum time.Duration
	for _, pid := range findChildren(os.Getpid(), comm, 0) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields 14 to 17 (utime, stime, cutime, cstime), after the
		// command in parentheses, in clock ticks of 1/100 s.
		_, rest, _ := bytes.Cut(b, []byte(") "))
		f := strings.Fields(string(rest))
		for _, v := range f[11:min(15, len(f))] {
			ticks, _ := strconv.ParseInt(v, 10, 64)
			sum += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return sum
}

func (s *sim) nightWork(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(s.cfg.Seed, uint64(s.night)+1))
	p := s.plan[s.night]
	if err := s.phase(phaseHosts, s.hostEvents); err != nil {
		return err
	}
	changes := 5 + rng.IntN(20)
	if s.night == 0 {
		changes = 0
	}
	for range changes {
		if err := s.tree.change(); err != nil {
			return fmt.Errorf("changing the tree: %w", err)
		}
	}
	if s.night > 0 {
		changed, err := s.tree.changeBig()
		if err != nil {
			return fmt.Errorf("changing the large file: %w", err)
		}
		s.bigChanged = s.bigChanged || changed
	}
	if err := s.damage(rng); err != nil {
		return err
	}
	at := s.date
	if p.clockFwd {
		at = at.Add(time.Hour)
		s.res.Faults[faultClockFwd]++
	}
	var a *attempt
	err := s.phase(phaseJobs, func() (err error) {
		a, err = s.runJob(ctx, at, rng, p)
		return err
	})
	if err != nil {
		return err
	}
	if s.bigChanged && a.stored != "" {
		// It changed since the last backup stored: tonight's holds it.
		s.bigChanged = false
		s.res.BigChanged++
		if len(a.summary.Stages) > 0 && a.summary.Stages[0].BytesOut < bigSize {
			s.res.BigDeltas++
		}
	}
	if p.clockBack && a.stored != "" {
		// The clock goes back an hour after the run, and the job runs
		// again: its backup builds on the one made "later".
		for range 3 {
			if err := s.tree.change(); err != nil {
				return err
			}
		}
		s.res.Faults[faultClockBack]++
		err := s.phase(phaseJobs, func() error {
			_, err := s.runJob(ctx, at.Add(-50*time.Minute), rng, night{})
			return err
		})
		if err != nil {
			return err
		}
	}
	if p.pruneKill {
		if err := s.phase(phasePrunes, func() error { return s.killedPrune(rng) }); err != nil {
			return err
		}
	}
	if s.night >= s.cfg.From {
		return s.phase(phaseRestores, func() error { return s.restoreOne(ctx, rng) })
	}
	return nil
}

// retention is the job's, also given to the prune the soak kills.
var retention = []string{"--keep-daily", "14", "--keep-weekly", "8", "--keep-monthly", "12"}

func (s *sim) writeConfig(p night, cut int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, `format = 1
name = soak
path = %s
recipients-file = recipients
k = 3
n = 5
block-size = 16K
hosts = hosts.txt
state-dir = state
check = yes
full-check-every = 7d
repair = yes
`, s.tree.root)
	if !p.pruneKill {
		// The night the soak kills a prune it runs that prune itself.
		b.WriteString("keep-daily = 14\nkeep-weekly = 8\nkeep-monthly = 12\n")
	}
	if cut > 0 {
		// A stage that dies after passing part of the archive on.
		fmt.Fprintf(&b, "stage = head -c %d; kill -9 $$\n", cut)
	}
	return os.WriteFile(s.conf, []byte(b.String()), 0o644)
}

// summary is what the soak reads of bk-backup --json.
type summary struct {
	Status   string `json:"status"`
	Exit     int    `json:"exit"`
	BackupID string `json:"backup_id"`
	Stored   bool   `json:"stored"`
	Stages   []struct {
		Name     string  `json:"name"`
		Exit     int     `json:"exit"`
		Status   string  `json:"status"`
		Seconds  float64 `json:"seconds"`
		BytesOut int64   `json:"bytes_out"`
	} `json:"stages"`
	Steps []struct {
		Kind    string  `json:"kind"`
		Exit    int     `json:"exit"`
		Command string  `json:"command"`
		Seconds float64 `json:"seconds"`
	} `json:"steps"`
	Errors []string `json:"errors"`
}

// runJob runs bk-backup once with the tools' clock at at, a file growing
// while it reads, and the night's kill if any.
func (s *sim) runJob(ctx context.Context, at time.Time, rng *rand.Rand, p night) (*attempt, error) {
	var cut int64
	if p.cut {
		cut = 1 + rng.Int64N(256<<10)
	}
	if err := s.writeConfig(p, cut); err != nil {
		return nil, err
	}
	if cut > 0 {
		s.logf("a stage cuts the archive after %d bytes and dies", cut)
	}
	before, hashes, err := s.hashes.scan(s.tree.root)
	if err != nil {
		return nil, err
	}
	s.hashes = hashes
	a := &attempt{night: s.night, at: at, tree: before}
	s.attempts = append(s.attempts, a)
	s.res.Runs++
	cmd := exec.CommandContext(ctx, "bk-backup", "--json", "-q", s.conf)
	interruptible(cmd)
	cmd.Env = append(slices.Clone(s.env), clockEnv(at)...)
	cmd.Dir = s.cfg.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The log written to while the backup reads it, as a logger does:
	// open all along, a line every 3 ms.
	live, err := os.OpenFile(s.tree.path(liveFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		live.Close()
		return nil, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer live.Close()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		// A line a tick, made in one buffer: formatting each anew was
		// half of this loop's CPU time.
		prefix := at.Format(time.DateOnly) + " line "
		var line []byte
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			line = append(strconv.AppendInt(append(line[:0], prefix...), int64(i), 10), '\n')
			_, _ = live.Write(line)
		}
	}()
	var killed chan bool
	if p.kill {
		stage := []string{"bk-pack", "bk-split", "bk-push"}[rng.IntN(3)]
		delay := time.Duration(rng.IntN(1500)) * time.Millisecond
		killed = make(chan bool, 1)
		go func() { killed <- killChild(cmd.Process.Pid, stage, delay) }()
		s.logf("killing %s after %v", stage, delay)
	}
	runErr := cmd.Wait()
	close(stop)
	wg.Wait()
	if killed != nil {
		a.killed = <-killed
	}
	if cut > 0 {
		a.killed = true
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the run was interrupted, not the job's failure
	}
	a.grown, err = os.ReadFile(s.tree.path(liveFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(stdout.Bytes(), &a.summary); err != nil {
		return nil, s.fail("bk-backup printed no summary (%v): %s", runErr, stderr.String())
	}
	sm := a.summary
	if sm.Stored {
		a.stored = sm.BackupID
		s.res.Stored++
	}
	for _, st := range sm.Steps {
		if st.Kind == "repair" && st.Exit == 0 {
			s.res.Repairs++
		}
	}
	switch {
	case p.cut && cut > 0:
		s.res.Faults[faultCut]++
	case p.kill && a.killed:
		s.res.Faults[faultKill]++
	}
	var took []string
	for _, st := range sm.Stages {
		took = append(took, fmt.Sprintf("%s %.1fs", st.Name, st.Seconds))
	}
	for _, st := range sm.Steps {
		took = append(took, fmt.Sprintf("%s %.1fs", st.Kind, st.Seconds))
	}
	s.logf("backup at %s: %s (exit %d) %s in %.1fs (%s)", at.Format("15:04"), sm.Status, sm.Exit, sm.BackupID, time.Since(t0).Seconds(), strings.Join(took, ", "))
	if a.killed {
		if sm.Stored && cut > 0 {
			return nil, s.fail("a stage died after %d bytes, yet bk-backup stored %s", cut, sm.BackupID)
		}
		return a, nil
	}
	if sm.Exit != 0 && sm.Exit != 3 {
		s.res.Unexplained++
		return nil, s.fail("bk-backup failed with nothing to explain it (exit %d): %s\n%s", sm.Exit, strings.Join(sm.Errors, "; "), stderr.String())
	}
	if !sm.Stored {
		s.res.Unexplained++
		return nil, s.fail("bk-backup exit %d stored nothing: %s", sm.Exit, stderr.String())
	}
	return a, nil
}

// interruptible makes an interrupted run stop cmd as ^C would (bk-backup
// then stops its stages and upkeep tools), not SIGKILL it, which left its
// children running on.
func interruptible(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
}

// killChild SIGKILLs the child of pid running stage once delay has passed,
// and reports whether it did (the stage may be done by then).
func killChild(pid int, stage string, delay time.Duration) bool {
	deadline := time.Now().Add(delay)
	for {
		child := findChild(pid, stage)
		if child == 0 && time.Now().After(deadline.Add(2*time.Second)) {
			return false
		}
		if child != 0 && time.Now().After(deadline) {
			return syscall.Kill(child, syscall.SIGKILL) == nil
		}
		if syscall.Kill(pid, 0) != nil {
			return false
		}
		// Looking every 2 ms cost seconds of CPU a kill when each look
		// read every process's stat.
		time.Sleep(20 * time.Millisecond)
	}
}

// findChild is the child of pid whose command is comm, or 0.
func findChild(pid int, comm string) int {
	if children := findChildren(pid, comm, 1); len(children) > 0 {
		return children[0]
	}
	return 0
}

// findChildren are the children of pid whose command is comm, up to limit
// of them (all when limit is 0). It reads the children lists of pid's
// threads (a child is listed under the thread that started it), not
// every process's stat: on a machine running hundreds of processes that
// cost a third of the soak's own CPU time.
func findChildren(pid int, comm string, limit int) []int {
	var out []int
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, _ := os.ReadDir(dir)
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			name, err := os.ReadFile("/proc/" + f + "/comm")
			if err != nil || strings.TrimSuffix(string(name), "\n") != comm {
				continue
			}
			if n, err := strconv.Atoi(f); err == nil {
				if out = append(out, n); len(out) == limit {
					return out
				}
			}
		}
	}
	return out
}

// killedPrune runs the retention's prune and kills it part way.
func (s *sim) killedPrune(rng *rand.Rand) error {
	args := append([]string{"-q", "--name", "soak"}, retention...)
	cmd := exec.Command("bk-prune", append(args, "hosts.txt")...)
	cmd.Env = append(slices.Clone(s.env), clockEnv(s.date.Add(time.Hour))...)
	cmd.Dir = s.cfg.Dir
	if err := cmd.Start(); err != nil {
		return err
	}
	delay := time.Duration(rng.IntN(60)) * time.Millisecond
	t := time.AfterFunc(delay, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	t.Stop()
	s.res.Faults[faultPruneKill]++
	s.logf("prune killed after %v (%v)", delay, err)
	return nil
}

// listed is a backup as bk-ls --json gives it.
type listed struct {
	ID    string `json:"id"`
	Level int    `json:"level"`
	Size  int64  `json:"size"`
}

func (s *sim) list() ([]listed, error) {
	out, err := s.tool(clockEnv(s.date), "bk-ls", "-q", "--json", "hosts.txt")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Backups []listed `json:"backups"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("bk-ls --json: %w", err)
	}
	return doc.Backups, nil
}

var idTime = regexp.MustCompile(`-(\d{8}T\d{6}Z)-[0-9a-f]{8}$`)

// attemptOf finds the run that made a backup, by the time in its ID.
func (s *sim) attemptOf(id string) *attempt {
	m := idTime.FindStringSubmatch(id)
	if m == nil {
		return nil
	}
	t, err := time.Parse("20060102T150405Z", m[1])
	if err != nil {
		return nil
	}
	for _, a := range s.attempts {
		if a.stored == id {
			return a
		}
	}
	for _, a := range s.attempts {
		if d := t.Sub(a.at.Truncate(time.Second)); d >= 0 && d < 10*time.Minute {
			return a
		}
	}
	return nil
}

func (s *sim) restoreOne(ctx context.Context, rng *rand.Rand) error {
	kept, err := s.list()
	if err != nil {
		s.res.Unexplained++
		return s.fail("%v", err)
	}
	if len(kept) == 0 {
		return nil
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].ID < kept[j].ID })
	if rng.IntN(3) == 0 {
		// The bad day's command: the newest backup, as bk-join finds it.
		for i := len(s.attempts) - 1; i >= 0; i-- {
			if id := s.attempts[i].stored; id != "" {
				return s.restore(ctx, id, true, s.restoreDir(0))
			}
		}
	}
	return s.restore(ctx, kept[rng.IntN(len(kept))].ID, false, s.restoreDir(0))
}

// restoreDir is the folder the i-th of the restores at once restores into.
func (s *sim) restoreDir(i int) string {
	return filepath.Join(s.cfg.Dir, "restored"+strings.Repeat("+", i))
}

// count adds one to a count of the result; restores at once share them.
func (s *sim) count(n *int) {
	s.mu.Lock()
	*n++
	s.mu.Unlock()
}

// restore restores one backup, chain included, into out and compares it
// with the tree the run that made it saw. newest restores it as the newest
// backup of the job, without naming it.
func (s *sim) restore(ctx context.Context, id string, newest bool, out string) error {
	a := s.attemptOf(id)
	if a == nil {
		s.count(&s.res.Unexplained)
		return s.fail("the hosts hold %s, which no run made", id)
	}
	t0 := time.Now()
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	which := []string{"--backup", id}
	if newest {
		which = []string{"--name", "soak"}
	}
	join := exec.CommandContext(ctx, "bk-join", append(append([]string{"-q"}, which...), "hosts.txt")...)
	restore := exec.CommandContext(ctx, "bk-restore", "-q", "-i", s.key, "-C", out)
	var joinErr, restoreErr bytes.Buffer
	for _, c := range []*exec.Cmd{join, restore} {
		interruptible(c)
		c.Env = append(slices.Clone(s.env), clockEnv(s.date.Add(2*time.Hour))...)
		c.Dir = s.cfg.Dir
	}
	join.Stderr, restore.Stderr = &joinErr, &restoreErr
	pipe, err := join.StdoutPipe()
	if err != nil {
		return err
	}
	restore.Stdin = pipe
	if err := join.Start(); err != nil {
		return err
	}
	if err := restore.Start(); err != nil {
		_ = join.Process.Kill()
		_ = join.Wait()
		return err
	}
	restoreRun := restore.Wait()
	joinRun := join.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c := exitCode(joinRun); c != 0 && c != 3 {
		s.count(&s.res.Unexplained)
		return s.fail("restoring %s: bk-join exit %d: %s", id, c, joinErr.String())
	}
	if c := exitCode(restoreRun); c != 0 && c != 3 {
		s.count(&s.res.Unexplained)
		return s.fail("restoring %s: bk-restore exit %d: %s", id, c, restoreErr.String())
	}
	got, err := Scan(filepath.Join(out, strings.TrimPrefix(s.tree.root, "/")))
	if err != nil {
		s.count(&s.res.Unexplained)
		return s.fail("restoring %s: %v", id, err)
	}
	s.count(&s.res.Compared)
	s.logf("restored %s in %.1fs", strings.Join(which, " "), time.Since(t0).Seconds())
	if diff := Diff(a.tree, got, liveFile, a.grown, 12); len(diff) > 0 {
		s.count(&s.res.Mismatches)
		return s.fail("%s (made night %d at %s) does not restore the tree of that night:\n  %s",
			id, a.night, a.at.Format(time.RFC3339), strings.Join(diff, "\n  "))
	}
	return os.RemoveAll(out)
}

// finale checks and repairs everything as the admin would before relying
// on it, then restores every backup still kept.
func (s *sim) finale(ctx context.Context) error {
	s.night = s.cfg.Nights
	s.date = s.cfg.Start.AddDate(0, 0, s.night)
	if _, err := s.tool(clockEnv(s.date), "bk-check", "-q", "hosts.txt"); err != nil {
		s.logf("final check: %v", err)
	}
	if out, err := s.tool(clockEnv(s.date), "bk-repair", "-q", "hosts.txt"); err != nil {
		s.res.Unexplained++
		return s.fail("final repair: %v", err)
	} else if len(out) > 0 {
		s.res.Repairs++
	}
	if _, err := s.tool(clockEnv(s.date), "bk-check", "-q", "hosts.txt"); err != nil {
		s.res.Unexplained++
		return s.fail("check after the final repair: %v", err)
	}
	kept, err := s.list()
	if err != nil {
		s.res.Unexplained++
		return s.fail("%v", err)
	}
	s.res.Kept = len(kept)
	// What the same retention would keep had every night been a full
	// backup: each kept backup at the size of its chain's full one.
	var full int64
	for i := len(kept) - 1; i >= 0; i-- {
		if kept[i].Level == 0 || full == 0 {
			full = kept[i].Size
		}
		s.res.FullEveryNight += full * 5 / 3
	}
	return s.restoreAll(ctx, kept)
}

// restoreAll restores and compares the backups, two at a time: the hosts
// only serve reads now, and a restore leaves a CPU idle while it waits on
// them. The first failure stops the others.
func (s *sim) restoreAll(ctx context.Context, backups []listed) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make(chan string)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			for id := range ids {
				if errs[i] = s.restore(ctx, id, false, s.restoreDir(i)); errs[i] != nil {
					cancel()
					return
				}
			}
		})
	}
feed:
	for _, b := range backups {
		select {
		case ids <- b.ID:
		case <-ctx.Done():
			break feed
		}
	}
	close(ids)
	wg.Wait()
	// A Failure, not the cancellation it caused in the other restore.
	var first error
	for _, err := range errs {
		var f *Failure
		if errors.As(err, &f) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// WriteSummary prints the result as the end of `make soak` shows it.
func (r *Result) WriteSummary(w io.Writer, cfg Config) {
	fmt.Fprintf(w, "soak summary (seed %d, from %s, %d nights", cfg.Seed, cfg.Start.Format("2006-01-02"), cfg.Nights)
	if cfg.Short {
		fmt.Fprintf(w, ", short form")
	}
	fmt.Fprintf(w, ")\n")
	fmt.Fprintf(w, "  nights run            %d (%d runs of the job, %d backups stored)\n", r.Nights, r.Runs, r.Stored)
	fmt.Fprintf(w, "  backups kept          %d\n", r.Kept)
	fmt.Fprintf(w, "  restores compared     %d\n", r.Compared)
	var kinds []string
	for k := range r.Faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "  faults injected\n")
	for _, k := range kinds {
		fmt.Fprintf(w, "    %-26s %d\n", k, r.Faults[k])
	}
	fmt.Fprintf(w, "  repairs made          %d\n", r.Repairs)
	var total int64
	fmt.Fprintf(w, "  bytes stored per host\n")
	for _, h := range r.HostBytes {
		fmt.Fprintf(w, "    %-4s %-6s %-8s %10d\n", h.Name, h.Kind, h.State, h.Bytes)
		if h.State == "up" {
			total += h.Bytes
		}
	}
	fmt.Fprintf(w, "  stored on hosts up    %d bytes", total)
	if r.FullEveryNight > 0 {
		fmt.Fprintf(w, "; a full backup every night would store %d (%.1f%%)", r.FullEveryNight, 100*float64(total)/float64(r.FullEveryNight))
	}
	fmt.Fprintln(w)
	if r.BigChanged > 0 {
		fmt.Fprintf(w, "  large file            changed before %d backups, sent as a delta in %d\n", r.BigChanged, r.BigDeltas)
	}
	if r.SSHShared {
		fmt.Fprintf(w, "  ssh to h3             a login a night: its connection shared by the night's tool runs (ControlMaster)\n")
	}
	fmt.Fprintf(w, "  mismatches            %d\n", r.Mismatches)
	fmt.Fprintf(w, "  unexplained failures  %d\n", r.Unexplained)
	fmt.Fprintf(w, "  wall time             %s\n", r.Wall.Round(time.Second))
	var phases []string
	var cpu time.Duration
	for p, d := range r.CPU {
		phases = append(phases, p)
		cpu += d
	}
	sort.Slice(phases, func(i, j int) bool { return r.CPU[phases[i]] > r.CPU[phases[j]] })
	fmt.Fprintf(w, "  cpu time              %s\n", cpu.Round(time.Second))
	for _, p := range phases {
		fmt.Fprintf(w, "    %-48s %s\n", p, r.CPU[p].Round(100*time.Millisecond))
	}
}
