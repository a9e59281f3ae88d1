// Package remote is bk's storage layer: one small interface that every
// kind of host implements (local folder, SFTP, S3, rclone), and the rules
// they share: names are slash paths under the host's folder, uploads go to
// a hidden temp name and appear under their own name only whole, and never
// replace a file (docs/FORMAT.md says where a kind leaves a race).
//
// Each kind of host lives in a subpackage that registers itself by URL
// scheme (Register, location.go): it parses its own destinations, names
// them as URLs for manifests, and dials. Package kinds imports them all;
// package remotetest holds the suite every kind passes.
package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/blake3"
)

// Info describes a file (or, with Dir, a folder) on a host.
type Info struct {
	Name    string // base name in List, the name asked for in Stat
	Size    int64
	ModTime time.Time
	Dir     bool
}

// Remote is one storage host. Names are slash paths relative to the host's
// folder; they must pass CheckName. Errors name the host.
type Remote interface {
	// String names the host in messages: "nas.local" or "/mnt/usb".
	String() string
	// Create starts an upload to name, creating parent folders.
	Create(ctx context.Context, name string) (Upload, error)
	// Open reads name from offset on.
	Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error)
	// Stat describes name; the error wraps ErrNotExist when it is absent.
	Stat(ctx context.Context, name string) (Info, error)
	// List describes what is in folder dir ("" for the top), sorted by
	// name, without temp files; the error wraps ErrNotExist when dir is
	// absent.
	List(ctx context.Context, dir string) ([]Info, error)
	// ListTemp describes the leftovers in dir that List hides (temp
	// files, test files), for CleanTemp.
	ListTemp(ctx context.Context, dir string) ([]Info, error)
	// Remove deletes the file name (or an empty folder); the error wraps
	// ErrNotExist when it is absent.
	Remove(ctx context.Context, name string) error
	// Free is the space left for this user, in bytes; the error wraps
	// ErrUnknownSpace when the host cannot say.
	Free(ctx context.Context) (int64, error)
	Close() error
}

// RangeOpener is a Remote whose Open reads on to the end of the file
// whatever the reader takes (rclone's cat), and whose readers are no
// io.ReaderAt: it can read a part of a file alone instead, for a reader
// of a few stripes of a share. (Remotes whose readers are io.ReaderAt
// read parts through that.)
type RangeOpener interface {
	// OpenRange reads length bytes of name from offset on, or fewer at
	// the end of the file.
	OpenRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
}

// OpenRange reads length bytes of name from offset on, through r's
// OpenRange. The error wraps errors.ErrUnsupported when r is no
// RangeOpener: its readers read parts through ReadAt.
func OpenRange(ctx context.Context, r Remote, name string, offset, length int64) (io.ReadCloser, error) {
	ro, ok := r.(RangeOpener)
	if !ok {
		return nil, fmt.Errorf("host %s: no ranged open: %w", r, errors.ErrUnsupported)
	}
	return ro.OpenRange(ctx, name, offset, length)
}

// BothLister is a Remote that lists a folder's files and its leftovers in
// one request (one rclone start), where List and ListTemp make two.
type BothLister interface {
	// ListBoth is ListTemp and List of dir from one listing.
	ListBoth(ctx context.Context, dir string) (files, leftovers []Info, err error)
}

// ListBoth is List and ListTemp of dir on r, in one request where r is a
// BothLister. Otherwise the leftovers are listed first: an upload
// committed in between shows as its temp file and as its file (the same
// size and time: a SecondName), never as neither.
func ListBoth(ctx context.Context, r Remote, dir string) (files, leftovers []Info, err error) {
	if bl, ok := r.(BothLister); ok {
		return bl.ListBoth(ctx, dir)
	}
	if leftovers, err = r.ListTemp(ctx, dir); err != nil {
		return nil, nil, err
	}
	if files, err = r.List(ctx, dir); err != nil {
		return nil, nil, err
	}
	return files, leftovers, nil
}

