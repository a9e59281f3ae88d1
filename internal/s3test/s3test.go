// Package s3test runs a real S3 server on 127.0.0.1 for tests: versitygw,
// which serves a local folder over S3 (each subfolder a bucket), with
// fresh keys that the tests pass in the AWS environment variables.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNoServer means versitygw is not installed; .ci/run installs it with
// `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`.
var ErrNoServer = errors.New("versitygw not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")

// Region is the one the server answers for.
const Region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	Dir      string // buckets are its subfolders
	Endpoint string // http://127.0.0.1:port
	Access   string
	Secret   string

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
	bin := Path()
	if bin == "" {
		return nil, ErrNoServer
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	log, err := os.CreateTemp("", "versitygw-*.log")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Endpoint: "http://" + addr, Access: access, Secret: secret,
		done: make(chan struct{}), log: log}
	s.cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", dir)
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
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("versitygw exited: %s", s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := s.Log()
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s: %s", addr, log)
		}
	}
}

// Env is the environment that gives a client the server's keys.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.Access, "AWS_SECRET_ACCESS_KEY=" + s.Secret, "AWS_REGION=" + Region}
}

// MakeBucket creates a bucket, as its owner would before the first backup.
func (s *Server) MakeBucket(name string) error {
	c, err := minio.New(s.Endpoint[len("http://"):], &minio.Options{
		Creds:  credentials.NewStaticV4(s.Access, s.Secret, ""),
		Region: Region,
	})
	if err != nil {
		return err
	}
	return c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: Region})
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
