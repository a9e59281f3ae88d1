package command_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/s3test"
)

// The S3 servers of all scripts share one pair of keys, so that remote-ls,
// which runs in this process, reaches them with the keys of its
// environment.
var s3Keys = struct{ access, secret string }{"bk-script-access", "bk-script-secret-0123456789"}

var s3Servers sync.Map // *testscript.TestScript → map[string]*s3test.Server

func init() {
	scriptConds["versitygw"] = func() (bool, error) { return s3test.Path() != "", nil }
	scriptConds["rclone"] = func() (bool, error) {
		_, err := exec.LookPath("rclone")
		return err == nil, nil
	}
	scriptCmds["s3-start"] = s3Start
	scriptCmds["s3-stop"] = s3Stop
	scriptCmds["remote-temps"] = remoteTemps
	os.Setenv("AWS_ACCESS_KEY_ID", s3Keys.access)
	os.Setenv("AWS_SECRET_ACCESS_KEY", s3Keys.secret)
	os.Setenv("AWS_REGION", s3test.Region)
}

// s3Start: s3-start NAME DIR. Starts versitygw serving folder DIR (made if
// missing), with a bucket NAME in it (the folder DIR/NAME), sets the AWS
// key variables, and $HOST_NAME to a hosts-file line for prefix bk of the
// bucket. Stopped at script end.
func s3Start(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: s3-start NAME DIR")
	}
	name, dir := args[0], ts.MkAbs(args[1])
	m, loaded := s3Servers.LoadOrStore(ts, map[string]*s3test.Server{})
	if !loaded {
		ts.Defer(func() { s3Servers.Delete(ts) })
	}
	servers := m.(map[string]*s3test.Server)
	if _, ok := servers[name]; ok {
		ts.Fatalf("s3-start: server %q started twice", name)
	}
	ts.Check(os.MkdirAll(dir, 0o755))
	srv, err := s3test.StartWithKeys(dir, s3Keys.access, s3Keys.secret)
	ts.Check(err)
	ts.Defer(srv.Stop)
	servers[name] = srv
	ts.Check(srv.MakeBucket(name))
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		ts.Setenv(k, v)
	}
	ts.Setenv("HOST_"+name, "s3://"+name+"/bk endpoint="+srv.Endpoint+" path-style=yes")
	ts.Setenv("S3DIR_"+name, filepath.Join(dir, name, "bk"))
}

// s3Stop: s3-stop NAME. Stops the server: the store is gone.
func s3Stop(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: s3-stop NAME")
	}
	m, _ := s3Servers.Load(ts)
	servers, _ := m.(map[string]*s3test.Server)
	srv, ok := servers[args[0]]
	if !ok {
		ts.Fatalf("no S3 server %q (s3-start it first)", args[0])
	}
	srv.Stop()
}

// remoteTemps: remote-temps [-wait] DEST. Lists the temp files at the top
// of a hosts-file destination (for S3, its multipart uploads in progress)
// as "name size" lines. With -wait it first waits, up to two minutes (a
// loaded machine), for a share's upload holding some bytes.
func remoteTemps(ts *testscript.TestScript, neg bool, args []string) {
	wait := len(args) == 2 && args[0] == "-wait"
	if wait {
		args = args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: remote-temps [-wait] DEST")
	}
	h, ok, err := hostsfile.ParseLine(args[0], ts.Getenv("WORK"))
	if err == nil && !ok {
		err = fmt.Errorf("no destination in %q", args[0])
	}
	ts.Check(err)
	ctx := context.Background()
	r, err := h.Dial(ctx, remote.DialOptions{Retry: remote.Retry{Attempts: 1}})
	ts.Check(err)
	defer r.Close()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		temps, err := r.ListTemp(ctx, "")
		ts.Check(err)
		started := false
		for _, t := range temps {
			// bk-push's preflight test file is an upload too, of a few
			// bytes: it does not say a share's upload has begun.
			started = started || (t.Size > 0 && !strings.Contains(t.Name, remote.ProbePrefix))
		}
		if !wait || started {
			for _, t := range temps {
				fmt.Fprintf(ts.Stdout(), "%s %d\n", t.Name, t.Size)
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("remote-temps: no upload holding bytes after two minutes")
		}
	}
}