// FileSystemer is a Remote that can name the file system its folder is
// on, so that hosts on one file system are checked against its free space
// together.
type FileSystemer interface {
	// FileSystem names the file system: equal names are one file system;
	// "" when the host cannot say.
	FileSystem(ctx context.Context) (string, error)
}

// Nearby is a Location whose files are on this machine (a local folder):
// reading one asks no server, so a client-side copy of it (the manifest
// cache, package metacache) saves nothing.
type Nearby interface {
	Nearby() bool
}

// IsNearby reports whether loc's files are on this machine (Nearby).
func IsNearby(loc Location) bool {
	n, ok := loc.(Nearby)
	return ok && n.Nearby()
}

// InProcessHasher is a Location whose uploads compute in the process
// that makes them: an S3 store's parts are hashed (SHA-256) and maybe
// encrypted (TLS) there. Other kinds' uploads are system calls (writes to
// files, to ssh or rclone), which run beside the caller's goroutines; a
// tool may run its Go code on one processor when no host computes.
type InProcessHasher interface {
	HashesInProcess() bool
}

// HashesInProcess reports whether uploads to loc dialled with opts
// compute in the process: those of an InProcessHasher that says so, and
// those of any kind with opts.Verify (the hash of what is sent, and of what
// is read back).
func HashesInProcess(loc Location, opts DialOptions) bool {
	if opts.Verify {
		return true
	}
	h, ok := loc.(InProcessHasher)
	return ok && h.HashesInProcess()
}

// Upload is a file being written. Nothing appears under its name until
// Commit succeeds. Callers defer Abort, which is safe after Commit.
type Upload interface {
	// Write may block while earlier data is on its way; an upload keeps a
	// bounded amount of data in memory.
	io.Writer
	// Commit checks that the host stored as many bytes as were written
	// (and with DialOptions.Verify, the same bytes), then moves the file
	// into place atomically. It never replaces an existing file: then its
	// error wraps ErrExist. Stored bytes that differ remove the temp file
	// and the error wraps ErrChanged.
	Commit(ctx context.Context) error
	// Abort removes the temp file, unless Commit has moved it into place.
	// An upload hashes what it writes only for DialOptions.Verify: a
	// caller that wants a hash of a file computes the one it needs
	// (bk-push the shares' meta hash, from the units it sends).
	Abort() error
}

// Keeper is an Upload that can send a buffer without copying it.
type Keeper interface {
	// WriteKept is Write, but it keeps p itself, not a copy, until the
	// host has acknowledged it, and then passes it to release, once. The
	// caller must not touch p before that. An upload that fails may keep
	// p for good.
	WriteKept(p []byte, release func([]byte)) error
}

// RangeWriter is an Upload that can send bytes of a file from the file
// itself, never copied into the process (sendfile).
type RangeWriter interface {
	// WriteRange is Write of the n bytes of f from off, read from f as
	// they are sent, and again if they must be sent again: they must not
	// change until the upload is committed or aborted. Bytes missing
	// from f fail the upload with an error that is ErrSource.
	WriteRange(f *os.File, off int64, n int) error
}

// Versioned is an Upload to a host that keeps every version of a file
// (an S3 bucket with versioning on): a reader that asks for the version
// Commit stored gets those bytes, whatever was stored under the name
// since.
type Versioned interface {
	// Version names the version Commit stored; "" before Commit, or when
	// the host kept no version.
	Version() string
}

// UploadVersion is the version up's Commit stored, "" when its host keeps
// none.
func UploadVersion(up Upload) string {
	if v, ok := up.(Versioned); ok {
		return v.Version()
	}
	return ""
}

// VersionReader is a Remote that reads a given version of a file
// (Versioned).
type VersionReader interface {
	// OpenVersion is Open of version of name; the error wraps ErrNotExist
	// when the host holds no such version.
	OpenVersion(ctx context.Context, name, version string, offset int64) (io.ReadCloser, error)
	// StatVersion is Stat of version of name.
	StatVersion(ctx context.Context, name, version string) (Info, error)
}

