package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameHeaderSize is the size of a share stream frame's header: the share
// index and the payload length.
const frameHeaderSize = 2 + 4

// StreamReader reads a share stream: the N shares of a set interleaved in
// frames, as bk-split writes to stdout. The concatenated payloads of share
// i are exactly the bytes of share file i.
type StreamReader struct {
	r        io.Reader
	at       *atReader // r, when it skips the payloads not wanted; else nil
	hdr      Header
	info     SetInfo
	hdrSize  int
	buf      []byte
	done     bool
	trailers map[Trailer]int
}

// NewStreamReader reads and checks the stream header.
func NewStreamReader(r io.Reader) (*StreamReader, error) {
	h, index, err := readHeader(r, magicStream)
	if err != nil {
		return nil, err
	}
	if index != indexStream {
		return nil, fmt.Errorf("damaged stream header: index field %d", index)
	}
	return &StreamReader{r: r, hdr: h, info: h.SetInfo, hdrSize: h.Size(), trailers: map[Trailer]int{}}, nil
}

// NewStreamReaderAt is NewStreamReader over the stream that r holds from
// offset 0, but NextInto skips the payload of a frame its buffer function
// does not want (nil) rather than read it, unless it may be a trailer:
// several such readers each take one share of a stream in a file, each at
// its own pace, reading little more than their share.
func NewStreamReaderAt(r io.ReaderAt) (*StreamReader, error) {
	at := &atReader{r: r}
	s, err := NewStreamReader(at)
	if err != nil {
		return nil, err
	}
	s.at = at
	return s, nil
}

// atReader reads r from off on.
type atReader struct {
	r   io.ReaderAt
	off int64
}

func (a *atReader) Read(p []byte) (int, error) {
	n, err := a.r.ReadAt(p, a.off)
	a.off += int64(n)
	if n == len(p) && err == io.EOF {
		err = nil // the next read says so
	}
	return n, err
}

// Info is the set the stream carries.
func (s *StreamReader) Info() SetInfo { return s.info }

// frame reads the next frame header and checks that its payload is one whole
// unit of a share: a header, a stripe record or a trailer.
func (s *StreamReader) frame() (index, length int, err error) {
	if s.done {
		return 0, 0, io.EOF
	}
	var fh [frameHeaderSize]byte
	if _, err := io.ReadFull(s.r, fh[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, 0, fmt.Errorf("share stream %w (no end frame)", ErrTruncated)
		}
		return 0, 0, err
	}
	index = int(binary.BigEndian.Uint16(fh[:]))
	length = int(binary.BigEndian.Uint32(fh[2:]))
	if index == indexStream {
		if length != 0 {
			return 0, 0, errors.New("malformed share stream: end frame with a payload")
		}
		var one [1]byte
		if n, _ := io.ReadFull(s.r, one[:]); n != 0 {
			return 0, 0, errors.New("malformed share stream: data after the end frame")
		}
		s.done = true
		return 0, 0, io.EOF
	}
	if index >= s.info.N {
		return 0, 0, fmt.Errorf("malformed share stream: frame for share %d of %d", index, s.info.N)
	}
	if length != s.hdrSize && length != s.info.RecordSize() && length != TrailerSize {
		return 0, 0, fmt.Errorf("malformed share stream: frame of %d bytes for share %d", length, index)
	}
	return index, length, nil
}

func (s *StreamReader) payload(p []byte) error {
	if _, err := io.ReadFull(s.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("share stream %w", ErrTruncated)
		}
		return err
	}
	if len(p) == TrailerSize {
		if t, err := ParseTrailer(p, s.info); err == nil {
			s.trailers[t]++
		}
	}
	return nil
}

// Next returns the next frame. The payload is valid until the next call.
// At the end of the stream it returns io.EOF.
func (s *StreamReader) Next() (index int, payload []byte, err error) {
	return s.NextInto(func(int, int) []byte { return nil })
}

