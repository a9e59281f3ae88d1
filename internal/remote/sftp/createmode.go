package sftp

import (
	"encoding/binary"
	"io"
)

// SFTP (draft-ietf-secsh-filexfer-02) numbers that createMode reads.
const (
	fxpOpen        = 3
	fxfCreat       = 0x08
	fxfExcl        = 0x20
	attrPermission = 0x04
	// maxOpenPacket bounds the open request createMode holds to rewrite;
	// pkg/sftp's are a path and three numbers.
	maxOpenPacket = 64 << 10
)

// createMode sets the permissions of the files the client creates
// exclusively (an open with CREAT and EXCL and no attributes) to perm, in
// the requests it passes on to the server: pkg/sftp sends no attributes
// with an open, and on an append-only host a file must be read-only from
// its creation (the account may not chmod it later), so that it can never
// be opened for writing again. Every other request passes as it is.
// pkg/sftp writes each request whole under one lock, in one or two
// writes; createMode does not rely on that.
type createMode struct {
	w    io.WriteCloser
	perm uint32
	head []byte // the start of a request, until its type is known; a whole open request
	left int    // bytes of the current request still to pass on unread
}

func (m *createMode) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if m.left > 0 {
			take := min(m.left, len(p))
			if _, err := m.w.Write(p[:take]); err != nil {
				return 0, err
			}
			m.left -= take
			p = p[take:]
			continue
		}
		if len(m.head) < 5 { // length and type
			take := min(5-len(m.head), len(p))
			m.head = append(m.head, p[:take]...)
			p = p[take:]
			if len(m.head) < 5 {
				continue
			}
		}
		size := 4 + int(binary.BigEndian.Uint32(m.head))
		if m.head[4] != fxpOpen || size > maxOpenPacket {
			if _, err := m.w.Write(m.head); err != nil {
				return 0, err
			}
			m.left, m.head = size-len(m.head), m.head[:0]
			continue
		}
		take := min(size-len(m.head), len(p))
		m.head = append(m.head, p[:take]...)
		p = p[take:]
		if len(m.head) < size {
			continue
		}
		if _, err := m.w.Write(m.rewrite(m.head)); err != nil {
			return 0, err
		}
		m.head = m.head[:0]
	}
	return n, nil
}

func (m *createMode) Close() error { return m.w.Close() }

// rewrite returns the open request pkt with perm as its attributes when it
// creates a file exclusively and carries none, else pkt as it is.
func (m *createMode) rewrite(pkt []byte) []byte {
	// uint32 length, byte type, uint32 id, string path, uint32 pflags, attrs
	if len(pkt) < 13 {
		return pkt
	}
	end := 13 + int(binary.BigEndian.Uint32(pkt[9:13]))
	if end < 13 || len(pkt) != end+8 {
		return pkt
	}
	pflags := binary.BigEndian.Uint32(pkt[end:])
	if pflags&(fxfCreat|fxfExcl) != fxfCreat|fxfExcl || binary.BigEndian.Uint32(pkt[end+4:]) != 0 {
		return pkt
	}
	out := append([]byte{}, pkt...)
	out = binary.BigEndian.AppendUint32(out, m.perm)
	binary.BigEndian.PutUint32(out[end+4:], attrPermission)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}
