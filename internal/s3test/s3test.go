// Package s3test runs a real S3 server on 127.0.0.1 for tests: versitygw,
// which serves a local folder over S3 (each subfolder a bucket), with
// fresh keys that the tests pass in the AWS environment variables.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNoServer means versitygw is not installed; .ci/run installs it with
// `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`.
var ErrNoServer = errors.New("versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")

// AccessLogs names the environment variable that, set to a folder, has
// every server log the requests it serves there, a file each: what a
// test or the soak asks of S3 hosts, counted by operation.
const AccessLogs = "BK_S3TEST_ACCESS_LOGS"

// Region is the one the server answers for.
const Region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	Dir      string // buckets are its subfolders
	Endpoint string // http://127.0.0.1:port
	Access   string
	Secret   string
	// Client is the second account of StartLocked, else empty: the
	// backup client's keys, which the bucket policy of LockBucket denies
	// every removal and change of history.
	ClientAccess, ClientSecret string

	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File // what the server prints
}

// Path is the versitygw binary: on $PATH, else where go install puts it.
func Path() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(d)[0], "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// Start serves dir on a free port of 127.0.0.1, with fresh keys, and waits
// until it answers.
func Start(dir string) (*Server, error) { return StartWithKeys(dir, random(10), random(20)) }

// StartWithKeys is Start with the given keys, for servers that one
// environment reaches together.
func StartWithKeys(dir, access, secret string) (*Server, error) {
	return start(dir, access, secret, nil)
}

// StartLocked is Start with versioning available (posix's versioning
// folder, dir+"-versions") and a second account, the client's (role user, so
// bucket policies bind it; the first, root, bypasses them as an admin
// account does): what LockBucket needs.
func StartLocked(dir string) (*Server, error) {
	dir = filepath.Clean(dir)
	iam, versions := dir+"-iam", dir+"-versions"
	for _, d := range []string{iam, versions} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	client := map[string]string{"access": random(10), "secret": random(20), "role": "user"}
	users, err := json.Marshal(map[string]any{"accessAccounts": map[string]any{client["access"]: client}})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(iam, "users.json"), users, 0o600); err != nil {
		return nil, err
	}
	s, err := start(dir, random(10), random(20), []string{"--iam-dir", iam}, "--versioning-dir", versions)
	if err != nil {
		return nil, err
	}
	s.ClientAccess, s.ClientSecret = client["access"], client["secret"]
	return s, nil
}

// start runs versitygw with the global options before the backend's and
// the posix backend's after.
func start(dir, access, secret string, global []string, posix ...string) (*Server, error) {
	// A free port can be taken between our probe and versitygw's bind, by
	// another test's server: retry on another port.
	for range 5 {
		s, err := startOnFreePort(dir, access, secret, global, posix)
		if err == nil || !errors.Is(err, errPortTaken) {
			return s, err
		}
	}
	return nil, fmt.Errorf("versitygw: no free port found")
}

var errPortTaken = errors.New("port taken")

func startOnFreePort(dir, access, secret string, global, posix []string) (*Server, error) {
	bin := Path()
	if bin == "" {
		return nil, ErrNoServer
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	log, err := os.CreateTemp("", "versitygw-*.log")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Endpoint: "http://" + addr, Access: access, Secret: secret,
		done: make(chan struct{}), log: log}
	// The posix backend's read buffer is 1 MiB by default, allocated and
	// cleared for every GET however small: a third of the server's CPU
	// time in the soak, so 64 KiB. Connections are kept alive, as S3
	// stores keep them: a TCP connection a request cost both sides more
	// than the request did.
	args := append(append([]string{"--port", addr, "--quiet", "--keep-alive"}, global...), "posix", "--io-buffer-size", "65536")
	if dir := os.Getenv(AccessLogs); dir != "" {
		args = append([]string{"--access-log", filepath.Join(dir, fmt.Sprintf("versitygw-%d-%d.log", os.Getpid(), port))}, args...)
	}
	s.cmd = exec.Command(bin, append(append(args, posix...), dir)...)
	// Keys by environment, so they don't show in ps.
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.Access, "ROOT_SECRET_ACCESS_KEY="+s.Secret)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		log.Close()
		os.Remove(log.Name())
		return nil, err
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; {
		// Whoever took the port also answers a dial: the server is up when
		// it holds the listening socket itself.
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if listens(s.cmd.Process.Pid, port) {
				return s, nil
			}
		}
		select {
		case <-s.done:
			log := s.Log()
			s.Stop()
			if strings.Contains(log, "address already in use") {
				return nil, fmt.Errorf("%s: %w", addr, errPortTaken)
			}
			return nil, fmt.Errorf("versitygw exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := s.Log()
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s: %s", addr, log)
		}
	}
}