// NextInto is Next reading the payload straight into the buffer that
// buffer returns for the frame's share and length, when it has room for
// it, so that a caller that keeps payloads need not copy them; else (nil)
// into the reader's own buffer, valid until the next call. A reader from
// NewStreamReaderAt skips a payload not wanted instead, and returns it nil,
// unless it has a trailer's size.
func (s *StreamReader) NextInto(buffer func(index, length int) []byte) (index int, payload []byte, err error) {
	index, length, err := s.frame()
	if err != nil {
		return 0, nil, err
	}
	p := buffer(index, length)
	if p == nil && s.at != nil && length != TrailerSize {
		s.at.off += int64(length)
		return index, nil, nil
	}
	if cap(p) < length {
		if cap(s.buf) < length {
			s.buf = make([]byte, length)
		}
		p = s.buf
	}
	p = p[:length]
	if err := s.payload(p); err != nil {
		return 0, nil, err
	}
	return index, p, nil
}

// NextAt is NextInto for a reader from NewStreamReaderAt that reads no
// payload but a trailer's: it returns the frame's share, its payload's
// length and where the payload starts from the stream's start, for a
// caller that takes the bytes from the file itself. payload is the
// trailer's, else nil. A payload cut short by the end of the file shows
// at the next call, as the next frame's header is missing.
func (s *StreamReader) NextAt() (index, length int, off int64, payload []byte, err error) {
	if s.at == nil {
		return 0, 0, 0, nil, errors.New("share stream not read at offsets")
	}
	index, length, err = s.frame()
	if err != nil {
		return 0, 0, 0, nil, err
	}
	off = s.at.off
	if length != TrailerSize {
		s.at.off += int64(length)
		return index, length, off, nil, nil
	}
	if cap(s.buf) < length {
		s.buf = make([]byte, length)
	}
	p := s.buf[:length]
	if err := s.payload(p); err != nil {
		return 0, 0, 0, nil, err
	}
	return index, length, off, p, nil
}

// Trailer is what the shares' trailers in the stream declared, the value
// most of them agree on. It is known once Next has returned io.EOF.
func (s *StreamReader) Trailer() (Trailer, error) {
	if !s.done {
		return Trailer{}, errors.New("share stream not read to its end")
	}
	var best Trailer
	votes, tie := 0, false
	for t, n := range s.trailers {
		switch {
		case n > votes:
			best, votes, tie = t, n, false
		case n == votes:
			tie = true
		}
	}
	if votes == 0 || tie {
		return Trailer{}, errors.New("share stream has no trailer that most shares agree on")
	}
	return best, nil
}

// StreamWriter writes a share stream.
type StreamWriter struct {
	w   io.Writer
	buf []byte
}

// NewStreamWriter writes the stream header of set info.
func NewStreamWriter(w io.Writer, info SetInfo) (*StreamWriter, error) {
	return newStreamWriter(w, Header{SetInfo: info})
}

func newStreamWriter(w io.Writer, h Header) (*StreamWriter, error) {
	if _, err := w.Write(h.marshal(magicStream, indexStream)); err != nil {
		return nil, err
	}
	return &StreamWriter{w: w}, nil
}

// WriteFrame writes payload as the next part of share index. Each frame
// must carry one whole unit: a share's header, a stripe record or a trailer.
func (s *StreamWriter) WriteFrame(index int, payload []byte) error {
	s.buf = append(s.buf[:0], make([]byte, frameHeaderSize)...)
	putFrameHeader(s.buf, index, len(payload))
	s.buf = append(s.buf, payload...)
	_, err := s.w.Write(s.buf)
	return err
}

// Close writes the end frame. It does not close the underlying writer.
func (s *StreamWriter) Close() error {
	var end [frameHeaderSize]byte
	putFrameHeader(end[:], indexStream, 0)
	_, err := s.w.Write(end[:])
	return err
}

func putFrameHeader(b []byte, index, length int) {
	binary.BigEndian.PutUint16(b, uint16(index))
	binary.BigEndian.PutUint32(b[2:], uint32(length))
}
