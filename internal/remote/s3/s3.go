// Package s3 is the remote backend for a bucket (and a prefix in it) on an
// S3-compatible object store: AWS S3, MinIO, Ceph RGW, Garage, SeaweedFS,
// Backblaze B2, Wasabi, versitygw. It speaks S3 with minio-go.
//
// An upload is held in memory until it fills a part. A file smaller than
// that is sent whole by one PUT at Commit; a larger one becomes a
// multipart upload straight to the file's final key. Either way the object
// appears whole when the PUT or the upload completes and not before, and
// both carry If-None-Match: * so that they never replace an object. A
// multipart upload in progress is listed as a temp file named after its
// upload ID, and removing that name aborts it; an upload still in memory
// is listed so by this process alone (nothing of it is on the store), and
// removing its name cancels it. S3 has no folders: a folder is a
// zero-byte marker object "name/", made by Create for every folder above a
// file, so that folders can be listed, found missing and removed empty as
// on the other kinds of host.
//
// On an append-only host (a bucket with versioning on and a policy that
// denies this account every removal and change of history) a file is what
// was first stored under its name: an upload records the version it
// stored, which a reader may ask for by ID, and a reader that names no
// version reads the first version since the name was last free, so an
// overwrite by someone else changes nothing bk reads.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bk-backup/bk/internal/remote"
)

// credentialsFor takes keys from the AWS environment variables, else from
// ~/.aws/credentials ($AWS_SHARED_CREDENTIALS_FILE); a profile named on the
// line is taken from the file alone, as the AWS tools do.
func credentialsFor(profile string) *credentials.Credentials {
	file := &credentials.FileAWSCredentials{Profile: profile}
	if profile != "" {
		return credentials.New(file)
	}
	return credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, file})
}

// PartSize is the first part size of an upload. Parts double every 1000
// up to MaxPartSize, so that S3's limit of 10,000 parts allows an object
// of about 490 GB.
const (
	PartSize    = 8 << 20
	MaxPartSize = 64 << 20
)

// Parts bounds the parts an upload holds in memory, the one being filled
// among them; the others are on their way at once, each on a connection of
// its own, as rclone sends four. An upload holds at most Parts × the part
// size: 32 MiB for the first 1000 parts (7.8 GiB).
const Parts = 4

func partSize(done int) int {
	return min(PartSize<<(done/1000), MaxPartSize)
}

// S3 stores files under a prefix of a bucket.
type S3 struct {
	loc    Location
	core   *minio.Core
	root   string // key prefix: loc.Prefix + "/", or ""
	pauses []time.Duration
	// timeout bounds how long the store may leave a connection attempt,
	// a request or a transfer without progress
	timeout time.Duration

	// appendOnly: this account may create and nothing else destructive;
	// see the package doc
	appendOnly bool
	// firstVersions: a file is its first version since its name was last
	// free (appendOnly, or an append-only host's admin); see the package
	// doc
	firstVersions bool

	// transport is the client's, for the requests made without it
	// (listQuick), which userAgent names as the client does
	transport http.RoundTripper
	userAgent string

	// bucketSeen: an answer of the store has shown that the bucket is
	// there (Dial)
	bucketSeen atomic.Bool
	// conditionalPuts: the store has refused a PUT with If-None-Match: *
	// over an object, so it keeps that condition and a whole-file PUT
	// needs no check that the name is free before it
	conditionalPuts atomic.Bool

	mu      sync.Mutex
	folders map[string]bool // folder markers known to exist
	// held are this process's uploads that the store holds nothing of
	// yet, by their local ID: listed as temp files by this process
	held map[string]*upload
}

// Dial makes the client and takes the keys; it asks the store nothing (a
// HeadBucket here was a request of every tool run). A missing bucket,
// more likely a typo than a place to start a backup, fails the run's
// first request instead, naming it: the store answers NoSuchBucket,
// except to a HEAD, whose 404 has no body; a Stat that meets one before
// any answer has shown the bucket asks about the bucket (bucketAbsent).
func Dial(ctx context.Context, loc Location, opts remote.DialOptions) (*S3, error) {
	s := &S3{loc: loc, pauses: opts.Retry.Pauses(), timeout: opts.Timeout, folders: map[string]bool{}, held: map[string]*upload{},
		appendOnly: opts.AppendOnly, firstVersions: opts.AppendOnly || opts.AppendOnlyAdmin}
	if s.timeout == 0 {
		s.timeout = remote.DefaultTimeout
	}
	if loc.Prefix != "" {
		s.root = loc.Prefix + "/"
	}
	endpoint, secure := "s3.amazonaws.com", true
	if loc.Endpoint != "" {
		u, err := url.Parse(loc.Endpoint)
		if err != nil {
			return nil, s.err(err)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	region := loc.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	lookup := minio.BucketLookupAuto
	if loc.PathStyle {
		lookup = minio.BucketLookupPath
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, s.err(err)
	}
	transport.DialContext = (&net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}).DialContext
	transport.ResponseHeaderTimeout = s.timeout
	// As many idle connections kept as a join has GETs on their way to a
	// host at once (its windows of checksums), so that no connection is
	// closed for want of room and dialled again for the next window.
	transport.MaxIdleConnsPerHost = 64
	// The keys are taken now, as the environment and the credentials
	// file are at dial time, not at the first request.
	creds := credentialsFor(loc.Profile)
	if _, err := creds.Get(); err != nil {
		return nil, s.err(err)
	}
	s.transport = answers{transport, &s.bucketSeen}
	client, err := minio.New(endpoint, &minio.Options{
		Transport:    s.transport,
		Creds:        creds,
		Secure:       secure,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   len(s.pauses) + 1,
	})
	if err != nil {
		return nil, s.err(err)
	}
	// The tool names itself, so that a store's access log tells which
	// tool asked what.
	client.SetAppInfo(filepath.Base(os.Args[0]), buildVersion())
	s.userAgent = fmt.Sprintf("bk (%s; %s) %s/%s", runtime.GOOS, runtime.GOARCH, filepath.Base(os.Args[0]), buildVersion())
	s.core = &minio.Core{Client: client}
	return s, nil
}

// answers notes in seen that the store answered a request as only a
// bucket that is there does: a success, or a refusal of a condition or
// range on an object.
type answers struct {
	http.RoundTripper
	seen *atomic.Bool
}

func (a answers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.RoundTripper.RoundTrip(r)
	if err == nil && (resp.StatusCode < 300 || resp.StatusCode == http.StatusNotModified ||
		resp.StatusCode == http.StatusPreconditionFailed || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
		a.seen.Store(true)
	}
	return resp, err
}

// errNoBucket is the store's NoSuchBucket; the host's name names the
// bucket. It is not fs.ErrNotExist: a missing bucket is no missing file
// or folder, but a host that cannot serve.
var errNoBucket = errors.New("the bucket does not exist (bk never creates one)")

// bucketAbsent is err, a HEAD's 404 (fs.ErrNotExist), unless no answer
// has shown the bucket yet and it is missing: then that error.
func (s *S3) bucketAbsent(ctx context.Context, err error) error {
	if s.bucketSeen.Load() {
		return err
	}
	if ok, berr := s.core.Client.BucketExists(ctx, s.loc.Bucket); berr == nil && !ok {
		return errNoBucket
	}
	return err
}

// buildVersion is the module's version this tool was built from, or
// "devel".
func buildVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

func (s *S3) String() string { return s.loc.String() }

func (s *S3) err(err error) error { return remote.HostError(s.String(), err) }

func (s *S3) key(name string) string { return s.root + name }

// folderKey is the marker key of folder dir, or the key prefix of the top.
func (s *S3) folderKey(dir string) string {
	if dir == "" || dir == "." {
		return s.root
	}
	return s.root + dir + "/"
}

// classify wraps S3's answers that callers test for in the fs errors.
func classify(err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchBucket":
		return errNoBucket
	case resp.Code == "NoSuchKey" || resp.Code == "NoSuchUpload" || resp.Code == "NoSuchVersion" ||
		(resp.Code == "" && resp.StatusCode == http.StatusNotFound):
		return fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	case resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("%w (%v)", fs.ErrExist, err)
	}
	return err
}

