package sftp

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// BenchmarkUpload measures upload throughput to the real sshd (or the
// in-process server) on loopback, in 64 KiB writes as from a pipe.
func BenchmarkUpload(b *testing.B) {
	s, r := benchRemote(b)
	defer s.Stop()
	defer r.Close()
	data := remotetest.Data(64<<20, 1)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		up, err := r.Create(context.Background(), fmt.Sprintf("f%d", i))
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; p = p[64<<10:] {
			if _, err := up.Write(p[:64<<10]); err != nil {
				b.Fatal(err)
			}
		}
		if err := up.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownload measures reading a file back.
func BenchmarkDownload(b *testing.B) {
	s, r := benchRemote(b)
	defer s.Stop()
	defer r.Close()
	data := remotetest.Data(64<<20, 1)
	remotetest.Put(b, r, "f", data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rc, err := r.Open(context.Background(), "f", 0)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, rc); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
		rc.Close()
	}
}

func benchRemote(b *testing.B) (*sshtest.Server, remote.Remote) {
	if !sshtest.HaveSSH() {
		b.Skip("no ssh client")
	}
	s, err := sshtest.StartAny(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r, err := Dial(context.Background(), at(s, b.TempDir()), remote.DialOptions{SSHCommand: s.SSHCommand()})
	if err != nil {
		s.Stop()
		b.Fatal(err)
	}
	return s, r
}
