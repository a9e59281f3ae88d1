package sshtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AppendOnlyUser is the account StartAppendOnly serves. It is made once
// per machine (useradd) and left there: a system account with no home, no
// shell and no password, that only these servers let in.
const AppendOnlyUser = "bk-append-test"

// DeniedRequests are the SFTP requests an append-only account is refused
// (internal-sftp -P): everything that removes, moves or changes a file
// once created (sftp-server -Q requests lists the names).
const DeniedRequests = "remove,rmdir,rename,posix-rename,setstat,fsetstat,lsetstat"

// ErrNoAppendOnly means an append-only account cannot be set up here: it
// needs root (useradd, ChrootDirectory) and OpenSSH's sshd.
var ErrNoAppendOnly = errors.New("append-only account needs root, useradd and OpenSSH's sshd")

// runDir holds the chroots: every folder above a ChrootDirectory must be
// owned by root and writable by no one else, which /tmp is not.
const runDir = "/run/bk-sshtest"

// AppendOnly is the append-only account of a server: sshd's Match block
// for it forces internal-sftp with DeniedRequests, in a chroot.
type AppendOnly struct {
	User string
	// Alias is the host name the ssh config maps to this server as User,
	// with a key of its own (the backup client's); the server's Alias
	// logs in as the test's own user, with the other key (the admin's).
	Alias string
	// Top holds the chroot (Top/root, owned by root) and the account's
	// authorized_keys; Stop removes it.
	Top string
	// Folder is the account's writable folder as the admin sees it
	// (Top/root/bk); the account sees it as /bk.
	Folder string
	denied string
}

// ClientHostsLine is the hosts-file line that reaches the folder as the
// append-only account.
func (s *Server) ClientHostsLine() string {
	return "sftp://" + s.AppendOnly.Alias + "/bk append-only=yes"
}

// AdminHostsLine is the hosts-file line that reaches the same folder as
// the test's own user, who may remove files: the admin hosts file's line.
func (s *Server) AdminHostsLine() string {
	return s.HostsLine(s.AppendOnly.Folder) + " append-only=admin"
}

// StartAppendOnly is Start with an append-only account (AppendOnlyUser,
// reached as Alias+"-client"), refused DeniedRequests and the requests of
// extraDenied too. It returns ErrNoAppendOnly when not root or when sshd
// or useradd is missing.
func StartAppendOnly(dir string, extraDenied ...string) (*Server, error) {
	_, err := exec.LookPath("useradd")
	if os.Geteuid() != 0 || SSHDPath() == "" || err != nil {
		return nil, ErrNoAppendOnly
	}
	if err := ensureUser(); err != nil {
		return nil, err
	}
	u, err := user.Lookup(AppendOnlyUser)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	top, err := os.MkdirTemp(runDir, "h")
	if err != nil {
		return nil, err
	}
	ao := &AppendOnly{User: AppendOnlyUser, Top: top, Folder: filepath.Join(top, "root", "bk"),
		denied: strings.Join(append([]string{DeniedRequests}, extraDenied...), ",")}
	err = os.Chmod(top, 0o755)
	if err == nil {
		err = os.MkdirAll(ao.Folder, 0o755)
	}
	if err == nil {
		err = os.Chown(ao.Folder, uid, gid)
	}
	if err != nil {
		os.RemoveAll(top)
		return nil, err
	}
	absDir, err := filepath.Abs(dir)
	if err == nil {
		err = writeKey(filepath.Join(absDir, "id_client"))
	}
	if err == nil {
		var pub []byte
		if pub, err = os.ReadFile(filepath.Join(absDir, "id_client.pub")); err == nil {
			err = os.WriteFile(filepath.Join(top, "authorized_keys"), pub, 0o644)
		}
	}
	if err != nil {
		os.RemoveAll(top)
		return nil, err
	}
	ao.Alias = alias(absDir) + "-client"
	s, err := start(dir, func(s *Server) { s.AppendOnly = ao })
	if err != nil {
		os.RemoveAll(top)
		return nil, err
	}
	return s, nil
}

var userMade sync.Mutex

// ensureUser makes AppendOnlyUser unless it exists. Tests in other
// processes may be making it at the same time: useradd then finds
// /etc/passwd locked, or the user made.
func ensureUser() error {
	userMade.Lock()
	defer userMade.Unlock()
	var out []byte
	for range 50 {
		if _, err := user.Lookup(AppendOnlyUser); err == nil {
			return nil
		}
		var err error
		out, err = exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--password", "*", AppendOnlyUser).CombinedOutput()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("useradd %s: %s", AppendOnlyUser, strings.TrimSpace(string(out)))
}

// matchBlock is sshd's configuration of the append-only account, as the
// README shows it; it must come last in sshd_config.
func (ao *AppendOnly) matchBlock() string {
	return fmt.Sprintf(`Match User %s
	AuthorizedKeysFile %s
	ChrootDirectory %s
	ForceCommand internal-sftp -P %s
	AllowTcpForwarding no
	X11Forwarding no
	PermitTTY no
`, ao.User, quote(filepath.Join(ao.Top, "authorized_keys")), quote(filepath.Join(ao.Top, "root")), ao.denied)
}

// clientConfig is the ssh config block that logs in as the account.
func (s *Server) clientConfig() string {
	ao := s.AppendOnly
	var b strings.Builder
	fmt.Fprintf(&b, "Host %s\n", ao.Alias)
	line := func(k, v string) { fmt.Fprintf(&b, "\t%s %s\n", k, v) }
	line("User", ao.User)
	line("IdentityFile", quote(filepath.Join(s.Dir, "id_client")))
	return b.String()
}