// Bodies are signed by their SHA-256 in the request's header, as over
// HTTPS, never by minio-go's chunked signing that it picks over plain
// HTTP: that hashes a body again in 64 KiB chunks, and a store may leave
// an empty chunked body unread, as versitygw does, so that the next
// request on the connection fails 400 Bad Request.
var (
	signedPayload = minio.PutObjectOptions{DisableContentSha256: true}
	emptySHA256   = hex.EncodeToString(sha256.New().Sum(nil))
)

// makeFolders puts a marker for every folder above name that this host
// has not seen yet. The PUT is conditional, so a marker that is there
// stays as it is (no new version of it on a versioned bucket), and a
// refusal tells that the store keeps the condition.
func (s *S3) makeFolders(ctx context.Context, name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		s.mu.Lock()
		known := s.folders[dir]
		s.mu.Unlock()
		if known {
			return nil // and so are the folders above it
		}
		if _, err := s.putNew(ctx, s.folderKey(dir), nil, nil); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("folder %s: %w", dir, err)
		}
		s.mu.Lock()
		s.folders[dir] = true
		s.mu.Unlock()
	}
	return nil
}

// putNew stores data under key unless an object is there (If-None-Match:
// *), signed by its SHA-256; progress, when not nil, is called as the
// store takes the body. A refusal wraps fs.ErrExist and tells that the
// store keeps the condition.
func (s *S3) putNew(ctx context.Context, key string, data []byte, progress func()) (minio.UploadInfo, error) {
	sum := emptySHA256
	if len(data) > 0 {
		h := sha256.Sum256(data)
		sum = hex.EncodeToString(h[:])
	}
	body := io.ReadSeeker(bytes.NewReader(data))
	if progress != nil {
		body = &progressReader{Reader: bytes.NewReader(data), progress: progress}
	}
	opts := signedPayload
	opts.SetMatchETagExcept("*")
	info, err := s.core.PutObject(ctx, s.loc.Bucket, key, body, int64(len(data)), "", sum, opts)
	err = classify(err)
	if errors.Is(err, fs.ErrExist) {
		s.conditionalPuts.Store(true)
	}
	return info, err
}

// Create implements remote.Remote. Nothing is sent until a part is full
// (or Commit): until then this process lists the upload as a temp file.
func (s *S3) Create(ctx context.Context, name string) (remote.Upload, error) {
	if err := remote.CheckNewName(name); err != nil {
		return nil, s.err(err)
	}
	if err := s.makeFolders(ctx, name); err != nil {
		return nil, s.err(err)
	}
	u := &upload{s: s, name: name, localID: "local-" + hex.EncodeToString(randomID()), started: time.Now()}
	u.ctx, u.stop = context.WithCancel(context.Background())
	s.mu.Lock()
	s.held[u.localID] = u
	s.mu.Unlock()
	return u, nil
}

// upload fills a part at a time and sends it when full, while the parts
// before it are still on their way. The first full part starts the
// multipart upload; an upload that never fills one is sent whole by
// Commit.
type upload struct {
	s       *S3
	name    string
	id      string // of the multipart upload, once started
	buf     []byte
	sending []*part // on their way, in order after parts
	spare   []byte  // the buffer of a part stored, for the next one
	parts   []minio.CompletePart
	sizes   []int64
	written atomic.Int64
	err     error  // sticky: after a failure the upload is given up
	done    bool   // committed or aborted
	version string // that Commit stored, on a bucket with versioning on
	// stop cancels the parts on their way, when the upload is aborted
	stop context.CancelFunc
	ctx  context.Context

	// While the store holds nothing of it, the upload is in S3.held
	// under localID, listed with the time it started; removing its temp
	// name cancels it. committing (under S3.mu) is set while Commit
	// sends it whole: then it can no longer be cancelled.
	localID    string
	started    time.Time
	cancelled  bool
	committing bool
}

// errCancelled is an upload whose temp name was removed (a clean-up of
// this process) while it was held in memory: as with an aborted
// multipart upload, there is nothing left to complete.
var errCancelled = fmt.Errorf("its temp file was removed: %w", fs.ErrNotExist)

