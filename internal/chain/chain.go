// Package chain is the stream that carries a chain of backups through a
// pipe, from bk-join to bk-restore: a short header, then each backup's
// archive as stored, the full one first, each preceded by its ID and length.
//
// The format is described in section 7 of docs/FORMAT.md.
package chain

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic starts a chain stream; Version follows it.
const (
	Magic   = "bk-chain"
	Version = 1
)

// maxID bounds a member's ID.
const maxID = 255

// IsChain tells whether a stream starts like a chain stream.
func IsChain(r *bufio.Reader) bool {
	b, _ := r.Peek(len(Magic))
	return bytes.Equal(b, []byte(Magic))
}

// WriteHeader starts a chain stream of count members.
func WriteHeader(w io.Writer, count int) error {
	if count < 1 || count > 0xffff {
		return fmt.Errorf("a chain of %d backups", count)
	}
	b := append([]byte(Magic), Version, byte(count>>8), byte(count))
	_, err := w.Write(b)
	return err
}

// WriteMember starts a member: the backup's ID and its archive's length.
// The archive's bytes follow.
func WriteMember(w io.Writer, id string, size int64) error {
	if len(id) == 0 || len(id) > maxID {
		return fmt.Errorf("backup ID %q: 1 to %d bytes", id, maxID)
	}
	b := append([]byte{byte(len(id))}, id...)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	_, err := w.Write(b)
	return err
}

// Reader reads a chain stream member by member.
type Reader struct {
	r     io.Reader
	count int
	read  int
	cur   *io.LimitedReader
	id    string
}

// NewReader checks a chain stream's header.
func NewReader(r io.Reader) (*Reader, error) {
	var h [len(Magic) + 3]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, errors.New("chain stream: header cut short")
	}
	if string(h[:len(Magic)]) != Magic {
		return nil, errors.New("not a chain stream")
	}
	if v := h[len(Magic)]; v != Version {
		return nil, fmt.Errorf("chain stream version %d is not known to this bk", v)
	}
	count := int(h[len(Magic)+1])<<8 | int(h[len(Magic)+2])
	if count == 0 {
		return nil, errors.New("chain stream: no backups")
	}
	return &Reader{r: r, count: count}, nil
}

// Len is the number of members the header announced.
func (c *Reader) Len() int { return c.count }

// Next returns the next member's ID and archive; io.EOF after the last, once
// the stream has ended there. The archive before must have been read to
// its end.
func (c *Reader) Next() (string, io.Reader, error) {
	if c.cur != nil && c.cur.N != 0 {
		return "", nil, fmt.Errorf("chain stream: backup %s was not read to its end (%d bytes left)", c.id, c.cur.N)
	}
	if c.read == c.count {
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return "", nil, errors.New("chain stream: data after the last backup")
		}
		return "", nil, io.EOF
	}
	var n [1]byte
	if _, err := io.ReadFull(c.r, n[:]); err != nil {
		return "", nil, c.cut()
	}
	b := make([]byte, int(n[0])+8)
	if _, err := io.ReadFull(c.r, b); err != nil || n[0] == 0 {
		return "", nil, c.cut()
	}
	c.id = string(b[:n[0]])
	size := binary.BigEndian.Uint64(b[n[0]:])
	if size > 1<<62 {
		return "", nil, fmt.Errorf("chain stream: backup %s: absurd length %d", c.id, size)
	}
	c.read++
	c.cur = &io.LimitedReader{R: c.r, N: int64(size)}
	return c.id, &cutReader{c.cur, c.id}, nil
}

func (c *Reader) cut() error {
	return fmt.Errorf("chain stream is cut short: %d of %d backups read", c.read, c.count)
}

// cutReader reports a member that ends before its length as cut short.
type cutReader struct {
	lr *io.LimitedReader
	id string
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.lr.N == 0 {
		return 0, io.EOF
	}
	n, err := r.lr.Read(p)
	if err == io.EOF && r.lr.N > 0 {
		err = fmt.Errorf("chain stream: backup %s is cut short", r.id)
	}
	return n, err
}