// OpenVersion reads version of name on r from offset on: r.Open when
// version is "". A host that keeps no versions holds none: the error
// wraps ErrNotExist.
func OpenVersion(ctx context.Context, r Remote, name, version string, offset int64) (io.ReadCloser, error) {
	if version == "" {
		return r.Open(ctx, name, offset)
	}
	vr, ok := r.(VersionReader)
	if !ok {
		return nil, HostError(r.String(), fmt.Errorf("%s version %s: %w (the host keeps no versions)", name, version, ErrNotExist))
	}
	return vr.OpenVersion(ctx, name, version, offset)
}

// StatVersion is Stat of version of name on r, as OpenVersion reads it.
func StatVersion(ctx context.Context, r Remote, name, version string) (Info, error) {
	if version == "" {
		return r.Stat(ctx, name)
	}
	vr, ok := r.(VersionReader)
	if !ok {
		return Info{}, HostError(r.String(), fmt.Errorf("%s version %s: %w (the host keeps no versions)", name, version, ErrNotExist))
	}
	return vr.StatVersion(ctx, name, version)
}

// Errors that callers test for with errors.Is. ErrNotExist and ErrExist are
// the fs ones, so wrapped os errors match too.
var (
	ErrNotExist     = fs.ErrNotExist
	ErrExist        = fs.ErrExist
	ErrUnknownSpace = errors.New("free space unknown")
	ErrChanged      = errors.New("stored bytes differ from what was sent")
	// ErrSource: bytes a RangeWriter was to send could not be read from
	// their file (cut short, unreadable); the file, not the host, is at
	// fault.
	ErrSource = errors.New("the bytes to send could not be read from their file")
)

// DialOptions are what a backend needs beyond the hosts-file line.
type DialOptions struct {
	// SSHCommand replaces "ssh" (from $BK_SSH or --ssh); the options and
	// host are appended to it.
	SSHCommand []string
	// RcloneCommand replaces "rclone" (from $BK_RCLONE or --rclone); the
	// subcommand and its arguments are appended to it.
	RcloneCommand []string
	// Warn gets what went wrong on a host without failing an operation,
	// in one line that names the host: ssh's stderr lines that no error
	// explains, a connection lost and resumed. Nil drops them.
	Warn func(msg string)
	// Timeout is how long a host may leave a connection attempt or a
	// request unanswered before it counts as failed; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Retry bounds reconnecting after a dropped connection.
	Retry Retry
	// Verify makes Commit read the temp file back and compare its hash
	// (NewHash) with what was written before moving it into place; it doubles the
	// transfer.
	Verify bool
	// AppendOnly says the host lets this account create files and nothing
	// else destructive (hosts-file option append-only=yes): files are
	// created read-only and given their name by a hard link, and no temp
	// file is ever removed. A kind of host that cannot work so refuses to
	// dial.
	AppendOnly bool
	// AppendOnlyAdmin says the host is an append-only one reached with
	// credentials that may remove (append-only=admin): it removes, and
	// reads what the client stored as the client does, not what someone
	// stored over it since (an S3 bucket's first versions).
	AppendOnlyAdmin bool
	// NoFsync says Commit need not wait for the host's disk (hosts-file
	// option fsync=no): a file a host had in memory when it lost power
	// may be lost or cut short, under its final name. By default local
	// folders and SFTP hosts whose server offers fsync@openssh.com make
	// each file durable before it takes its name; S3 stores are durable
	// once they answer, and rclone hosts as rclone's backend is.
	NoFsync bool
}

// Syncer is a Remote that can tell whether its uploads are made durable
// before they take their name (DialOptions.NoFsync unset): an SFTP server
// without fsync@openssh.com cannot.
type Syncer interface {
	CanFsync(ctx context.Context) (bool, error)
}

// ErrAppendOnly is what a kind of host that cannot work on an append-only
// host says when dialled with DialOptions.AppendOnly, and what bk says
// before it would remove a file there.
var ErrAppendOnly = errors.New("append-only host")