// part is one part on its way, sent on a goroutine of its own.
type part struct {
	num  int
	data []byte
	done chan struct{} // closed when the store has answered, or gave up
	etag string
	err  error
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, u.s.err(os.ErrClosed)
	}
	if u.err != nil {
		return 0, u.err
	}
	n := 0
	for len(p) > 0 {
		size := partSize(len(u.parts) + len(u.sending))
		if u.buf == nil {
			u.buf, u.spare = u.spare, nil
			if cap(u.buf) != size {
				u.buf = make([]byte, 0, size)
			}
		}
		take := min(len(p), size-len(u.buf))
		u.buf = append(u.buf, p[:take]...)
		p, n = p[take:], n+take
		u.written.Add(int64(take))
		if len(u.buf) == size {
			if err := u.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// send puts the buffer on its way as the next part, then waits until
// there is room to fill another: fewer than Parts on their way.
func (u *upload) send() error {
	if u.id == "" {
		if err := u.start(); err != nil {
			u.err = u.s.err(err)
			return u.err
		}
	}
	pt := &part{num: len(u.parts) + len(u.sending) + 1, data: u.buf, done: make(chan struct{})}
	u.buf = nil
	u.sending = append(u.sending, pt)
	go func() {
		defer close(pt.done)
		pt.etag, pt.err = u.put(pt)
	}()
	return u.settle(Parts - 1)
}

// start starts the multipart upload, and then takes the upload out of
// S3.held: the store lists it from now on (for a moment both do, never
// neither).
func (u *upload) start() error {
	u.s.mu.Lock()
	cancelled := u.cancelled
	u.s.mu.Unlock()
	if cancelled {
		return fmt.Errorf("upload %s: %w", u.name, errCancelled)
	}
	id, err := u.s.core.NewMultipartUpload(u.ctx, u.s.loc.Bucket, u.s.key(u.name), minio.PutObjectOptions{})
	if err != nil {
		return fmt.Errorf("create %s: %w", u.name, classify(err))
	}
	u.s.mu.Lock()
	cancelled = u.cancelled
	delete(u.s.held, u.localID)
	u.s.mu.Unlock()
	u.id = id
	if cancelled {
		_ = u.s.core.AbortMultipartUpload(context.Background(), u.s.loc.Bucket, u.s.key(u.name), id)
		return fmt.Errorf("upload %s: %w", u.name, errCancelled)
	}
	return nil
}

// put uploads a part. The request is signed with the part's SHA-256, so
// the store refuses a part that arrived changed.
func (u *upload) put(pt *part) (etag string, err error) {
	sum := sha256.Sum256(pt.data)
	// A store that takes no bytes for the timeout fails the part; the
	// answer after the last byte is bounded by the transport.
	ctx, cancel := context.WithCancel(u.ctx)
	defer cancel()
	watchdog := time.AfterFunc(u.s.timeout, cancel)
	defer watchdog.Stop()
	body := &progressReader{Reader: bytes.NewReader(pt.data), progress: func() { watchdog.Reset(u.s.timeout) }}
	stored, err := u.s.core.PutObjectPart(ctx, u.s.loc.Bucket, u.s.key(u.name), u.id, pt.num,
		body, int64(len(pt.data)), minio.PutObjectPartOptions{Sha256Hex: hex.EncodeToString(sum[:]), DisableContentSha256: true})
	return stored.ETag, err
}

// settle waits until at most keep parts are on their way. A part that
// failed (after minio's retries) fails the upload, once the others have
// ended too: no part is left on its way to an upload given up.
func (u *upload) settle(keep int) error {
	for len(u.sending) > keep {
		pt := u.sending[0]
		<-pt.done
		if pt.err != nil {
			u.stop()
			for _, other := range u.sending {
				<-other.done
			}
			u.sending = nil
			u.err = u.s.err(fmt.Errorf("upload %s part %d: %w", u.name, pt.num, classify(pt.err)))
			return u.err
		}
		u.sending = u.sending[1:]
		u.parts = append(u.parts, minio.CompletePart{PartNumber: pt.num, ETag: pt.etag})
		u.sizes = append(u.sizes, int64(len(pt.data)))
		u.spare = pt.data[:0]
	}
	return nil
}

// Commit sends the last part, checks that the store holds every part at
// its size, and completes the upload unless the name is taken.
func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return u.s.err(os.ErrClosed)
	}
	if u.err != nil {
		return u.err
	}
	if u.id == "" {
		return u.putWhole(ctx)
	}
	if len(u.buf) > 0 {
		if err := u.send(); err != nil {
			return err
		}
	}
	if err := u.settle(0); err != nil {
		return err
	}
	u.stop() // no part is on its way any more
	u.spare = nil
	if err := u.checkParts(ctx); err != nil {
		u.err = u.s.err(err)
		return u.err
	}
	if err := u.absent(ctx); err != nil {
		u.err = u.s.err(err)
		return u.err
	}
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	info, err := u.s.core.CompleteMultipartUpload(ctx, u.s.loc.Bucket, u.s.key(u.name), u.id, u.parts, opts)
	if err != nil {
		u.err = u.s.err(fmt.Errorf("complete %s: %w", u.name, classify(err)))
		return u.err
	}
	u.done, u.version = true, info.VersionID
	return nil
}

// putWhole sends an upload that never filled a part as one PUT, which
// the store takes whole or not at all: its SHA-256 and length are in the
// signed request. The name is checked first, as before completing a
// multipart upload, unless the store has shown that it keeps
// If-None-Match.
func (u *upload) putWhole(ctx context.Context) error {
	s := u.s
	s.mu.Lock()
	cancelled := u.cancelled
	u.committing = !cancelled
	s.mu.Unlock()
	if cancelled {
		u.err = s.err(fmt.Errorf("complete %s: %w", u.name, errCancelled))
		return u.err
	}
	err := u.absent(ctx)
	var info minio.UploadInfo
	if err == nil {
		// A store that takes no bytes for the timeout fails the PUT; the
		// answer after the last byte is bounded by the transport.
		pctx, cancel := context.WithCancel(ctx)
		watchdog := time.AfterFunc(s.timeout, cancel)
		info, err = s.putNew(pctx, s.key(u.name), u.buf, func() { watchdog.Reset(s.timeout) })
		watchdog.Stop()
		cancel()
		if err != nil {
			err = fmt.Errorf("complete %s: %w", u.name, err)
		}
	}
	s.mu.Lock()
	u.committing = false
	if err == nil {
		delete(s.held, u.localID)
	}
	s.mu.Unlock()
	if err != nil {
		u.err = s.err(err)
		return u.err
	}
	u.stop()
	u.buf, u.spare = nil, nil
	u.done, u.version = true, info.VersionID
	return nil
}

