package sshtest

import (
	"net"
	"sync"
)

// Proxy forwards TCP connections from a port of 127.0.0.1 to a target and
// cuts or stalls them on demand, to test what happens when a network drops
// or a host hangs. Point ssh at it with the server's Alias and the proxy's
// Port.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool
	budget int64 // bytes left before a cut; <0 for no cut armed
	cuts   int
	stall  bool // accept, then deliver nothing in either direction
	refuse bool // close new connections at once, as a host that is down
	dials  int  // connections accepted
	down   int64
}

// NewProxy listens on a free port and forwards to target ("host:port").
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}, budget: -1}
	p.wg.Go(p.accept)
	return p, nil
}

// Port is where the proxy listens.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Cut drops every open connection now.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		c.Close()
	}
	p.budget = -1
	p.cuts++
}

// CutAfter drops every open connection once n more bytes have passed, in
// either direction. New connections after the cut pass freely.
func (p *Proxy) CutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.budget = n
}

// Stall makes the host hang from now on: what is sent on open connections
// is swallowed, and new connections are accepted but never answered, as a
// host whose sshd (or network) is stuck.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = true
}

// SetDown makes the host refuse connections (true) from now on, as a host
// that is switched off, or serve them again (false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = down
}

func (p *Proxy) stalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stall
}

// Conns counts the connections accepted so far.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dials
}

// Cuts counts the cuts so far.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Down counts the bytes passed from the target to the client so far: what
// a host sent.
func (p *Proxy) Down() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// Close stops listening and drops every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.dials++
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		if p.stalled() {
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			p.wg.Go(func() { p.swallow(c) })
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(up, c, nil) })
		p.wg.Go(func() { p.pipe(c, up, &p.down) })
	}
}

// pipe copies src to dst until either side closes, spending the budget
// and adding what passed to count where not nil.
func (p *Proxy) pipe(dst, src net.Conn, count *int64) {
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.stalled() {
			n = 0
		}
		if n > 0 {
			cut := false
			p.mu.Lock()
			if p.budget >= 0 && int64(n) >= p.budget {
				n, cut = int(p.budget), true
			} else if p.budget >= 0 {
				p.budget -= int64(n)
			}
			if count != nil {
				*count += int64(n)
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if cut {
				p.Cut()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// swallow reads c until it closes and answers nothing.
func (p *Proxy) swallow(c net.Conn) {
	defer func() {
		c.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