// AppendOnlyProber is a Remote that can find out whether the host really
// is append-only for this account.
type AppendOnlyProber interface {
	// ProbeAppendOnly creates a test file of its own and tries to remove,
	// overwrite, truncate, rename and chmod it, and returns what the host
	// allowed ("remove", "overwrite", ...): empty for an append-only host.
	// Nothing but the test file is touched; it stays behind, as a leftover.
	ProbeAppendOnly(ctx context.Context) (allowed []string, err error)
}

// DefaultTimeout is DialOptions.Timeout when none is given: long enough
// for a slow NAS waking its disks, short enough that a hung host does not
// hold a nightly job.
const DefaultTimeout = 30 * time.Second

// Retry says how often and how patiently a lost connection is re-dialled
// before an upload or read is given up.
type Retry struct {
	Attempts int           // 0 means 5
	First    time.Duration // first pause, doubled each time; 0 means 0.5s
	Max      time.Duration // longest pause; 0 means 8s
}

// Pauses returns the wait before each attempt, with defaults filled in.
func (r Retry) Pauses() []time.Duration {
	n, d, limit := r.Attempts, r.First, r.Max
	if n == 0 {
		n = 5
	}
	if d == 0 {
		d = 500 * time.Millisecond
	}
	if limit == 0 {
		limit = 8 * time.Second
	}
	pauses := make([]time.Duration, n)
	for i := range pauses {
		pauses[i] = min(d, limit)
		d *= 2
	}
	return pauses
}

// TempPrefix starts the name of every temp file: hidden, and never a name
// bk stores, so a leftover of a killed run is never mistaken for a file.
const TempPrefix = ".tmp-"

// IsTemp reports whether base is a temp file's name.
func IsTemp(base string) bool { return strings.HasPrefix(base, TempPrefix) }

// ProbePrefix starts the name of the test files bk writes to find out what
// a host allows (bk-push before data flows, bk-ls and bk-check on
// append-only hosts). Like temp files they are hidden from List and shown
// by ListTemp: on an append-only host they stay behind.
const ProbePrefix = ".bk-probe-"

// IsLeftover reports whether base is a temp file's or a test file's name:
// what List hides and ListTemp shows.
func IsLeftover(base string) bool { return IsTemp(base) || IsProbe(base) }

// IsProbe reports whether base is a test file's name. A test file is not
// fsync'ed: it is removed when its run ends.
func IsProbe(base string) bool { return strings.HasPrefix(base, ProbePrefix) }

// SecondName reports whether temp file t is a second name of the file it
// was to become, among the files of its folder by name: that file is
// there with t's size and time (one inode: the hard link an append-only
// host keeps). It then costs no space.
func SecondName(t Info, files map[string]Info) bool {
	target, ok := TempTarget(t.Name)
	if !ok {
		return false
	}
	fi, ok := files[target]
	return ok && !fi.Dir && fi.Size == t.Size && fi.ModTime.Equal(t.ModTime)
}

// TempTarget is the name a temp file was to be moved to, from its own
// name; ok is false for a name TempName did not make.
func TempTarget(temp string) (name string, ok bool) {
	dir, base := path.Split(temp)
	rest, ok := strings.CutPrefix(base, TempPrefix)
	if !ok {
		return "", false
	}
	_, target, ok := strings.Cut(rest, "-")
	if !ok || target == "" {
		return "", false
	}
	return dir + target, true
}

// TempName returns a fresh temp name in the same folder as name:
// ".tmp-<random>-<base>", so two uploads never share one.
func TempName(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	dir, base := path.Split(name)
	return dir + TempPrefix + hex.EncodeToString(b[:]) + "-" + base
}

// NewHash returns the hash of the checks of DialOptions.Verify, which an
// upload keeps of what it writes and its Commit of what it reads back:
// BLAKE3-256, which takes half the CPU of SHA-256 here.
func NewHash() hash.Hash { return blake3.New() }