// absent checks that nothing is stored under the upload's name, for
// stores that may ignore If-None-Match; on those another client may still
// store the same name between the check and the PUT or completion.
func (u *upload) absent(ctx context.Context) error {
	if u.id == "" && u.s.conditionalPuts.Load() {
		return nil
	}
	_, err := u.s.core.StatObject(ctx, u.s.loc.Bucket, u.s.key(u.name), minio.StatObjectOptions{})
	if err == nil {
		return fmt.Errorf("%s: %w", u.name, fs.ErrExist)
	}
	if err = classify(err); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Version implements remote.Versioned.
func (u *upload) Version() string { return u.version }

// checkParts compares the store's list of parts with what was sent.
func (u *upload) checkParts(ctx context.Context) error {
	var stored []minio.ObjectPart
	for marker := 0; ; {
		res, err := u.s.core.ListObjectParts(ctx, u.s.loc.Bucket, u.s.key(u.name), u.id, marker, 1000)
		if err != nil {
			return fmt.Errorf("list parts of %s: %w", u.name, classify(err))
		}
		stored = append(stored, res.ObjectParts...)
		if !res.IsTruncated {
			break
		}
		marker = res.NextPartNumberMarker
	}
	if len(stored) != len(u.parts) {
		return fmt.Errorf("%s: the store holds %d parts, sent %d", u.name, len(stored), len(u.parts))
	}
	var total int64
	for i, p := range stored {
		if p.PartNumber != i+1 || p.Size != u.sizes[i] {
			return fmt.Errorf("%s: part %d: stored %d bytes, sent %d", u.name, i+1, p.Size, u.sizes[i])
		}
		total += p.Size
	}
	if written := u.written.Load(); total != written {
		return fmt.Errorf("%s: stored %d bytes, wrote %d", u.name, total, written)
	}
	return nil
}

// progressReader calls progress on every read: the HTTP client reads the
// part as the store takes it. Seeking passes through, for resending.
type progressReader struct {
	*bytes.Reader
	progress func()
}

func (r *progressReader) Read(p []byte) (int, error) {
	r.progress()
	return r.Reader.Read(p)
}

// Abort aborts the multipart upload, once and quickly: a dead store should
// not hold up the others. What is left, CleanTemp removes later.
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	// Parts still on their way are stopped first: one that arrived after
	// the abort could be kept by some stores.
	u.stop()
	for _, pt := range u.sending {
		<-pt.done
	}
	u.buf, u.spare, u.sending = nil, nil, nil
	if u.id == "" {
		u.s.mu.Lock()
		delete(u.s.held, u.localID)
		u.s.mu.Unlock()
		return nil
	}
	err := classify(u.s.core.AbortMultipartUpload(context.Background(), u.s.loc.Bucket, u.s.key(u.name), u.id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return u.s.err(err)
	}
	return nil
}

// Open implements remote.Remote with a ranged GET; on an append-only
// host, of the first version stored under the name.
func (s *S3) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	if err := remote.CheckName(name); err != nil {
		return nil, s.err(err)
	}
	version, _, err := s.firstVersion(ctx, name)
	if err != nil {
		return nil, s.err(fmt.Errorf("read %s: %w", name, err))
	}
	return s.open(ctx, name, version, offset)
}

// OpenVersion implements remote.VersionReader.
func (s *S3) OpenVersion(ctx context.Context, name, version string, offset int64) (io.ReadCloser, error) {
	if err := remote.CheckName(name); err != nil {
		return nil, s.err(err)
	}
	return s.open(ctx, name, version, offset)
}

func (s *S3) open(ctx context.Context, name, version string, offset int64) (io.ReadCloser, error) {
	rd := &reader{s: s, name: name, version: version, off: offset}
	rd.total.Store(-1)
	if err := rd.get(ctx); err != nil {
		return nil, err
	}
	return rd, nil
}

// firstVersion is, on an append-only host (firstVersions), the version a reader of name
// gets: the oldest of the versions stored since the newest delete marker
// (which only an admin account can set), so the one bk's no-clobber
// upload stored; info describes it, as the listing did. It is "" elsewhere
// (the current object), and "" with an error wrapping fs.ErrNotExist when
// name is absent.
func (s *S3) firstVersion(ctx context.Context, name string) (version string, info remote.Info, err error) {
	if !s.firstVersions {
		return "", remote.Info{}, nil
	}
	key := s.key(name)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := false
	// Versions of a key come newest first.
	for obj := range s.core.Client.ListObjects(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if obj.Err != nil {
			return "", remote.Info{}, fmt.Errorf("versions: %w", classify(obj.Err))
		}
		if obj.Key != key {
			if found {
				break // on to keys after it
			}
			continue
		}
		if obj.IsDeleteMarker {
			break
		}
		version, found = obj.VersionID, true
		info = remote.Info{Name: name, Size: obj.Size, ModTime: obj.LastModified}
	}
	if !found {
		return "", remote.Info{}, fs.ErrNotExist
	}
	return version, info, nil
}

// firstRange is the first range a reader asks for: what a GET is worth
// (requestSize), so that a share of that size or less, as most of an
// incremental backup's are, is read whole by the GET that reads its
// header, where a first range of 32 KiB took a second GET for the
// checksums of its other records.
const firstRange = requestSize

// reader reads an object from an offset and, when the connection drops,
// asks again from where it was, for the same version of the object.
type reader struct {
	s       *S3
	name    string
	version string // "" for the current one
	off     int64
	etag    string
	body    io.ReadCloser // nil after Close, or once ReadAt dropped it
	end     int64         // of the range body holds, or -1 for the object's end
	size    int64         // of the last range asked for
	// total is the object's size as the first answer's Content-Range
	// gave it, or -1: reads at or past it are answered without a
	// request (a store that tells it short only ends a read early)
	total  atomic.Int64
	closed bool
	drop   sync.Once
	// head is the first range Open fetched, kept by the first ReadAt for
	// the reads it covers (a share's header), from headOff on; headEnd
	// says the object ends with it.
	head    []byte
	headOff int64
	headEnd bool
}

