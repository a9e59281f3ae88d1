//go:build linux || darwin || freebsd

package archive

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bk-backup/bk/internal/fsutil"
	"github.com/bk-backup/bk/internal/xattr"
)

// statOf returns the Unix metadata of a FileInfo from Lstat or Stat.
func statOf(fi fs.FileInfo) *syscall.Stat_t {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		st = &syscall.Stat_t{}
	}
	return st
}

// devOf is the device of a FileInfo from Lstat or Stat, in the one type
// all systems fit (macOS's is an int32).
func devOf(fi fs.FileInfo) uint64 { return uint64(statOf(fi).Dev) }

// listXattrs reads the extended attributes of path (not following a
// symlink) as PAX records.
func listXattrs(path string) (map[string]string, error) {
	attrs, err := xattr.List(path)
	if err != nil {
		return nil, err
	}
	return xattr.Records(attrs)
}

// listXattrsFd is listXattrs for the open file fd.
func listXattrsFd(fd int, path string) (map[string]string, error) {
	attrs, err := xattr.ListFd(fd, path)
	if err != nil {
		return nil, err
	}
	return xattr.Records(attrs)
}

const (
	sIFCHR  = unix.S_IFCHR
	sIFBLK  = unix.S_IFBLK
	sIFIFO  = unix.S_IFIFO
	oNOFOLL = unix.O_NOFOLLOW | unix.O_NONBLOCK
)

// The read workers use file descriptors, not os.File: for 50,000 small files
// os.OpenFile's poller registration (a failing epoll_ctl) and finalizer
// cost more than the rest of the Go side of reading them.

// openRead opens a file for reading as os.OpenFile would, without following
// a symlink and without blocking on a FIFO put in its place.
func openRead(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|oNOFOLL, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// readFd reads as os.File.Read does: io.EOF at the end, other errors as
// *os.PathError.
func readFd(fd int, path string, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func fstat(fd int, path string, st *syscall.Stat_t) error {
	for {
		err := syscall.Fstat(fd, st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "stat", Path: path, Err: err}
		}
		return nil
	}
}

func closeFd(fd int) { unix.Close(fd) }

// statInfo is the fs.FileInfo of an fstat; Mode only tells a regular file
// from the rest, which load refuses.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *statInfo) Name() string { return s.name }
func (s *statInfo) Size() int64  { return s.st.Size }
func (s *statInfo) IsDir() bool  { return false }
func (s *statInfo) Sys() any     { return &s.st }

func (s *statInfo) ModTime() time.Time {
	mtime, _ := fsutil.StatTimes(&s.st)
	return mtime
}

func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	if s.st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		m |= fs.ModeIrregular
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// createAt creates the regular file base, one path element, in the open
// directory dir, for writing; it fails if anything is there, a symlink
// included. base resolves nothing outside dir, so this keeps the confinement
// of Root.OpenFile in one openat, where that costs several system calls.
// The file is open for reading too.
func createAt(dir *os.File, base string) (*os.File, error) {
	f, err := create(dir, base, unix.O_RDWR)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(f.fd), base), nil
}

// createFd is createAt for a file that is only written, its metadata set
// and closed, as a restored file is: a bare descriptor spares the fcntl,
// the two allocations and the finalizer of an os.File, which for a small
// file cost about as much as writing it.
func createFd(dir *os.File, base string) (fdFile, error) {
	return create(dir, base, unix.O_WRONLY)
}

func create(dir *os.File, base string, access int) (fdFile, error) {
	if base == "" || base == "." || base == ".." || strings.Contains(base, "/") {
		return fdFile{-1, base}, &os.PathError{Op: "openat", Path: base, Err: syscall.EINVAL}
	}
	for {
		fd, err := unix.Openat(int(dir.Fd()), base, access|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fdFile{-1, base}, &os.PathError{Op: "openat", Path: base, Err: err}
		}
		return fdFile{fd, base}, nil
	}
}

// fdFile is a file open for writing by its descriptor alone; its errors
// name it as os.File's do.
type fdFile struct {
	fd   int
	name string
}

func (f fdFile) err(op string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

// retry calls fn again while it is interrupted by a signal.
func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

func (f fdFile) WriteAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pwrite(f.fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, f.err("write", err)
		}
		if m == 0 {
			return n, f.err("write", io.ErrUnexpectedEOF)
		}
		n += m
	}
	return n, nil
}

func (f fdFile) Truncate(size int64) error {
	return f.err("truncate", retry(func() error { return unix.Ftruncate(f.fd, size) }))
}

func (f fdFile) Chown(uid, gid int) error {
	return f.err("chown", retry(func() error { return unix.Fchown(f.fd, uid, gid) }))
}

func (f fdFile) Chmod(mode fs.FileMode) error {
	m := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return f.err("chmod", retry(func() error { return unix.Fchmod(f.fd, m) }))
}

// SetXattr sets one extended attribute.
func (f fdFile) SetXattr(name, value string) error { return xattr.FSetFd(f.fd, f.name, name, value) }

// Close closes the descriptor, once: a close is never retried, as the
// descriptor is gone even when it fails.
func (f fdFile) Close() error { return f.err("close", unix.Close(f.fd)) }

// hasXattrsFd says whether the open file f may have extended attributes:
// it has some, or asking failed.
func hasXattrsFd(f *os.File) bool {
	n, err := unix.Flistxattr(int(f.Fd()), nil)
	if errors.Is(err, errors.ErrUnsupported) {
		return false
	}
	return err != nil || n > 0
}

// readDirTypes lists the open directory d, each entry's type as the
// directory gives it (a stat only where it gives none): ReadDir of a
// directory opened through an os.Root stats every entry.
func readDirTypes(d *os.File) ([]fs.DirEntry, error) {
	fd, err := unix.Dup(int(d.Fd()))
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: d.Name(), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Name())
	defer f.Close()
	return f.ReadDir(-1)
}
