// Command soak runs the simulated year of nightly backups (`make soak`;
// the short form runs in `make test`). It is a test tool, not one of bk's:
// it runs bin/bk-* as processes, with the tools' clock set by $BK_NOW.
//
//	go run ./soak [-seed N] [-nights N] [-from N] [-start DATE] [-short] [-bin DIR] [-dir DIR] [-v] [-cpuprofile FILE]
//
// It exits 0 when every restore matched and every failure had a fault to
// explain it, else 1 after printing the seed and night to replay.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/bk-backup/bk/internal/soak"
)

func main() {
	cfg := soak.Config{}
	flag.Uint64Var(&cfg.Seed, "seed", 1, "the simulation's seed")
	flag.IntVar(&cfg.Nights, "nights", 365, "nights to run")
	flag.IntVar(&cfg.From, "from", 0, "the first night whose backups are restored and compared (the nights before run unchecked)")
	start := flag.String("start", "2030-01-07", "the first night's date (UTC, YYYY-MM-DD)")
	flag.BoolVar(&cfg.Short, "short", false, "fewer faults (the form make test runs)")
	flag.StringVar(&cfg.Bin, "bin", "bin", "the folder of the bk-* tools")
	flag.StringVar(&cfg.Dir, "dir", "", "work folder, emptied first (default: a new folder in /dev/shm, else in $TMPDIR, removed after a run that passed)")
	verbose := flag.Bool("v", false, "a line for every night")
	cpuProfile := flag.String("cpuprofile", "", "write the soak's own CPU profile (not the tools') to this file")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "soak: error: no arguments expected")
		os.Exit(2)
	}
	t, err := time.Parse(time.DateOnly, *start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: error: -start: %v\n", err)
		os.Exit(2)
	}
	cfg.Start = t
	if cfg.Bin, err = filepath.Abs(cfg.Bin); err != nil {
		fmt.Fprintf(os.Stderr, "soak: error: %v\n", err)
		os.Exit(2)
	}
	keep := cfg.Dir != ""
	if !keep {
		if cfg.Dir, err = os.MkdirTemp(workBase(), "bk-soak-"); err != nil {
			fmt.Fprintf(os.Stderr, "soak: error: %v\n", err)
			os.Exit(1)
		}
	}
	if *verbose {
		cfg.Log = os.Stderr
	}
	// A kill (SIGTERM) too stops the run as ^C does, so that sshd and
	// versitygw are stopped with it, not left behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "soak: error: -cpuprofile: %v\n", err)
			os.Exit(2)
		}
	}
	res, err := soak.Run(ctx, cfg)
	pprof.StopCPUProfile() // a no-op without -cpuprofile
	if res != nil {
		res.WriteSummary(os.Stdout, cfg)
	}
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "soak: interrupted; the work folder is kept: %s\n", cfg.Dir)
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: error: %v\n", err)
		fmt.Fprintf(os.Stderr, "soak: the work folder is kept: %s\n", cfg.Dir)
		os.Exit(1)
	}
	if !keep {
		_ = os.RemoveAll(cfg.Dir)
	}
}

// workBase is where the work folder goes by default: in memory (/dev/shm)
// when it has room for a year's hosts, else $TMPDIR. The nightly restores
// create and rename thousands of files; on a disk's file system that was
// a third of bk-restore's CPU time, spent in the kernel's journal rather
// than in bk.
func workBase() string {
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil && uint64(st.Bavail)*uint64(st.Bsize) >= 2<<30 {
		return "/dev/shm"
	}
	return ""
}