func (rd *reader) get(ctx context.Context) error {
	if rd.off == rd.total.Load() {
		rd.body, rd.end = io.NopCloser(strings.NewReader("")), -1
		return nil
	}
	opts := minio.GetObjectOptions{VersionID: rd.version}
	if rd.etag != "" {
		_ = opts.SetMatchETag(rd.etag)
	}
	// The ranges grow from firstRange to PartSize, so that reading a
	// share's header does not fetch megabytes of it; fourfold, so that
	// reading a share through costs few requests more than its size in
	// PartSize ranges.
	rd.size = max(min(4*rd.size, PartSize), firstRange)
	_ = opts.SetRange(rd.off, rd.off+rd.size-1)
	body, info, header, err := rd.s.core.GetObject(ctx, rd.s.loc.Bucket, rd.s.key(rd.name), opts)
	if err != nil && minio.ToErrorResponse(err).Code == "InvalidRange" {
		// Past the last byte: empty at the end, as a file is.
		st, serr := rd.s.StatVersion(ctx, rd.name, rd.version)
		if serr != nil {
			return serr
		}
		if st.Size == rd.off {
			rd.body, rd.end = io.NopCloser(strings.NewReader("")), -1
			return nil
		}
	}
	if err != nil {
		return rd.s.err(fmt.Errorf("read %s: %w", rd.name, classify(err)))
	}
	rd.body, rd.etag, rd.end = body, info.ETag, rd.off+rd.size
	rd.learnTotal(header)
	return nil
}

// learnTotal takes the object's size from an answer's Content-Range:
// "bytes FIRST-LAST/SIZE".
func (rd *reader) learnTotal(header http.Header) {
	if rd.total.Load() >= 0 {
		return
	}
	_, size, ok := strings.Cut(header.Get("Content-Range"), "/")
	if n, err := strconv.ParseInt(size, 10, 64); ok && err == nil && n >= 0 {
		rd.total.Store(n)
	}
}

// drain reads what is left of body to its end, when that is at most
// firstRange, so that its connection serves the next request; a body
// closed early closes its connection.
func (rd *reader) drain(body io.ReadCloser) {
	left := rd.end - rd.off
	if t := rd.total.Load(); t >= 0 && rd.end > t {
		left = t - rd.off
	}
	if rd.end >= 0 && left >= 0 && left <= firstRange {
		watchdog := time.AfterFunc(rd.s.timeout, func() { body.Close() })
		_, _ = io.Copy(io.Discard, io.LimitReader(body, left+1))
		watchdog.Stop()
	}
	body.Close()
}

func (rd *reader) Read(p []byte) (int, error) {
	if rd.closed {
		return 0, rd.s.err(os.ErrClosed)
	}
	if rd.body == nil {
		if err := rd.get(context.Background()); err != nil {
			return 0, err
		}
	}
	n, err := rd.readWithin(p)
	rd.off += int64(n)
	if rd.rangeEnded(err) {
		return rd.more(p, n)
	}
	if err == nil || err == io.EOF || n > 0 {
		return n, err
	}
	for _, pause := range rd.s.pauses {
		rd.body.Close()
		time.Sleep(pause)
		if gerr := rd.get(context.Background()); gerr != nil {
			if errors.Is(gerr, fs.ErrNotExist) || strings.Contains(gerr.Error(), "PreconditionFailed") {
				return 0, gerr
			}
			continue
		}
		n, err = rd.readWithin(p)
		rd.off += int64(n)
		if rd.rangeEnded(err) {
			return rd.more(p, n)
		}
		if err == nil || err == io.EOF || n > 0 {
			return n, err
		}
	}
	return 0, rd.s.err(fmt.Errorf("read %s: %w (gave up after %d retries)", rd.name, err, len(rd.s.pauses)))
}

// rangeEnded drops the body once its range has been read to the end:
// the object may go on, in the next range.
func (rd *reader) rangeEnded(err error) bool {
	if err != io.EOF || rd.off != rd.end {
		return false
	}
	rd.body.Close()
	rd.body = nil
	return true
}

// more returns the n bytes read at a range's end, or reads on into the
// next range when there were none.
func (rd *reader) more(p []byte, n int) (int, error) {
	if n == 0 {
		return rd.Read(p)
	}
	return n, nil
}

// readWithin reads from the body, closing it if the store sends nothing
// for the timeout, which fails the read.
func (rd *reader) readWithin(p []byte) (int, error) {
	body := rd.body
	watchdog := time.AfterFunc(rd.s.timeout, func() { body.Close() })
	defer watchdog.Stop()
	return body.Read(p)
}

// ReadAt implements io.ReaderAt with a ranged GET of p's bytes alone, of
// the version Open found; it is safe for concurrent use, though not
// alongside Read. The first call ends the GET that Open started: when
// that is the first range, untouched, it is read to its end and kept for
// the reads it covers, which also leaves the connection free for the
// next request (a body closed early closes its connection).
func (rd *reader) ReadAt(p []byte, off int64) (int, error) {
	rd.drop.Do(rd.keepHead)
	if rd.closed {
		return 0, rd.s.err(os.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if n, err, ok := rd.fromHead(p, off); ok {
		return n, err
	}
	want := p
	if total := rd.total.Load(); total >= 0 && off+int64(len(p)) > total {
		if off >= total {
			return 0, io.EOF
		}
		want = p[:total-off]
	}
	n, err := rd.getAt(want, off)
	for _, pause := range rd.s.pauses {
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "PreconditionFailed") {
			break
		}
		time.Sleep(pause)
		n, err = rd.getAt(want, off)
	}
	if err == nil && len(want) < len(p) {
		err = io.EOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return n, rd.s.err(fmt.Errorf("read %s: %w", rd.name, err))
	}
	return n, err
}

// requestSize is what a ranged GET is worth in bytes: a small one costs
// a request (signing, headers, a round trip, the server's open and
// stat) that reading this much more would not. It is a block at the
// default block size, so shares of smaller blocks have the checksums of
// several records read in one GET (shard.RequestSizer), and others each
// record's alone.
const requestSize = 128 << 10

// RequestSize implements shard.RequestSizer: every ReadAt is a GET.
func (rd *reader) RequestSize() int { return requestSize }

// keepHead reads the rest of Open's first range into head, or drops the
// body when Read went past it or reading it fails.
func (rd *reader) keepHead() {
	body := rd.body
	if body == nil {
		return
	}
	rd.body = nil
	if rd.end < 0 || rd.size != firstRange {
		rd.drain(body)
		return
	}
	defer body.Close()
	want := rd.end - rd.off
	watchdog := time.AfterFunc(rd.s.timeout, func() { body.Close() })
	defer watchdog.Stop()
	b, err := io.ReadAll(io.LimitReader(body, want))
	if err != nil {
		return
	}
	rd.head, rd.headOff, rd.headEnd = b, rd.off, int64(len(b)) < want
}

// fromHead answers a read that head covers; ok is false for one it does
// not.
func (rd *reader) fromHead(p []byte, off int64) (n int, err error, ok bool) {
	if off < rd.headOff || (rd.head == nil && !rd.headEnd) {
		return 0, nil, false
	}
	end := rd.headOff + int64(len(rd.head))
	switch {
	case off+int64(len(p)) <= end:
		return copy(p, rd.head[off-rd.headOff:]), nil, true
	case rd.headEnd && off >= end:
		return 0, io.EOF, true
	case rd.headEnd:
		return copy(p, rd.head[off-rd.headOff:]), io.EOF, true
	}
	return 0, nil, false
}

// getAt is one ranged GET for ReadAt; a store that leaves it without an
// answer or a byte for the timeout fails it.
func (rd *reader) getAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchdog := time.AfterFunc(rd.s.timeout, cancel)
	defer watchdog.Stop()
	opts := minio.GetObjectOptions{VersionID: rd.version}
	if rd.etag != "" {
		_ = opts.SetMatchETag(rd.etag)
	}
	_ = opts.SetRange(off, off+int64(len(p))-1)
	body, _, header, err := rd.s.core.GetObject(ctx, rd.s.loc.Bucket, rd.s.key(rd.name), opts)
	if err != nil && minio.ToErrorResponse(err).Code == "InvalidRange" {
		return 0, io.EOF // at or past the last byte
	}
	if err != nil {
		return 0, classify(err)
	}
	defer body.Close()
	rd.learnTotal(header)
	var n int
	for n < len(p) && err == nil {
		var m int
		m, err = body.Read(p[n:])
		n += m
		if m > 0 {
			watchdog.Reset(rd.s.timeout)
		}
	}
	if n < len(p) && (err == nil || errors.Is(err, io.EOF)) {
		return n, io.EOF
	}
	if n == len(p) {
		return n, nil
	}
	return n, err
}

