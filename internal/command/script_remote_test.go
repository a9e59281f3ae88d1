package command_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/command/connect"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	_ "github.com/bk-backup/bk/internal/remote/kinds"
	"github.com/bk-backup/bk/internal/sshtest"
	"github.com/bk-backup/bk/internal/units"
)

// scriptServers holds each script's SSH servers by name.
var scriptServers sync.Map // *testscript.TestScript → map[string]*scriptServer

type scriptServer struct {
	srv    *sshtest.Server
	proxy  *sshtest.Proxy
	shared bool // sshd-start -shared: the logins share one connection
}

func init() {
	// [ssh]: an ssh client is here, so sshd-start works (with the real
	// sshd, else the in-process server). [sshd]: the real sshd is here too.
	scriptConds["ssh"] = func() (bool, error) { return sshtest.HaveSSH(), nil }
	scriptConds["sshd"] = func() (bool, error) { return sshtest.HaveSSH() && sshtest.SSHDPath() != "", nil }
	scriptCmds["sshd-start"] = sshdStart
	scriptCmds["sshd-stop"] = sshdStop
	scriptCmds["sshd-cut"] = sshdCut
	scriptCmds["sshd-hang"] = sshdHang
	scriptCmds["sshd-appendonly"] = sshdAppendOnly
	scriptCmds["sshd-down"] = sshdDown
	scriptConds["appendonly"] = func() (bool, error) {
		_, err := exec.LookPath("useradd")
		return sshtest.HaveSSH() && sshtest.SSHDPath() != "" && os.Geteuid() == 0 && err == nil, nil
	}
	scriptCmds["remote-ls"] = remoteLs
}

// sshdStart: sshd-start [-shared] NAME DIR. Starts an SSH server reachable
// as host NAME that serves folder DIR (made if missing), through a cut
// proxy. Sets $BK_SSH to an ssh command whose config knows every server of
// the script, and $HOST_NAME to a hosts-file line for DIR on it. Stopped at
// script end. With -shared, the script's ssh logins to it share one
// connection (ControlMaster), which saves each tool run a key exchange and
// sshd a login; scripts that test logins, host keys, cuts or hangs leave it
// out, so that each run makes its own connection.
func sshdStart(ts *testscript.TestScript, neg bool, args []string) {
	shared := len(args) > 0 && args[0] == "-shared"
	if shared {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sshd-start [-shared] NAME DIR")
	}
	dir := ts.MkAbs(args[1])
	ts.Check(os.MkdirAll(dir, 0o755))
	srv := startServer(ts, args[0], sshtest.StartAny, shared)
	ts.Setenv("HOST_"+args[0], srv.HostsLine(dir))
}

// sshdAppendOnly: sshd-appendonly NAME DIR. Starts the real sshd with an
// append-only account (sshtest.StartAppendOnly) whose folder DIR links to.
// Sets $HOST_NAME to the client's hosts-file line (as the account, with
// its own key, append-only=yes) and $ADMIN_NAME to the admin's (as the
// test's user, append-only=admin), and $BK_SSH as sshd-start does.
func sshdAppendOnly(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sshd-appendonly NAME DIR")
	}
	start := func(dir string) (*sshtest.Server, error) { return sshtest.StartAppendOnly(dir) }
	// One ssh connection a host, shared by the runs: a night of the job
	// then costs no key exchange.
	srv := startServer(ts, args[0], start, true)
	ts.Check(os.Symlink(srv.AppendOnly.Folder, ts.MkAbs(args[1])))
	ts.Setenv("HOST_"+args[0], srv.ClientHostsLine())
	ts.Setenv("ADMIN_"+args[0], srv.AdminHostsLine())
}

// startServer starts a server named name with start, behind a cut proxy,
// and adds it to the script's ssh config; shared makes the logins to it
// share one connection (ControlMaster): a cut ends it, and the next login
// opens another.
func startServer(ts *testscript.TestScript, name string, start func(dir string) (*sshtest.Server, error), shared bool) *sshtest.Server {
	servers := serversOf(ts)
	if _, ok := servers[name]; ok || strings.ContainsAny(name, "/ \t") || strings.HasPrefix(name, "-") {
		ts.Fatalf("bad or repeated server name %q", name)
	}
	base := filepath.Join(ts.Getenv("WORK"), ".sshtest")
	state := filepath.Join(base, name)
	ts.Check(os.MkdirAll(state, 0o700))
	srv, err := start(state)
	ts.Check(err)
	ts.Defer(func() { srv.Stop() })
	proxy, err := sshtest.NewProxy("127.0.0.1:" + strconv.Itoa(srv.Port))
	ts.Check(err)
	ts.Defer(func() { proxy.Close() })
	servers[name] = &scriptServer{srv: srv, proxy: proxy, shared: shared}

	// ssh takes the first value it reads for an option, so the Port
	// line before the server's own config sends ssh through the proxy.
	names, extra := name, ""
	if srv.AppendOnly != nil {
		names += " " + srv.AppendOnly.Alias
	}
	if shared {
		// The socket's path must be short (sun_path): $WORK is too long.
		sockets, err := os.MkdirTemp("", "bkssh")
		ts.Check(err)
		ts.Defer(func() { os.RemoveAll(sockets) })
		extra = "\tControlMaster auto\n\tControlPath " + sockets + "/c-%C\n\tControlPersist 60\n"
	}
	cfg := filepath.Join(base, "ssh_config")
	f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	ts.Check(err)
	_, err = fmt.Fprintf(f, "Host %s\n\tPort %d\n%sInclude %q\n", names, proxy.Port(), extra, srv.ConfigPath())
	ts.Check(err)
	ts.Check(f.Close())
	ts.Setenv("BK_SSH", "ssh -F "+cfg)
	return srv
}

