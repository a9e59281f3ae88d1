package sshtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// StartGo runs an in-process SSH server with SFTP on a free port of
// 127.0.0.1, for machines without sshd. It takes the same keys, config and
// ssh command as Start. Like sshd it serves the whole file system; relative
// paths start at dir.
func StartGo(dir string) (*Server, error) {
	s, err := setup(dir, false)
	if err != nil {
		return nil, err
	}
	hostPEM, err := os.ReadFile(filepath.Join(s.Dir, "host_ed25519"))
	if err != nil {
		return nil, err
	}
	hostKey, err := ssh.ParsePrivateKey(hostPEM)
	if err != nil {
		return nil, err
	}
	userPub, err := os.ReadFile(filepath.Join(s.Dir, "id_ed25519.pub"))
	if err != nil {
		return nil, err
	}
	userKey, _, _, _, err := ssh.ParseAuthorizedKey(userPub)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == s.User && bytes.Equal(key.Marshal(), userKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	if err := s.writeClientFiles(); err != nil {
		ln.Close()
		return nil, err
	}
	s.gsrv = &goServer{ln: ln, cfg: cfg, dir: s.Dir, conns: map[net.Conn]bool{}, requests: map[string]int{}}
	s.gsrv.wg.Go(s.gsrv.accept)
	return s, nil
}

type goServer struct {
	ln  net.Listener
	cfg *ssh.ServerConfig
	dir string
	wg  sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	requests map[string]int // served, by SFTP packet type
}

// Requests counts the SFTP requests the in-process server has read, by
// type ("open", "read", "opendir", ...), for tests of what a client asks
// a host for; nil for sshd, which keeps no count.
func (s *Server) Requests() map[string]int {
	if s.gsrv == nil {
		return nil
	}
	s.gsrv.mu.Lock()
	defer s.gsrv.mu.Unlock()
	return maps.Clone(s.gsrv.requests)
}

// requestNames are the SFTP version 3 packet types a client sends.
var requestNames = map[byte]string{
	1: "init", 3: "open", 4: "close", 5: "read", 6: "write", 7: "lstat", 8: "fstat", 9: "setstat",
	10: "fsetstat", 11: "opendir", 12: "readdir", 13: "remove", 14: "mkdir", 15: "rmdir",
	16: "realpath", 17: "stat", 18: "rename", 19: "readlink", 20: "symlink", 200: "extended",
}

// counter passes a session's bytes on to the SFTP server, counting the
// packets in them by type: each is a 4-byte length, then its type.
type counter struct {
	io.ReadWriteCloser
	g      *goServer
	header []byte // of the packet begun, up to its type
	skip   uint32 // bytes of the current packet's body still to come
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(uint32(len(b)), c.skip)
			b, c.skip = b[k:], c.skip-k
			continue
		}
		k := min(len(b), 5-len(c.header))
		c.header, b = append(c.header, b[:k]...), b[k:]
		if len(c.header) < 5 {
			continue
		}
		name := requestNames[c.header[4]]
		if name == "" {
			name = fmt.Sprintf("type %d", c.header[4])
		}
		c.g.mu.Lock()
		c.g.requests[name]++
		c.g.mu.Unlock()
		c.skip = max(binary.BigEndian.Uint32(c.header), 1) - 1
		c.header = c.header[:0]
	}
	return n, err
}

func (g *goServer) accept() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		g.conns[c] = true
		g.mu.Unlock()
		g.wg.Go(func() {
			g.serve(c)
			g.mu.Lock()
			delete(g.conns, c)
			g.mu.Unlock()
		})
	}
}

func (g *goServer) serve(c net.Conn) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, g.cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go g.session(ch, chReqs)
	}
}

// session serves the sftp subsystem and refuses shells and commands.
func (g *goServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		// The payload of a subsystem request is the name as an SSH string.
		if req.Type != "subsystem" || !bytes.Equal(req.Payload, []byte("\x00\x00\x00\x04sftp")) {
			_ = req.Reply(false, nil)
			continue
		}
		_ = req.Reply(true, nil)
		go ssh.DiscardRequests(reqs)
		srv, err := sftp.NewServer(&counter{ReadWriteCloser: ch, g: g}, sftp.WithServerWorkingDirectory(g.dir))
		if err != nil {
			return
		}
		_ = srv.Serve()
		_, _ = ch.SendRequest("exit-status", false, []byte{0, 0, 0, 0})
		return
	}
}

func (g *goServer) stop() error {
	err := g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
	return err
}