func (rd *reader) Close() error {
	rd.closed = true
	if rd.body != nil {
		rd.drain(rd.body)
		rd.body = nil
	}
	return nil
}

// StatVersion implements remote.VersionReader.
func (s *S3) StatVersion(ctx context.Context, name, version string) (remote.Info, error) {
	if err := remote.CheckName(name); err != nil {
		return remote.Info{}, s.err(err)
	}
	st, err := s.core.StatObject(ctx, s.loc.Bucket, s.key(name), minio.StatObjectOptions{VersionID: version})
	if err = classify(err); errors.Is(err, fs.ErrNotExist) {
		err = s.bucketAbsent(ctx, err)
	}
	if err != nil {
		return remote.Info{}, s.err(fmt.Errorf("stat %s version %s: %w", name, version, err))
	}
	return remote.Info{Name: name, Size: st.Size, ModTime: st.LastModified}, nil
}

// Stat implements remote.Remote; a folder is its marker, which Create
// makes for every folder above a file. A name that is no file costs a
// HEAD of the marker, where a listing of the folder cost the store a walk
// of its parent (bk-push looks for its test files on every other host).
// On an append-only host a file is its first version, as Open reads it,
// described by the listing of its versions.
func (s *S3) Stat(ctx context.Context, name string) (remote.Info, error) {
	if err := remote.CheckName(name); err != nil {
		return remote.Info{}, s.err(err)
	}
	var info remote.Info
	var err error
	if s.firstVersions {
		_, info, err = s.firstVersion(ctx, name)
	} else {
		var st minio.ObjectInfo
		st, err = s.core.StatObject(ctx, s.loc.Bucket, s.key(name), minio.StatObjectOptions{})
		err = classify(err)
		info = remote.Info{Name: name, Size: st.Size, ModTime: st.LastModified}
	}
	if err == nil {
		return info, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return remote.Info{}, s.err(fmt.Errorf("stat %s: %w", name, err))
	}
	_, err = s.core.StatObject(ctx, s.loc.Bucket, s.folderKey(name), minio.StatObjectOptions{})
	if err = classify(err); errors.Is(err, fs.ErrNotExist) {
		err = s.bucketAbsent(ctx, err)
	}
	if err != nil {
		return remote.Info{}, s.err(fmt.Errorf("stat %s: %w", name, err))
	}
	return remote.Info{Name: name, Dir: true}, nil
}

// objects lists what is directly in folder dir, the marker included (as
// an entry named ""), at most max entries when max > 0. With
// firstVersions each file is described by its first version, as
// firstVersion picks it, so that the times bk-prune orders backups by are
// the times bk stored them.
func (s *S3) objects(ctx context.Context, dir string, max int) ([]remote.Info, error) {
	return s.objectsNamed(ctx, dir, "", max)
}

// objectsNamed is objects of the names in dir that start with start.
func (s *S3) objectsNamed(ctx context.Context, dir, start string, max int) ([]remote.Info, error) {
	prefix := s.folderKey(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var infos []remote.Info
	var key string   // of the versions being read
	var keyDone bool // its first version is found, or it is absent
	// No owners: bk has no use for them, and they cost the store a look-up.
	noOwners := false
	page := 1000 // S3's most
	if max > 0 {
		page = max
	}
	if !s.firstVersions {
		if objects, ok := s.listQuick(ctx, prefix+start, max, page); ok {
			for _, obj := range objects {
				base, isDir := strings.CutSuffix(strings.TrimPrefix(obj.Name, prefix), "/")
				infos = append(infos, remote.Info{Name: base, Size: obj.Size, ModTime: obj.ModTime, Dir: isDir})
			}
			return infos, nil
		}
	}
	opts := minio.ListObjectsOptions{Prefix: prefix + start, WithVersions: s.firstVersions, FetchOwner: &noOwners, MaxKeys: page}
	for obj := range s.core.Client.ListObjects(ctx, s.loc.Bucket, opts) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, classify(obj.Err))
		}
		base, isDir := strings.CutSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
		if s.firstVersions && !isDir {
			// Versions of a key come newest first.
			older := obj.Key == key
			key = obj.Key
			switch {
			case older && (keyDone || obj.IsDeleteMarker):
				keyDone = true
				continue
			case older:
				infos[len(infos)-1].Size, infos[len(infos)-1].ModTime = obj.Size, obj.LastModified
				continue
			case obj.IsDeleteMarker:
				keyDone = true // absent
				continue
			}
			keyDone = false
		}
		infos = append(infos, remote.Info{Name: base, Size: obj.Size, ModTime: obj.LastModified, Dir: isDir})
		if max > 0 && len(infos) == max {
			break
		}
	}
	return infos, nil
}

