package archive

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// xattrPrefix is the PAX record key prefix GNU tar (--xattrs) and star use
// for extended attributes.
const xattrPrefix = "SCHILY.xattr."

// statOf returns the Unix metadata of a FileInfo from Lstat or Stat.
func statOf(fi fs.FileInfo) *syscall.Stat_t {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		st = &syscall.Stat_t{}
	}
	return st
}

// listXattrs reads the extended attributes of path (not following a
// symlink) as PAX records. Attributes in the "system." namespace (ACLs,
// which GNU tar keeps apart) are left out. A file system without xattr
// support yields none.
func listXattrs(path string) (map[string]string, error) {
	buf := make([]byte, 1024)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	recs := map[string]string{}
	val := make([]byte, 256)
	start := 0
	for i := 0; i < n; i++ {
		if buf[i] != 0 {
			continue
		}
		name := string(buf[start:i])
		start = i + 1
		if name == "" || len(name) > 7 && name[:7] == "system." {
			continue
		}
		for {
			m, err := unix.Lgetxattr(path, name, val)
			if errors.Is(err, unix.ERANGE) {
				val = make([]byte, len(val)*4)
				continue
			}
			if errors.Is(err, unix.ENODATA) {
				break // removed since listed
			}
			if err != nil {
				return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
			}
			recs[xattrPrefix+name] = string(val[:m])
			break
		}
	}
	return recs, nil
}

// fsetxattr sets one extended attribute on an open file.
func fsetxattr(f *os.File, name, value string) error {
	var err error
	c, cerr := f.SyscallConn()
	if cerr != nil {
		return cerr
	}
	if cerr := c.Control(func(fd uintptr) {
		err = unix.Fsetxattr(int(fd), name, []byte(value), 0)
	}); cerr != nil {
		return cerr
	}
	return err
}

// lsetxattrAt sets an extended attribute on the entry base in the open
// directory dir without following it if it is a symlink. There is no
// fd-relative lsetxattr, so it goes through /proc/self/fd, which resolves to
// the directory itself and so cannot be redirected by a symlink on the way.
func lsetxattrAt(dir *os.File, base, name, value string) error {
	p := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + base
	return unix.Lsetxattr(p, name, []byte(value), 0)
}

// lutimesAt sets the mtime of the entry base in the open directory dir
// without following a symlink; the access time is left alone.
func lutimesAt(dir *os.File, base string, mtime time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(int(dir.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// mknodAt creates a device node or FIFO named base in the open directory dir.
func mknodAt(dir *os.File, base string, mode uint32, major, minor int64) error {
	return unix.Mknodat(int(dir.Fd()), base, mode, int(unix.Mkdev(uint32(major), uint32(minor))))
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

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return false }
func (s *statInfo) Sys() any           { return &s.st }

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