// listens reports whether process pid holds a socket listening on port
// of 127.0.0.1, by Linux's /proc; where that cannot be read, a dial that
// got through has to do.
func listens(pid, port int) bool {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return true
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == local && f[3] == "0A" {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[link] {
			return true
		}
	}
	return false
}

// Env is the environment that gives a client the server's keys.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.Access, "AWS_SECRET_ACCESS_KEY=" + s.Secret, "AWS_REGION=" + Region}
}

// ClientEnv is Env with the client's keys (StartLocked).
func (s *Server) ClientEnv() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.ClientAccess, "AWS_SECRET_ACCESS_KEY=" + s.ClientSecret, "AWS_REGION=" + Region}
}

// Admin is a client with the first account's keys.
func (s *Server) Admin() (*minio.Client, error) { return s.clientWith(s.Access, s.Secret) }

// Client is a client with the client account's keys (StartLocked).
func (s *Server) Client() (*minio.Client, error) { return s.clientWith(s.ClientAccess, s.ClientSecret) }

func (s *Server) clientWith(access, secret string) (*minio.Client, error) {
	return minio.New(s.Endpoint[len("http://"):], &minio.Options{
		Creds:  credentials.NewStaticV4(access, secret, ""),
		Region: Region,
	})
}

// MakeBucket creates a bucket, as its owner would before the first backup.
func (s *Server) MakeBucket(name string) error {
	c, err := s.Admin()
	if err != nil {
		return err
	}
	return c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: Region})
}

// LockBucket makes a bucket for an append-only host (StartLocked), as the
// README tells its owner to: versioning on, and ClientPolicy for the
// client's account.
func (s *Server) LockBucket(name string) error {
	if err := s.MakeBucket(name); err != nil {
		return err
	}
	c, err := s.Admin()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := c.EnableVersioning(ctx, name); err != nil {
		return fmt.Errorf("versioning of %s: %w", name, err)
	}
	if err := c.SetBucketPolicy(ctx, name, ClientPolicy(name, `"`+s.ClientAccess+`"`)); err != nil {
		return fmt.Errorf("policy of %s: %w", name, err)
	}
	return nil
}

// ClientPolicy is the bucket policy of an append-only host, as the README
// gives it: principal (a JSON string or list; on AWS the client's IAM user
// ARN) may read, list, and create objects, and is denied every removal,
// every change of an object's or the bucket's history, and every change of
// the policy itself. The explicit Deny wins over any Allow elsewhere.
func ClientPolicy(bucket, principal string) string {
	return fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "BackupClientCreates",
      "Effect": "Allow",
      "Principal": {"AWS": %[2]s},
      "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
        "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject",
        "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload", "s3:GetBucketVersioning",
        "s3:GetLifecycleConfiguration", "s3:GetBucketPolicy"],
      "Resource": ["arn:aws:s3:::%[1]s", "arn:aws:s3:::%[1]s/*"]
    },
    {
      "Sid": "BackupClientNeverDestroys",
      "Effect": "Deny",
      "Principal": {"AWS": %[2]s},
      "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket",
        "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
        "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
        "s3:PutBucketObjectLockConfiguration", "s3:PutObjectRetention",
        "s3:PutObjectLegalHold", "s3:BypassGovernanceRetention",
        "s3:PutReplicationConfiguration"],
      "Resource": ["arn:aws:s3:::%[1]s", "arn:aws:s3:::%[1]s/*"]
    }
  ]
}`, bucket, principal)
}

// Log is what the server printed.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log.Name())
	return string(b)
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.log.Close()
	os.Remove(s.log.Name())
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
