package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/s3test"
)

// locked starts versitygw with versioning and a client account, makes a
// bucket as the README's append-only setup does, and dials it with the
// client's keys, append-only, and with the admin's.
func locked(t *testing.T) (srv *s3test.Server, client, admin *S3) {
	t.Helper()
	srv = startWith(t, s3test.StartLocked)
	if err := srv.LockBucket("bk-locked"); err != nil {
		t.Fatalf("%v\n%s", err, srv.Log())
	}
	loc := Location{Bucket: "bk-locked", Prefix: "bk", Endpoint: srv.Endpoint, PathStyle: true}
	t.Setenv("AWS_REGION", s3test.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.ClientAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.ClientSecret)
	client = dial(t, loc, remote.DialOptions{AppendOnly: true})
	t.Setenv("AWS_ACCESS_KEY_ID", srv.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
	admin = dial(t, loc, remote.DialOptions{})
	return srv, client, admin
}

func put(t *testing.T, r remote.Remote, name string, data []byte) string {
	t.Helper()
	up, err := r.Create(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return remote.UploadVersion(up)
}

// readAll is a func that reads what an Open returns, all of it.
func readAll(t *testing.T) func(io.ReadCloser, error) string {
	return func(rc io.ReadCloser, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// TestAppendOnlyBucket: with the client's keys, on a bucket with
// versioning and the README's policy, every removal and change of history
// is refused and the probe finds nothing allowed; a file overwritten (by
// the client with a plain PUT, which versioning keeps apart, and by the
// admin) still reads as it was stored, by its version and by its name;
// the admin's keys are reported as not append-only.
func TestAppendOnlyBucket(t *testing.T) {
	srv, client, admin := locked(t)
	ctx := context.Background()
	read := readAll(t)
	version := put(t, client, "d/share", []byte("stored by bk"))
	if version == "" {
		t.Fatal("no version recorded on a bucket with versioning on")
	}
	if allowed, err := client.ProbeAppendOnly(ctx); err != nil || len(allowed) != 0 {
		t.Fatalf("probe with the client's keys: allowed %v, %v", allowed, err)
	}
	if err := client.Remove(ctx, "d/share"); !errors.Is(err, remote.ErrAppendOnly) {
		t.Fatalf("Remove on an append-only host: %v", err)
	}
	// Straight to the store with the client's keys, past bk's own care.
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	key := "bk/d/share"
	attempts := map[string]error{
		"delete":             c.RemoveObject(ctx, "bk-locked", key, minio.RemoveObjectOptions{}),
		"delete version":     c.RemoveObject(ctx, "bk-locked", key, minio.RemoveObjectOptions{VersionID: version}),
		"suspend versioning": c.SuspendVersioning(ctx, "bk-locked"),
		"lifecycle":          c.SetBucketLifecycle(ctx, "bk-locked", nil),
		"delete policy":      c.SetBucketPolicy(ctx, "bk-locked", ""),
	}
	for what, err := range attempts {
		if err == nil {
			t.Errorf("%s with the client's keys: allowed", what)
		} else if !refused(err) {
			t.Errorf("%s with the client's keys: %v, not a refusal", what, err)
		}
	}
	up, err := client.Create(ctx, "d/share")
	if err != nil {
		t.Fatal(err) // the name is taken: Commit, not Create, says so
	}
	up.Write([]byte("forged"))
	if err := up.Commit(ctx); !errors.Is(err, remote.ErrExist) {
		t.Fatalf("second upload to a name: %v", err)
	}
	up.Abort()
	if _, err := c.PutObject(ctx, "bk-locked", key, bytes.NewReader([]byte("forged by the client")), 20, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("plain PUT with the client's keys: %v (the policy allows PutObject)", err)
	}
	a, err := srv.Admin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutObject(ctx, "bk-locked", key, bytes.NewReader([]byte("overwritten by the admin")), 24, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := read(admin.Open(ctx, "d/share", 0)); got != "overwritten by the admin" {
		t.Fatalf("the admin's current object reads %q", got)
	}
	stored, err := client.StatVersion(ctx, "d/share", version)
	if err != nil {
		t.Fatal(err)
	}
	// The admin's hosts-file line (append-only=admin) lists and reads
	// what the client stored, as the client does.
	for who, r := range map[string]*S3{"client": client, "admin line": dial(t, admin.loc, remote.DialOptions{AppendOnlyAdmin: true})} {
		infos, err := r.List(ctx, "d")
		if err != nil || len(infos) != 1 || infos[0].Size != 12 || !infos[0].ModTime.Equal(stored.ModTime) {
			t.Fatalf("%s lists %+v (%v), want the first version: %+v", who, infos, err, stored)
		}
		if got := read(r.Open(ctx, "d/share", 0)); got != "stored by bk" {
			t.Fatalf("%s reads %q by the name", who, got)
		}
	}
	if got := read(client.OpenVersion(ctx, "d/share", version, 7)); got != "by bk" {
		t.Fatalf("the recorded version reads %q", got)
	}
	if got := read(client.Open(ctx, "d/share", 0)); got != "stored by bk" {
		t.Fatalf("by its name on the append-only host: %q", got)
	}
	if st, err := client.Stat(ctx, "d/share"); err != nil || st.Size != 12 {
		t.Fatalf("Stat on the append-only host: %+v, %v", st, err)
	}
	if _, err := remote.OpenVersion(ctx, client, "d/share", "01M8N2AV4S1Q27P0GBQZXNGW97", 0); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("a version the host lacks: %v", err)
	}
	allowed, err := admin.ProbeAppendOnly(ctx)
	if err != nil || !slices.Contains(allowed, "remove") || !slices.Contains(allowed, "versioning change") {
		t.Fatalf("probe with the admin's keys: allowed %v, %v", allowed, err)
	}
	// What the admin removes (a prune) is gone for the client too.
	if err := admin.Remove(ctx, "d/share"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Open(ctx, "d/share", 0); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("a file the admin removed: %v", err)
	}
}

// On an append-only host a Stat is the listing of the name's versions,
// which describes the first one: a HEAD of that version after it told
// nothing more.
func TestAppendOnlyStatRequests(t *testing.T) {
	srv, client, _ := locked(t)
	put(t, client, "d/share", []byte("stored by bk"))
	c, err := s3test.NewCounter(srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	loc := client.loc
	loc.Endpoint = c.Endpoint
	t.Setenv("AWS_ACCESS_KEY_ID", srv.ClientAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.ClientSecret)
	r := dial(t, loc, remote.DialOptions{AppendOnly: true})
	ctx := context.Background()
	expect(t, c, "Stat of a file", "ListObjectVersions 1", func() {
		if info, err := r.Stat(ctx, "d/share"); err != nil || info.Size != 12 || info.Dir {
			t.Errorf("Stat(d/share) = %+v, %v", info, err)
		}
	})
	expect(t, c, "Stat of nothing", "HeadObject 1, ListObjectVersions 1", func() {
		if _, err := r.Stat(ctx, "d/nope"); !errors.Is(err, remote.ErrNotExist) {
			t.Errorf("Stat(d/nope): %v", err)
		}
	})
}

// TestAppendOnlyUnversioned: the client's keys on a bucket without
// versioning are reported, since an overwrite there replaces the file.
func TestAppendOnlyUnversioned(t *testing.T) {
	srv, _, _ := locked(t)
	a, err := srv.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.MakeBucket(ctx, "bk-plain", minio.MakeBucketOptions{Region: s3test.Region}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetBucketPolicy(ctx, "bk-plain", s3test.ClientPolicy("bk-plain", `"`+srv.ClientAccess+`"`)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.ClientAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.ClientSecret)
	r := dial(t, Location{Bucket: "bk-plain", Endpoint: srv.Endpoint, PathStyle: true}, remote.DialOptions{AppendOnly: true})
	allowed, err := r.ProbeAppendOnly(ctx)
	if err != nil || !slices.Equal(allowed, []string{"overwrite (versioning is off)"}) {
		t.Fatalf("probe: allowed %v, %v", allowed, err)
	}
}
