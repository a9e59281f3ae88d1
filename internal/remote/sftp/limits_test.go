package sftp

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/remotetest"
	"github.com/bk-backup/bk/internal/sshtest"
)

// TestPacketSize: OpenSSH's sshd states its limits, and requests carry
// the 255 KiB its own sftp sends; the in-process server states none, and
// they carry 32 KiB. A file of several requests goes and comes back whole.
func TestPacketSize(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *sshtest.Server) {
		r := dial(t, s, at(s, folder(t)), remote.DialOptions{})
		t.Cleanup(func() { r.Close() })
		want := defaultPacket
		if s.Real {
			want = maxPacket
		}
		if got := r.conn.packet; got != want {
			t.Fatalf("requests carry %d bytes, want %d", got, want)
		}
		data := remotetest.Data(3*maxPacket+1, 7)
		remotetest.Put(t, r, "f", data)
		if got := remotetest.Get(t, r, "f", 0); !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, differing from the %d put", len(got), len(data))
		}
	})
}

// sftpPacket is an SFTP packet of type typ with body.
func sftpPacket(typ byte, body ...[]byte) []byte {
	b := slices.Concat(body...)
	return slices.Concat(binary.BigEndian.AppendUint32(nil, uint32(1+len(b))), []byte{typ}, b)
}

func sftpString(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func sftpUints(n ...uint64) []byte {
	var b []byte
	for _, v := range n {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// TestHello: the handshake asks for the limits only where the server
// offers them, and takes the smaller of the read and write lengths, capped
// at what pkg/sftp can read; a refusal leaves the default, an answer of
// another kind fails the dial.
func TestHello(t *testing.T) {
	t.Parallel()
	id := []byte{0, 0, 0, 1}
	version := func(exts ...string) []byte {
		body := [][]byte{{0, 0, 0, 3}}
		for _, e := range exts {
			body = append(body, sftpString(e), sftpString("1"))
		}
		return sftpPacket(fxpVersion, body...)
	}
	limits := func(read, write uint64) []byte {
		return sftpPacket(fxpExtendedRply, id, sftpUints(256<<10, read, write, 1000))
	}
	init := sftpPacket(fxpInit, []byte{0, 0, 0, 3})
	ask := sftpPacket(fxpExtended, id, sftpString(limitsExtension))
	for _, tc := range []struct {
		name     string
		answers  [][]byte
		requests []byte
		packet   int
		err      bool
	}{
		{"no extensions", [][]byte{version()}, init, defaultPacket, false},
		{"others", [][]byte{version("statvfs@openssh.com", "hardlink@openssh.com")}, init, defaultPacket, false},
		{"openssh", [][]byte{version("statvfs@openssh.com", limitsExtension), limits(261120, 261120)}, slices.Concat(init, ask), 261120, false},
		{"smaller write", [][]byte{version(limitsExtension), limits(261120, 16<<10)}, slices.Concat(init, ask), 16 << 10, false},
		{"no limit", [][]byte{version(limitsExtension), limits(0, 0)}, slices.Concat(init, ask), maxPacket, false},
		{"larger", [][]byte{version(limitsExtension), limits(1<<20, 1<<20)}, slices.Concat(init, ask), maxPacket, false},
		{"refused", [][]byte{version(limitsExtension), sftpPacket(fxpStatus, id, []byte{0, 0, 0, 8})}, slices.Concat(init, ask), defaultPacket, false},
		{"odd answer", [][]byte{version(limitsExtension), sftpPacket(104, id)}, slices.Concat(init, ask), 0, true},
		{"no version", [][]byte{sftpPacket(fxpStatus, id)}, init, 0, true},
		{"cut short", [][]byte{version(limitsExtension)}, slices.Concat(init, ask), 0, true},
	} {
		var requests bytes.Buffer
		v, packet, err := hello(bytes.NewReader(slices.Concat(tc.answers...)), &requests)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil || packet != tc.packet || !bytes.Equal(v, tc.answers[0]) {
			t.Errorf("%s: hello = %d, %v, version %x; want %d, the version answer %x", tc.name, packet, err, v, tc.packet, tc.answers[0])
		}
		if !bytes.Equal(requests.Bytes(), tc.requests) {
			t.Errorf("%s: sent %x, want %x", tc.name, requests.Bytes(), tc.requests)
		}
	}
}

// TestDropInit: pkg/sftp's init is dropped whatever the writes it comes
// in, and what follows passes whole.
func TestDropInit(t *testing.T) {
	t.Parallel()
	in := slices.Concat(sftpPacket(fxpInit, []byte{0, 0, 0, 3}), sftpPacket(fxpOpen, []byte{0, 0, 0, 2}, sftpString("x")), sftpPacket(6, []byte{1, 2, 3}))
	inSteps(t, in, in[9:], func(out io.WriteCloser) io.Writer { return &dropInit{w: out} })
}
