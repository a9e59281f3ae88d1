package s3

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
)

// BenchmarkUpload sends 64 MiB to versitygw on loopback: "bk" through this
// kind of host in 64 KiB writes as from a pipe, "rclone" as `rclone
// copyto` of the same bytes from a file to the same server, the reference
// (b.N files each). Compare the two MB/s of one run.
func BenchmarkUpload(b *testing.B) {
	s := server(b)
	loc := bucket(b, s, "")
	data := remotetest.Data(64<<20, 1)
	b.Run("bk", func(b *testing.B) {
		r := dial(b, loc, remote.DialOptions{})
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			up, err := r.Create(context.Background(), fmt.Sprintf("bk/f%d", i))
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
	})
	b.Run("rclone", func(b *testing.B) {
		if _, err := exec.LookPath("rclone"); err != nil {
			b.Skip("rclone not installed")
		}
		file := filepath.Join(b.TempDir(), "f")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			b.Fatal(err)
		}
		target := fmt.Sprintf(":s3,provider=Other,env_auth=false,access_key_id=%s,secret_access_key=%s,endpoint='%s',region=us-east-1:%s",
			s.Access, s.Secret, s.Endpoint, loc.Bucket)
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			cmd := exec.Command("rclone", "copyto", "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1", file, fmt.Sprintf("%s/rclone/f%d", target, i))
			// A CA bundle is no use on plain HTTP, and rclone's AWS SDK
			// refuses to start with one.
			cmd.Env = append(os.Environ(), "AWS_CA_BUNDLE=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("rclone copyto: %v\n%s", err, out)
			}
		}
	})
}