// VerifyHash is NewHash when opts ask for Verify, else nil: an upload
// without Verify hashes nothing.
func VerifyHash(opts DialOptions) hash.Hash {
	if opts.Verify {
		return NewHash()
	}
	return nil
}

// SumOf returns h's sum as an array, for comparing two.
func SumOf(h hash.Hash) [32]byte {
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// CheckName refuses a name that is not a clean relative slash path under
// the host's folder.
func CheckName(name string) error {
	if name == "" || name == "." || path.IsAbs(name) || path.Clean(name) != name ||
		name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
		return fmt.Errorf("bad file name %q", name)
	}
	return nil
}

// CheckNewName is CheckName for Create, which also refuses temp names: they
// belong to uploads in progress.
func CheckNewName(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if IsTemp(path.Base(name)) {
		return fmt.Errorf("file name %q is reserved for temp files", name)
	}
	return nil
}

// Filter keeps the leftovers of infos (temp files and test files; temp
// true) or the others, sorted by name, for List and ListTemp.
func Filter(infos []Info, temp bool) []Info {
	var out []Info
	for _, fi := range infos {
		if IsLeftover(fi.Name) == temp && !(temp && fi.Dir) {
			out = append(out, fi)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// CheckDir is CheckName for folders, where "" and "." mean the top.
func CheckDir(dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	return CheckName(dir)
}

// HostError says which host an error came from.
func HostError(host string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("host %s: %w", host, err)
}

// Used adds up the sizes of all files under dir on r, temp files included
// (they take space too), so bk-push can keep within a quota. A missing dir
// uses nothing. A temp file is taken for a second name of the file it was
// to become (a hard link, as an append-only host keeps it) when that file
// is there with its size and time, and counted once. Test and temp files
// whose name, or the name they are to become, skip reports (nil: none)
// are not counted: the caller's own, written while it counts.
func Used(ctx context.Context, r Remote, dir string, skip func(name string) bool) (int64, error) {
	var total int64
	infos, temps, err := ListBoth(ctx, r, dir)
	if errors.Is(err, ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	byName := make(map[string]Info, len(infos)+len(temps))
	for _, fi := range append(temps, infos...) {
		byName[fi.Name] = fi
	}
	for _, t := range temps {
		if !SecondName(t, byName) && !callersOwn(t.Name, skip) {
			total += t.Size
		}
	}
	for _, fi := range infos {
		if !fi.Dir {
			total += fi.Size
			continue
		}
		n, err := Used(ctx, r, path.Join(dir, fi.Name), skip)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// CleanTemp removes temp and test files in dir last changed before
// cutoff: leftovers of killed runs. A live upload keeps its temp file's
// time fresh. The caller sets cutoff by its own clock, as the hosts set
// file times by theirs. Test files and temp files whose name, or the name
// they are to become, ours reports as the caller's own (nil: none) are
// being written: they stay, whatever their time (a host whose clock is a
// day behind). It returns how many it removed.
func CleanTemp(ctx context.Context, r Remote, dir string, cutoff time.Time, ours func(name string) bool) (int, error) {
	temps, err := r.ListTemp(ctx, dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, t := range temps {
		if callersOwn(t.Name, ours) {
			continue
		}
		if !t.ModTime.Before(cutoff) {
			continue
		}
		if err := r.Remove(ctx, path.Join(dir, t.Name)); err != nil && !errors.Is(err, ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// callersOwn reports whether the test or temp file name, or the name it
// is to become, is one that ours (nil: none) reports as the caller's.
func callersOwn(name string, ours func(name string) bool) bool {
	if ours == nil {
		return false
	}
	target, _ := TempTarget(name)
	return ours(name) || target != "" && ours(target)
}

// RefuseAppendOnly is what Dial returns on a kind of host that cannot work
// as an append-only host when opts ask for one: nil when they don't.
func RefuseAppendOnly(host string, opts DialOptions) error {
	if !opts.AppendOnly {
		return nil
	}
	return HostError(host, fmt.Errorf("append-only=yes works on SFTP and S3 hosts only: %w", ErrAppendOnly))
}
