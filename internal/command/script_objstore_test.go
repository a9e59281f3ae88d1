package command_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
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
	scriptCmds["s3-locked"] = s3Locked
	scriptCmds["s3-attack"] = s3Attack
	scriptCmds["s3-overwrite"] = s3Overwrite
	scriptCmds["s3-count"] = s3Count
	scriptCmds["s3-requests"] = s3Requests
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
	ts.Check(os.MkdirAll(dir, 0o755))
	srv, err := s3test.StartWithKeys(dir, s3Keys.access, s3Keys.secret)
	ts.Check(err)
	addServer(ts, name, srv)
	ts.Check(srv.MakeBucket(name))
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		ts.Setenv(k, v)
	}
	ts.Setenv("HOST_"+name, "s3://"+name+"/bk endpoint="+srv.Endpoint+" path-style=yes")
	ts.Setenv("S3DIR_"+name, filepath.Join(dir, name, "bk"))
}

// addServer names a server of the script, stopped at its end.
func addServer(ts *testscript.TestScript, name string, srv *s3test.Server) {
	ts.Defer(srv.Stop)
	m, loaded := s3Servers.LoadOrStore(ts, map[string]*s3test.Server{})
	if !loaded {
		ts.Defer(func() { s3Servers.Delete(ts) })
	}
	servers := m.(map[string]*s3test.Server)
	if _, ok := servers[name]; ok {
		ts.Fatalf("S3 server %q started twice", name)
	}
	servers[name] = srv
}

// serverOf is the script's server NAME.
func serverOf(ts *testscript.TestScript, name string) *s3test.Server {
	m, _ := s3Servers.Load(ts)
	servers, _ := m.(map[string]*s3test.Server)
	srv, ok := servers[name]
	if !ok {
		ts.Fatalf("no S3 server %q (s3-start it first)", name)
	}
	return srv
}

// s3Counters are the scripts' counting proxies (s3-count), by server
// name, with what each had counted at the last s3-requests.
var s3Counters sync.Map // *testscript.TestScript → map[string]*scriptCounter

type scriptCounter struct {
	*s3test.Counter
	last map[string]int
}

// s3Count: s3-count NAME. Puts a proxy that counts requests in front of
// server NAME: $HOST_NAME reaches the server through it from now on.
func s3Count(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: s3-count NAME")
	}
	name := args[0]
	c, err := s3test.NewCounter(serverOf(ts, name))
	ts.Check(err)
	ts.Defer(func() { c.Close() })
	m, loaded := s3Counters.LoadOrStore(ts, map[string]*scriptCounter{})
	if !loaded {
		ts.Defer(func() { s3Counters.Delete(ts) })
	}
	m.(map[string]*scriptCounter)[name] = &scriptCounter{Counter: c, last: map[string]int{}}
	ts.Setenv("HOST_"+name, "s3://"+name+"/bk endpoint="+c.Endpoint+" path-style=yes")
}

// s3Requests: s3-requests NAME. Prints the requests that server NAME's
// counter (s3-count) passed since the last s3-requests, as "Operation N"
// lines.
func s3Requests(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: s3-requests NAME")
	}
	m, _ := s3Counters.Load(ts)
	counters, _ := m.(map[string]*scriptCounter)
	c, ok := counters[args[0]]
	if !ok {
		ts.Fatalf("no counter in front of S3 server %q (s3-count it first)", args[0])
	}
	now := c.Requests()
	for _, line := range strings.Split(s3test.Since(c.last, now), ", ") {
		if line != "" {
			fmt.Fprintln(ts.Stdout(), line)
		}
	}
	c.last = now
}

// s3Stop: s3-stop NAME. Stops the server: the store is gone.
func s3Stop(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: s3-stop NAME")
	}
	serverOf(ts, args[0]).Stop()
}