// uploads lists the uploads in progress directly in folder dir, each as a
// temp file: ".tmp-<upload ID in hex>-<base name>", sized by the parts
// stored so far; and this process's uploads held in memory, by their local
// ID, sized by what was written to them. Those are listed first: one that
// starts its multipart upload in between is listed twice, never missed.
func (s *S3) uploads(ctx context.Context, dir string) ([]remote.Info, error) {
	prefix := s.folderKey(dir)
	var infos []remote.Info
	in := path.Clean("./" + dir)
	s.mu.Lock()
	for _, u := range s.held {
		if path.Dir(u.name) == in {
			infos = append(infos, remote.Info{Name: tempName(u.localID, path.Base(u.name)), Size: u.written.Load(), ModTime: u.started})
		}
	}
	s.mu.Unlock()
	for up := range s.core.ListIncompleteUploads(ctx, s.loc.Bucket, prefix, false) {
		if up.Err != nil {
			return nil, fmt.Errorf("list uploads in %s: %w", dir, classify(up.Err))
		}
		if up.UploadID == "" {
			continue // a folder with uploads in it
		}
		size, err := s.uploaded(ctx, up.Key, up.UploadID)
		if errors.Is(err, fs.ErrNotExist) {
			continue // completed or aborted while listing
		}
		if err != nil {
			return nil, err
		}
		base := strings.TrimPrefix(up.Key, prefix)
		infos = append(infos, remote.Info{Name: tempName(up.UploadID, base), Size: size, ModTime: up.Initiated})
	}
	return infos, nil
}

// uploaded adds up the parts an upload has stored.
func (s *S3) uploaded(ctx context.Context, key, id string) (int64, error) {
	var total int64
	for marker := 0; ; {
		res, err := s.core.ListObjectParts(ctx, s.loc.Bucket, key, id, marker, 1000)
		if err != nil {
			return 0, fmt.Errorf("list parts of %s: %w", key, classify(err))
		}
		for _, p := range res.ObjectParts {
			total += p.Size
		}
		if !res.IsTruncated {
			return total, nil
		}
		marker = res.NextPartNumberMarker
	}
}

func tempName(uploadID, base string) string {
	return remote.TempPrefix + hex.EncodeToString([]byte(uploadID)) + "-" + base
}

// parseTemp returns the upload ID and final base name of a temp name.
func parseTemp(base string) (id, final string, ok bool) {
	rest, ok := strings.CutPrefix(base, remote.TempPrefix)
	if !ok {
		return "", "", false
	}
	enc, final, ok := strings.Cut(rest, "-")
	raw, err := hex.DecodeString(enc)
	if !ok || err != nil || len(raw) == 0 || final == "" {
		return "", "", false
	}
	return string(raw), final, true
}

// List implements remote.Remote.
func (s *S3) List(ctx context.Context, dir string) ([]remote.Info, error) {
	infos, err := s.list(ctx, dir, false)
	return remote.Filter(infos, false), err
}

// leftoverStart is how every temp and test file's name starts (a dot,
// which no other name bk stores starts with), taken from the prefixes
// themselves so that ListTemp follows them.
var leftoverStart = commonStart(remote.TempPrefix, remote.ProbePrefix)

// commonStart is the longest start a and b share.
func commonStart(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return a[:i]
}

// ListTemp implements remote.Remote: the uploads in progress, and any
// object with a temp or test file's name. Those names start with
// leftoverStart: the objects listed are those alone.
// All of them cost the store a look at each (bk-push's clean-up before it
// sends: 20 ms of versitygw's CPU late in the soak's year, at 755
// objects, against 1 ms). A folder with none is looked for as List does.
func (s *S3) ListTemp(ctx context.Context, dir string) ([]remote.Info, error) {
	if err := remote.CheckDir(dir); err != nil {
		return nil, s.err(err)
	}
	running, err := s.uploads(ctx, dir)
	if err != nil {
		return nil, s.err(err)
	}
	objects, err := s.objectsNamed(ctx, dir, leftoverStart, 0)
	if err != nil {
		return nil, s.err(err)
	}
	if top := dir == "" || dir == "."; !top && len(objects) == 0 && len(running) == 0 {
		there, err := s.objects(ctx, dir, 1)
		if err != nil {
			return nil, s.err(err)
		}
		if len(there) == 0 {
			return nil, s.err(fmt.Errorf("list %s: %w", dir, fs.ErrNotExist))
		}
	}
	return remote.Filter(append(objects, running...), true), nil
}

// ListBoth implements remote.BothLister: one listing of the objects and
// one of the uploads in progress, where List and ListTemp make two each.
func (s *S3) ListBoth(ctx context.Context, dir string) (files, leftovers []remote.Info, err error) {
	infos, err := s.list(ctx, dir, true)
	if err != nil {
		return nil, nil, err
	}
	return remote.Filter(infos, false), remote.Filter(infos, true), nil
}

// list lists what is in dir: the objects, and with uploads the uploads
// in progress (first, so that one completed in between shows twice,
// never not at all). Without them, a folder of nothing but uploads is
// listed as empty; their listing is asked for only to tell that folder
// from a missing one.
func (s *S3) list(ctx context.Context, dir string, uploads bool) ([]remote.Info, error) {
	if err := remote.CheckDir(dir); err != nil {
		return nil, s.err(err)
	}
	var running []remote.Info
	var err error
	if uploads {
		if running, err = s.uploads(ctx, dir); err != nil {
			return nil, s.err(err)
		}
	}
	objects, err := s.objects(ctx, dir, 0)
	if err != nil {
		return nil, s.err(err)
	}
	top := dir == "" || dir == "."
	if !top && len(objects) == 0 && !uploads {
		if running, err = s.uploads(ctx, dir); err != nil {
			return nil, s.err(err)
		}
	}
	if !top && len(objects) == 0 && len(running) == 0 {
		return nil, s.err(fmt.Errorf("list %s: %w", dir, fs.ErrNotExist))
	}
	infos := make([]remote.Info, 0, len(objects)+len(running))
	for _, fi := range objects {
		if fi.Name != "" { // not the folder's own marker
			infos = append(infos, fi)
		}
	}
	if uploads {
		infos = append(infos, running...)
	}
	return infos, nil
}