// sshdDown: sshd-down NAME on|off. Drops the connections to the server
// and makes it refuse new ones, as a host switched off (on), or serve them
// again (off).
func sshdDown(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || (args[1] != "on" && args[1] != "off") {
		ts.Fatalf("usage: sshd-down NAME on|off")
	}
	p := serverArg(ts, args[0]).proxy
	p.SetDown(args[1] == "on")
	if args[1] == "on" {
		p.Cut()
	}
}

func serversOf(ts *testscript.TestScript) map[string]*scriptServer {
	m, loaded := scriptServers.LoadOrStore(ts, map[string]*scriptServer{})
	if !loaded {
		ts.Defer(func() { scriptServers.Delete(ts) })
	}
	return m.(map[string]*scriptServer)
}

func serverArg(ts *testscript.TestScript, name string) *scriptServer {
	s, ok := serversOf(ts)[name]
	if !ok {
		ts.Fatalf("no server %q (sshd-start it first)", name)
	}
	return s
}

// sshdStop: sshd-stop NAME. Stops the server: the host is gone.
func sshdStop(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sshd-stop NAME")
	}
	ts.Check(serverArg(ts, args[0]).srv.Stop())
}

// sshdCut: sshd-cut NAME [BYTES]. Drops the connections to the server now,
// or once BYTES more have passed; later connections get through.
func sshdCut(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: sshd-cut NAME [BYTES]")
	}
	s := unsharedServer(ts, "sshd-cut", args[0])
	if len(args) == 1 {
		s.proxy.Cut()
		return
	}
	n, err := units.ParseSize(args[1])
	ts.Check(err)
	s.proxy.CutAfter(n.Bytes)
}

// sshdHang: sshd-hang NAME. The server hangs from now on: connections are
// accepted and never answered, as with a stuck sshd or network.
func sshdHang(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sshd-hang NAME")
	}
	unsharedServer(ts, "sshd-hang", args[0]).proxy.Stall()
}

// unsharedServer is serverArg for a command that tests what a tool does
// when its own connection fails, which a connection shared with earlier
// runs would blur.
func unsharedServer(ts *testscript.TestScript, cmd, name string) *scriptServer {
	s := serverArg(ts, name)
	if s.shared {
		ts.Fatalf("%s %s: the server shares its connections (sshd-start -shared)", cmd, name)
	}
	return s
}

// remoteLs: remote-ls DEST [DIR]. Lists DIR (default the top) on a
// hosts-file destination as "name size" lines ("name/" for folders), with
// the ssh command of $BK_SSH.
func remoteLs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: remote-ls DEST [DIR]")
	}
	h, ok, err := hostsfile.ParseLine(args[0], ts.Getenv("WORK"))
	if err == nil && !ok {
		err = fmt.Errorf("no destination in %q", args[0])
	}
	var out strings.Builder
	if err == nil {
		err = listRemote(&out, h, ts.Getenv(connect.EnvSSH), args[1:])
	}
	ts.Stdout().Write([]byte(out.String()))
	if err != nil {
		fmt.Fprintln(ts.Stderr(), err)
	}
	if (err != nil) != neg {
		ts.Fatalf("remote-ls: unexpected %v", err)
	}
}

func listRemote(out *strings.Builder, h hostsfile.Host, ssh string, dir []string) error {
	ctx := context.Background()
	r, err := h.Dial(ctx, remote.DialOptions{SSHCommand: connect.Command(ssh, connect.EnvSSH), Retry: remote.Retry{Attempts: 1}})
	if err != nil {
		return err
	}
	defer r.Close()
	infos, err := r.List(ctx, strings.Join(dir, ""))
	for _, fi := range infos {
		if fi.Dir {
			fmt.Fprintf(out, "%s/\n", fi.Name)
		} else {
			fmt.Fprintf(out, "%s %d\n", fi.Name, fi.Size)
		}
	}
	return err
}

// TestSSHDScriptCommands runs the commands above in a script of their own,
// so they are tested before the tools' scripts rely on them.
func TestSSHDScriptCommands(t *testing.T) {
	dir := t.TempDir()
	script := `[!ssh] skip 'no ssh client'
sshd-start nas store
sshd-start -shared attic other
exec echo $HOST_nas $BK_SSH
stdout '^sftp://nas/.*/store ssh -F /.*/.sshtest/ssh_config$'
mkdir store/b
cp hello store/b/x
remote-ls $HOST_nas b
cmp stdout want
remote-ls $HOST_attic
! stdout .
sshd-cut nas
remote-ls $HOST_nas
stdout '^b/$'
sshd-stop nas
! remote-ls $HOST_nas
stderr '^host nas: '
remote-ls $HOST_attic
! remote-ls $WORK/missing
stderr 'missing: no such file or directory'

-- hello --
hello
-- want --
x 6
`
	if err := os.WriteFile(filepath.Join(dir, "sshd.txtar"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 dir,
		Cmds:                scriptCmds,
		Setup:               noCache,
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			if f, ok := scriptConds[cond]; ok {
				return f()
			}
			return false, errUnknownCond(cond)
		},
	})
}