// s3Locked: s3-locked NAME DIR BUCKET... Starts versitygw serving folder
// DIR with versioning and a client account (s3test.StartLocked), and makes
// each BUCKET as the README's append-only setup does (versioning on, the
// policy that denies the client's keys every removal and change of
// history). The keys go in $WORK/aws-credentials ($AWS_SHARED_CREDENTIALS_FILE)
// as profiles client-NAME and admin-NAME; $HOST_BUCKET is the client's
// hosts-file line (append-only=yes) and $ADMIN_BUCKET the admin's
// (append-only=admin).
func s3Locked(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: s3-locked NAME DIR BUCKET...")
	}
	name, dir := args[0], ts.MkAbs(args[1])
	ts.Check(os.MkdirAll(dir, 0o755))
	srv, err := s3test.StartLocked(dir)
	ts.Check(err)
	addServer(ts, name, srv)
	creds := ts.MkAbs("aws-credentials")
	f, err := os.OpenFile(creds, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	ts.Check(err)
	_, err = fmt.Fprintf(f, "[client-%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n[admin-%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		name, srv.ClientAccess, srv.ClientSecret, name, srv.Access, srv.Secret)
	ts.Check(errors.Join(err, f.Close()))
	ts.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	for _, bucket := range args[2:] {
		ts.Check(srv.LockBucket(bucket))
		line := "s3://" + bucket + "/bk endpoint=" + srv.Endpoint + " path-style=yes"
		ts.Setenv("HOST_"+bucket, line+" profile=client-"+name+" append-only=yes")
		ts.Setenv("ADMIN_"+bucket, line+" profile=admin-"+name+" append-only=admin")
	}
}

// s3Attack: s3-attack NAME BUCKET. With the client's keys of server NAME,
// straight to the store: tries to delete every object under bk/ in
// BUCKET, and each of its versions, to suspend versioning, to remove the
// lifecycle rules and the policy. Fails on the first that is allowed;
// prints how many were refused.
func s3Attack(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: s3-attack NAME BUCKET")
	}
	srv, bucket := serverOf(ts, args[0]), args[1]
	c, err := srv.Client()
	ts.Check(err)
	ctx := context.Background()
	refused := 0
	try := func(what string, err error) {
		if err == nil {
			ts.Fatalf("s3-attack: %s: allowed with the client's keys", what)
		}
		if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" && code != "NotImplemented" {
			ts.Fatalf("s3-attack: %s: %v, not a refusal", what, err)
		}
		refused++
	}
	for v := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "bk/", Recursive: true, WithVersions: true}) {
		ts.Check(v.Err)
		try("delete "+v.Key, c.RemoveObject(ctx, bucket, v.Key, minio.RemoveObjectOptions{}))
		try("delete "+v.Key+" version "+v.VersionID, c.RemoveObject(ctx, bucket, v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID}))
	}
	try("suspend versioning", c.SuspendVersioning(ctx, bucket))
	try("remove the lifecycle rules", c.SetBucketLifecycle(ctx, bucket, nil))
	try("remove the policy", c.SetBucketPolicy(ctx, bucket, ""))
	fmt.Fprintf(ts.Stdout(), "%d refused\n", refused)
}

// s3Overwrite: s3-overwrite NAME BUCKET client|admin. PUTs other bytes
// over every object under bk/ in BUCKET (not the folder markers), with the
// keys named: a plain PUT, which the policy lets the client make and
// versioning keeps apart. Prints how many.
func s3Overwrite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || (args[2] != "client" && args[2] != "admin") {
		ts.Fatalf("usage: s3-overwrite NAME BUCKET client|admin")
	}
	srv, bucket := serverOf(ts, args[0]), args[1]
	connect := srv.Client
	if args[2] == "admin" {
		connect = srv.Admin
	}
	c, err := connect()
	ts.Check(err)
	ctx := context.Background()
	var keys []string
	for obj := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "bk/", Recursive: true}) {
		ts.Check(obj.Err)
		if !strings.HasSuffix(obj.Key, "/") {
			keys = append(keys, obj.Key)
		}
	}
	for _, key := range keys {
		forged := []byte("{\"forged by\": \"" + args[2] + "\"}\n")
		_, err := c.PutObject(ctx, bucket, key, bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{})
		ts.Check(err)
	}
	fmt.Fprintf(ts.Stdout(), "%d overwritten\n", len(keys))
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