// Remove implements remote.Remote: a temp name of an upload aborts it; an
// object is deleted; a folder is deleted when nothing is in it. An
// append-only host removes no object: aborting an upload is all it does.
func (s *S3) Remove(ctx context.Context, name string) error {
	if err := remote.CheckName(name); err != nil {
		return s.err(err)
	}
	if id, final, ok := parseTemp(path.Base(name)); ok {
		if err, held := s.cancel(id, path.Join(path.Dir(name), final)); held {
			return s.err(err)
		}
		err := classify(s.core.AbortMultipartUpload(ctx, s.loc.Bucket, s.key(path.Join(path.Dir(name), final)), id))
		if !errors.Is(err, fs.ErrNotExist) {
			return s.err(err)
		}
	}
	if s.appendOnly {
		return s.err(fmt.Errorf("%s: not removed: %w", name, remote.ErrAppendOnly))
	}
	_, err := s.core.StatObject(ctx, s.loc.Bucket, s.key(name), minio.StatObjectOptions{})
	if err == nil {
		return s.err(classify(s.core.RemoveObject(ctx, s.loc.Bucket, s.key(name), minio.RemoveObjectOptions{})))
	}
	if err = classify(err); !errors.Is(err, fs.ErrNotExist) {
		return s.err(fmt.Errorf("remove %s: %w", name, err))
	}
	entries, err := s.objects(ctx, name, 2)
	if err != nil {
		return s.err(err)
	}
	switch {
	case len(entries) == 0:
		return s.err(fmt.Errorf("remove %s: %w", name, fs.ErrNotExist))
	case len(entries) > 1 || entries[0].Name != "":
		return s.err(fmt.Errorf("remove %s: folder not empty", name))
	}
	if err := s.core.RemoveObject(ctx, s.loc.Bucket, s.folderKey(name), minio.RemoveObjectOptions{}); err != nil {
		return s.err(fmt.Errorf("remove %s: %w", name, classify(err)))
	}
	s.mu.Lock()
	delete(s.folders, name)
	s.mu.Unlock()
	return nil
}

// cancel cancels this process's upload held in memory with local ID id
// to name; held is false when there is none. One that Commit is sending
// whole is past cancelling: it is gone as a temp file, as a temp file
// renamed into place is.
func (s *S3) cancel(id, name string) (err error, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.held[id]
	if u == nil || u.name != name {
		return nil, false
	}
	if u.committing {
		return fmt.Errorf("remove %s: %w", tempName(id, path.Base(name)), fs.ErrNotExist), true
	}
	u.cancelled = true
	delete(s.held, id)
	return nil, true
}

// Free implements remote.Remote: S3 has no call that tells.
func (s *S3) Free(ctx context.Context) (int64, error) {
	return 0, s.err(remote.ErrUnknownSpace)
}

// Close implements remote.Remote; the client holds only idle HTTP
// connections, which time out.
func (s *S3) Close() error { return nil }

// ProbeAppendOnly implements remote.AppendOnlyProber: it reads the
// bucket's versioning state, stores a test file and tries to remove its
// version and then it, to change the versioning state, the lifecycle
// rules and the bucket policy (each set to what it is, so that a host
// that allows it is left as it was). An overwrite is no test: with
// versioning on it keeps what bk stored, and readers read that.
func (s *S3) ProbeAppendOnly(ctx context.Context) ([]string, error) {
	var allowed []string
	bucket := s.loc.Bucket
	versioning, err := s.core.Client.GetBucketVersioning(ctx, bucket)
	if err != nil {
		return nil, s.err(fmt.Errorf("read the versioning state: %w", classify(err)))
	}
	if !versioning.Enabled() {
		allowed = append(allowed, "overwrite (versioning is off)")
	}
	name := remote.ProbePrefix + hex.EncodeToString(randomID())
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	body := []byte("bk append-only test file\n")
	info, err := s.core.Client.PutObject(ctx, bucket, s.key(name), bytes.NewReader(body), int64(len(body)), opts)
	if err != nil {
		return nil, s.err(fmt.Errorf("create a test file: %w", classify(err)))
	}
	steps := []struct {
		what string
		op   func() error
	}{
		{"remove a version", func() error {
			if info.VersionID == "" {
				return errRefused // an unversioned bucket: the next step tells
			}
			return s.core.RemoveObject(ctx, bucket, s.key(name), minio.RemoveObjectOptions{VersionID: info.VersionID})
		}},
		{"remove", func() error {
			return s.core.RemoveObject(ctx, bucket, s.key(name), minio.RemoveObjectOptions{})
		}},
		{"versioning change", func() error {
			if !versioning.Enabled() {
				return errRefused // changing it is no test of a host that is not one
			}
			return s.core.Client.SetBucketVersioning(ctx, bucket, versioning)
		}},
		{"lifecycle change", func() error {
			rules, err := s.core.Client.GetBucketLifecycle(ctx, bucket)
			if err != nil && minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
				return err
			}
			// An empty configuration removes none that was not there.
			return s.core.Client.SetBucketLifecycle(ctx, bucket, rules)
		}},
		{"policy change", func() error {
			policy, err := s.core.Client.GetBucketPolicy(ctx, bucket)
			if err != nil || policy == "" {
				return errRefused // none to keep the account from anything, or unreadable: nothing to set back
			}
			return s.core.Client.SetBucketPolicy(ctx, bucket, policy)
		}},
	}
	for _, step := range steps {
		err := step.op()
		switch {
		case err == nil:
			allowed = append(allowed, step.what)
		case !refused(err):
			return nil, s.err(fmt.Errorf("test %s: %w", step.what, err))
		}
	}
	return allowed, nil
}

// errRefused stands for a step of ProbeAppendOnly that is not tried.
var errRefused = errors.New("not tried")

// refused reports whether err is the store saying no (denied, or not a
// thing it does), rather than failing to answer.
func refused(err error) bool {
	if err == errRefused {
		return true
	}
	resp := minio.ToErrorResponse(err)
	switch resp.StatusCode {
	case http.StatusForbidden, http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return true
	}
	return resp.Code == "AccessDenied" || resp.Code == "NotImplemented"
}

func randomID() []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return b
}
