package sshtest

import (
	"bytes"
	"errors"
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
	s.gsrv = &goServer{ln: ln, cfg: cfg, dir: s.Dir, conns: map[net.Conn]bool{}}
	s.gsrv.wg.Go(s.gsrv.accept)
	return s, nil
}

type goServer struct {
	ln  net.Listener
	cfg *ssh.ServerConfig
	dir string
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
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
		srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(g.dir))
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
