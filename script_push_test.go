package bk_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"bk/internal/sshtest"
)

func init() {
	// nfiles DIR N [GLOB]: DIR holds exactly N entries matching GLOB
	// (default *), hidden ones (temp files) included.
	scriptCmds["nfiles"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 2 || len(args) > 3 {
			ts.Fatalf("usage: nfiles DIR N [GLOB]")
		}
		glob := "*"
		if len(args) == 3 {
			glob = args[2]
		}
		entries, err := os.ReadDir(ts.MkAbs(args[0]))
		ts.Check(err)
		var names []string
		for _, e := range entries {
			if ok, _ := filepath.Match(glob, e.Name()); ok {
				names = append(names, e.Name())
			}
		}
		if len(names) != atoi(ts, args[1]) {
			ts.Fatalf("%s holds %d entries matching %s, want %s: %v", args[0], len(names), glob, args[1], names)
		}
	}
	// sshhosts FILE N: start N SSH servers on 127.0.0.1 (sshd, or the
	// in-process server where sshd is absent), each serving the folder
	// hostI; write FILE, a hosts file naming them as sftp:// lines, and
	// set $BK_SSH to an ssh command that reaches them all.
	scriptCmds["sshhosts"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: sshhosts FILE N")
		}
		var hosts, include strings.Builder
		for i := 1; i <= atoi(ts, args[1]); i++ {
			keys, dir := ts.MkAbs("sshd"+strconv.Itoa(i)), ts.MkAbs("host"+strconv.Itoa(i))
			ts.Check(os.MkdirAll(keys, 0o700))
			ts.Check(os.MkdirAll(dir, 0o700))
			srv, err := sshtest.StartAny(keys)
			ts.Check(err)
			sshServers.Store(keys, srv)
			ts.Defer(func() { srv.Stop(); sshServers.Delete(keys) })
			fmt.Fprintln(&hosts, srv.HostsLine(dir))
			fmt.Fprintf(&include, "Include %q\n", srv.ConfigPath())
		}
		cfg := ts.MkAbs("ssh_config")
		ts.Check(os.WriteFile(cfg, []byte(include.String()), 0o600))
		ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(hosts.String()), 0o644))
		ts.Setenv("BK_SSH", "ssh -F "+cfg)
	}
	// sshstop I: stop the server of hostI, as if the machine went down.
	scriptCmds["sshstop"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: sshstop I")
		}
		srv, ok := sshServers.Load(ts.MkAbs("sshd" + args[0]))
		if !ok {
			ts.Fatalf("no server sshd%s", args[0])
		}
		ts.Check(srv.(*sshtest.Server).Stop())
	}
}

// sshServers are the servers sshhosts started, by their keys folder.
var sshServers sync.Map
