package sftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SFTP numbers of the handshake that hello speaks itself.
const (
	fxpInit         = 1
	fxpVersion      = 2
	fxpStatus       = 101
	fxpExtended     = 200
	fxpExtendedRply = 201
	sftpVersion     = 3
	limitsExtension = "limits@openssh.com"
	// defaultPacket is the data a read or write request carries where
	// the server states no limits: 32 KiB, which every server takes.
	defaultPacket = 32 << 10
	// maxPacket bounds the data of a request however large the server's
	// limits: pkg/sftp takes no answer longer than 256 KiB, and a data
	// answer adds 13 bytes. OpenSSH states 255 KiB, as its sftp uses.
	maxPacket = 255 << 10
	// maxHello bounds the version and limits answers hello reads.
	maxHello = 256 << 10
)

// hello does the SFTP handshake on a fresh session before pkg/sftp
// starts, so that it can ask the server for its limits (OpenSSH's
// limits@openssh.com, which pkg/sftp does not ask): a write request of
// 255 KiB costs the server and both ssh processes about what one of 32 KiB
// does. It returns the server's version answer, to be replayed to
// pkg/sftp (see replayHello), and the data a request may carry.
func hello(answers io.Reader, requests io.Writer) (version []byte, packet int, err error) {
	if _, err := requests.Write(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 5, fxpInit}, sftpVersion)); err != nil {
		return nil, 0, err
	}
	version, err = readPacket(answers)
	if err != nil {
		return nil, 0, err
	}
	if len(version) < 9 || version[4] != fxpVersion {
		return nil, 0, errors.New("the server answered the SFTP handshake with no version")
	}
	if !hasExtension(version[9:], limitsExtension) {
		return version, defaultPacket, nil
	}
	req := []byte{0, 0, 0, 0, fxpExtended, 0, 0, 0, 1}
	req = binary.BigEndian.AppendUint32(req, uint32(len(limitsExtension)))
	req = append(req, limitsExtension...)
	binary.BigEndian.PutUint32(req, uint32(len(req)-4))
	if _, err := requests.Write(req); err != nil {
		return nil, 0, err
	}
	reply, err := readPacket(answers)
	if err != nil {
		return nil, 0, err
	}
	// uint32 id, then uint64 max packet, read, write lengths and open handles
	if len(reply) < 9+32 || reply[4] != fxpExtendedRply {
		if len(reply) >= 5 && reply[4] == fxpStatus {
			return version, defaultPacket, nil // offered but refused: the default
		}
		return nil, 0, fmt.Errorf("the server answered %s with a packet of type %d", limitsExtension, reply[4])
	}
	readLen := binary.BigEndian.Uint64(reply[9+8:])
	writeLen := binary.BigEndian.Uint64(reply[9+16:])
	// Zero means no limit; a server stating less than the default is
	// taken at its word.
	packet = maxPacket
	for _, l := range []uint64{readLen, writeLen} {
		if l > 0 && l < uint64(packet) {
			packet = int(l)
		}
	}
	return version, packet, nil
}

// readPacket reads one SFTP packet whole, its length included.
func readPacket(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n == 0 || n > maxHello {
		return nil, fmt.Errorf("the server sent an SFTP packet of %d bytes in the handshake", n)
	}
	p := make([]byte, 4+n)
	copy(p, head[:])
	if _, err := io.ReadFull(r, p[4:]); err != nil {
		return nil, err
	}
	return p, nil
}

// hasExtension reports whether the extension pairs of a version packet
// name ext.
func hasExtension(pairs []byte, ext string) bool {
	for len(pairs) >= 4 {
		var name []byte
		for range 2 { // name, then data
			if len(pairs) < 4 {
				return false
			}
			n := binary.BigEndian.Uint32(pairs)
			if uint64(n) > uint64(len(pairs)-4) {
				return false
			}
			if name == nil {
				name = pairs[4 : 4+n]
			}
			pairs = pairs[4+n:]
		}
		if string(name) == ext {
			return true
		}
	}
	return false
}

// replayHello hands pkg/sftp the handshake hello has done: its init
// request is dropped, and the server's version answer replayed.
func replayHello(version []byte, answers io.Reader, requests io.WriteCloser) (io.Reader, io.WriteCloser) {
	return io.MultiReader(bytes.NewReader(version), answers), &dropInit{w: requests}
}

// dropInit passes requests on, but for the first packet: the init that
// hello has sent already.
type dropInit struct {
	w    io.WriteCloser
	head []byte // of the init, until its length is known
	left int    // bytes of the init still to drop, once known
	done bool
}

func (d *dropInit) Write(p []byte) (int, error) {
	n := len(p)
	for !d.done && len(p) > 0 {
		if len(d.head) < 4 {
			take := min(4-len(d.head), len(p))
			d.head = append(d.head, p[:take]...)
			p = p[take:]
			if len(d.head) == 4 {
				d.left = int(binary.BigEndian.Uint32(d.head))
			}
			continue
		}
		take := min(d.left, len(p))
		d.left -= take
		p = p[take:]
		d.done = d.left == 0
	}
	if len(p) > 0 {
		if _, err := d.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (d *dropInit) Close() error { return d.w.Close() }
