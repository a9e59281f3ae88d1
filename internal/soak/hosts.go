package soak

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bk-backup/bk/internal/s3test"
	"github.com/bk-backup/bk/internal/sshtest"
)

// host is one storage host of the simulation. Every kind keeps its files
// in a folder of this machine (dir): a local folder host is that folder,
// sshd serves it over SFTP, versitygw serves it as a bucket's prefix. So
// a host goes offline, dies or comes back stale the same way for all
// kinds: its folder is moved away or replaced.
type host struct {
	name  string
	kind  string // "folder", "sftp", "s3"
	dir   string
	line  string // its hosts-file line, without quota
	quota string // "quota=…" while one is set
	state string // "up", "offline", "dead"
}

func (h *host) hostsLine() string {
	if h.quota != "" {
		return h.line + "  " + h.quota
	}
	return h.line
}

// away is where an offline folder host's folder waits.
func (h *host) away() string { return h.dir + ".offline" }

// goOffline takes the host off the net: its server stops (its CPU time
// counted by phase), or (a folder) its disk is unmounted.
func (h *host) goOffline(srv *servers, phase func(string, func() error) error) error {
	h.state = "offline"
	switch h.kind {
	case "sftp":
		return phase(phaseSSHD, srv.ssh.Stop)
	case "s3":
		return phase(phaseS3, func() error { srv.s3.Stop(); return nil })
	}
	return os.Rename(h.dir, h.away())
}

// comeBack brings it back as it was; a server comes back on a new port,
// which its hosts-file line follows.
func (h *host) comeBack(srv *servers) error {
	h.state = "up"
	switch h.kind {
	case "sftp":
		s, err := sshtest.Start(srv.ssh.Dir)
		if err != nil {
			return err
		}
		srv.ssh = s
		h.line = s.HostsLine(h.dir)
		return nil
	case "s3":
		s, err := s3test.StartWithKeys(srv.s3.Dir, srv.s3.Access, srv.s3.Secret)
		if err != nil {
			return err
		}
		srv.s3 = s
		h.line = s3Line(s)
		return nil
	}
	return os.Rename(h.away(), h.dir)
}

func s3Line(s *s3test.Server) string {
	return fmt.Sprintf("s3://%s/h4 endpoint=%s path-style=yes", bucket, s.Endpoint)
}

// servers are the sshd and versitygw the SFTP and S3 hosts live on.
type servers struct {
	ssh *sshtest.Server
	s3  *s3test.Server
	env []string // what the tools need to reach them
	// shared: the tools' logins to sshd share a connection a night
	shared bool
}

// uncounted runs f, counting its CPU time nowhere (a setup that failed).
func uncounted(_ string, f func() error) error { return f() }

// endNight ends the night's ssh connection: the masters are closed and
// waited for, and sshd has waited for the process that served it.
func (s *servers) endNight() error {
	err := closeMasters()
	if s.ssh != nil {
		s.ssh.WaitConnections(time.Second)
	}
	return err
}

// stop stops the servers; phase counts their CPU time, which is known
// once they are waited for.
func (s *servers) stop(phase func(string, func() error) error) {
	_ = phase(phaseSSHD, closeMasters)
	if s.ssh != nil {
		_ = phase(phaseSSHD, s.ssh.Stop)
		s.ssh = nil
	}
	if s.s3 != nil {
		_ = phase(phaseS3, func() error { s.s3.Stop(); return nil })
		s.s3 = nil
	}
}

const bucket = "soak"

// sshCommand is the ssh command the tools reach the sshd host with: its
// logins share a connection a night (mux.go), the sockets in folder mux.
// A socket's path has room for about 100 bytes: where mux is too long for
// it, each login is a connection of its own, with a note.
func sshCommand(s *sshtest.Server, mux string, note func(string, ...any)) []string {
	// The socket's name: %C is 40 hex digits; ssh adds a dot and 16
	// characters to it while it makes the socket.
	if len(mux)+1+40+17 > 100 {
		note("%s is too long a folder for ssh's control sockets: each login to h3 is a connection of its own", mux)
		return s.SSHCommand()
	}
	if err := os.MkdirAll(mux, 0o700); err != nil {
		note("no folder for ssh's control sockets (%v): each login to h3 is a connection of its own", err)
		return s.SSHCommand()
	}
	return s.SharedSSHCommand(mux)
}

// startHosts makes the six hosts under dir: four folders (the last one the
// spare), one on a real sshd and one on versitygw; a kind whose server is
// not installed becomes a folder, with a note.
func startHosts(dir string, note func(string, ...any)) ([]*host, *servers, error) {
	srv := &servers{}
	var hosts []*host
	folder := func(name string) *host {
		d := filepath.Join(dir, "hosts", name)
		return &host{name: name, kind: "folder", dir: d, line: d, state: "up"}
	}
	for _, n := range []string{"h0", "h1", "h2"} {
		hosts = append(hosts, folder(n))
	}
	sshDir := filepath.Join(dir, "sshd")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return nil, nil, err
	}
	h3 := folder("h3")
	if s, err := sshtest.Start(sshDir); err == nil {
		srv.ssh = s
		h3.kind, h3.line = "sftp", s.HostsLine(h3.dir)
		ssh := sshCommand(s, filepath.Join(dir, "mux"), note)
		srv.shared = len(ssh) > len(s.SSHCommand())
		srv.env = append(srv.env, "BK_SSH="+strings.Join(ssh, " "))
	} else {
		note("no sshd (%v): h3 is a folder", err)
	}
	hosts = append(hosts, h3)
	h4 := folder("h4")
	s3Dir := filepath.Join(dir, "s3")
	if err := os.MkdirAll(s3Dir, 0o700); err != nil {
		return nil, nil, err
	}
	if s, err := s3test.Start(s3Dir); err == nil {
		srv.s3 = s
		if err := s.MakeBucket(bucket); err != nil {
			srv.stop(uncounted)
			return nil, nil, fmt.Errorf("versitygw: %w", err)
		}
		h4.kind = "s3"
		h4.dir = filepath.Join(s3Dir, bucket, "h4")
		h4.line = s3Line(s)
		srv.env = append(srv.env, s.Env()...)
	} else {
		note("no versitygw (%v): h4 is a folder", err)
	}
	hosts = append(hosts, h4, folder("h5"))
	for _, h := range hosts {
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			srv.stop(uncounted)
			return nil, nil, err
		}
	}
	return hosts, srv, nil
}

// writeHostsFile writes the lines of the hosts that are listed (not yet
// dropped by the admin), in order: the first n take shares, the rest are
// spares.
func writeHostsFile(path string, hosts []*host) error {
	var b strings.Builder
	b.WriteString("# written by the soak\n")
	for _, h := range hosts {
		b.WriteString(h.hostsLine() + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// shareFiles lists the share files of the up hosts (for bit rot).
func shareFiles(hosts []*host) []string {
	var out []string
	for _, h := range hosts {
		if h.state != "up" {
			continue
		}
		_ = filepath.WalkDir(h.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.Contains(d.Name(), ".share") && !strings.HasPrefix(d.Name(), ".") {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// usage is the bytes under a folder.
func usage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// copyDir copies a host's folder (a snapshot the host will come back with).
func copyDir(from, to string) error {
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}
