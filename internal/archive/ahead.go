package archive

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// ahead runs a scanner on a goroutine of its own, a few batches of entries
// and their content before the extractor, which takes them in the archive's
// order: decrypting, decompressing and parsing then run beside the system
// calls that create the files. On small files those calls are half of a
// restore's time, and on one goroutine the two took turns on one core.
//
// Nothing is reordered: the extractor sees the entries, their content, the
// scanner's warnings and its errors exactly where a scanner read in line
// would have given them. Memory ahead is bounded by aheadBatches batches.
type ahead struct {
	sc *scanner
	// full carries batches to the extractor, in order; free brings them
	// back to be filled again.
	full, free chan *aheadBatch
	stop       chan struct{} // closed when the extractor gives up early
	done       sync.WaitGroup
	warn       func(format string, args ...any)

	cur   *aheadBatch // the batch being taken apart by the extractor
	pos   int         // its next item
	entry *entry      // the last entry returned
	open  bool        // its content is not all taken
	// err ended the stream, and is given again by every later next;
	// contentErr ended the entry's content, given by every later read of it.
	err, contentErr error
	// marked is the scanner's marked (the file its last damage marker
	// named) as of the last entry returned.
	marked string
	buf    []byte // the extractor's own buffer
	// batches are all the batches, for the ahead of the next archive of a
	// chain once this one is closed.
	batches []*aheadBatch
}

const (
	// aheadBytes is the content a batch holds. Small files travel whole,
	// many to a batch; a bigger one in pieces over several.
	aheadBytes = 256 << 10
	// aheadBatches is how many batches exist: one filled, one taken apart,
	// the rest waiting or held by the file writers, so the reader may run
	// ahead about 1 MiB.
	aheadBatches = 6
	// aheadItems hands a batch over early when it holds this many items,
	// so that a run of empty files or directories does not wait.
	aheadItems = 256
	// aheadMinRoom: with less room left in a batch, the next piece of
	// content goes into a new one rather than in a sliver.
	aheadMinRoom = 4 << 10
)

// aheadBatch is a run of items and the buffer their content is in.
type aheadBatch struct {
	items []aheadItem
	buf   []byte
	// refs counts who holds it: the extractor while it takes it apart,
	// and each file writer given content in it (keep).
	refs atomic.Int32
}

// aheadItem is one thing the scanner said: an entry (with the first piece
// of its content), a further piece of content, a warning, or the error
// that ended the stream.
type aheadItem struct {
	e      *entry
	data   []byte // content, in the batch's buffer
	last   bool   // data ends the content of the entry
	marked string // for an entry or the end: the scanner's marked then
	warn   string // a warning, to give in its place
	// err ends the stream: from the scanner's next (io.EOF at the end),
	// or, with data, the tar reader's own error reading the content, which
	// the extractor is told as reading or as skipping that content would
	// have told it. Nothing follows.
	err error
}

// newAhead starts reading sc ahead. The scanner's warnings are given
// through warn in their place in the stream, on the caller's goroutine.
// The caller must call close. It reuses the buffers of prev, if not nil:
// the ahead of the archive before in a chain, closed, its batches held by
// nothing any more.
func newAhead(sc *scanner, warn func(format string, args ...any), prev *ahead) *ahead {
	a := &ahead{sc: sc, warn: warn,
		full: make(chan *aheadBatch, aheadBatches), free: make(chan *aheadBatch, aheadBatches), stop: make(chan struct{})}
	if prev != nil {
		a.batches, a.buf = prev.batches, prev.buf
	} else {
		for range aheadBatches {
			a.batches = append(a.batches, &aheadBatch{buf: make([]byte, 0, aheadBytes)})
		}
	}
	for _, b := range a.batches {
		b.refs.Store(0)
		a.free <- b
	}
	a.done.Add(1)
	go a.read()
	return a
}

// close stops the reader, if still running, and waits for it: the
// scanner's state (damaged) is then the caller's to read.
func (a *ahead) close() {
	close(a.stop)
	a.done.Wait()
}

// read is the goroutine: it fills batches with what the scanner reads.
func (a *ahead) read() {
	defer a.done.Done()
	var b *aheadBatch
	// get returns the batch being filled, taking a free one if needed;
	// false when the extractor stopped.
	get := func() bool {
		if b != nil {
			return true
		}
		select {
		case b = <-a.free:
			b.items, b.buf = b.items[:0], b.buf[:0]
			return true
		case <-a.stop:
			return false
		}
	}
	send := func() bool {
		select {
		case a.full <- b:
			b = nil
			return true
		case <-a.stop:
			return false
		}
	}
	add := func(it aheadItem) bool {
		if !get() {
			return false
		}
		b.items = append(b.items, it)
		return len(b.items) < aheadItems || send()
	}
	warn := a.sc.warn
	defer func() { a.sc.warn = warn }()
	a.sc.warn = func(format string, args ...any) { add(aheadItem{warn: fmt.Sprintf(format, args...)}) }
	for {
		e, err := a.sc.next()
		if err != nil {
			if add(aheadItem{err: err, marked: a.sc.marked}) && b != nil {
				send()
			}
			return
		}
		it := aheadItem{e: e, marked: a.sc.marked}
		if !e.selected {
			// The extractor skips its content: no need to carry it.
			if _, err := a.sc.copyContent(io.Discard, e); err != nil {
				if add(aheadItem{err: err}) && b != nil {
					send()
				}
				return
			}
			it.last = true
			if !add(it) {
				return
			}
			continue
		}
		for {
			if !get() {
				return
			}
			if cap(b.buf)-len(b.buf) < aheadMinRoom && len(b.items) > 0 {
				if !send() || !get() {
					return
				}
			}
			start := len(b.buf)
			n, err := io.ReadFull(aheadContent{a.sc}, b.buf[start:cap(b.buf)])
			b.buf = b.buf[:start+n]
			it.data = b.buf[start : start+n : start+n]
			switch err {
			case nil:
			case io.EOF, io.ErrUnexpectedEOF:
				it.last = true
			default:
				it.err = err
				if add(it) && b != nil {
					send()
				}
				return
			}
			if !add(it) {
				return
			}
			if it.last {
				break
			}
			// The rest of a big file: hand over what there is.
			if b != nil && !send() {
				return
			}
			it = aheadItem{}
		}
	}
}

// aheadContent reads the current entry's content for io.ReadFull: the
// end of the content is io.EOF, and the tar reader's io.ErrUnexpectedEOF
// (a truncated stream) an error of its own.
type aheadContent struct{ s *scanner }

func (r aheadContent) Read(b []byte) (int, error) {
	n, err := r.s.readContent(b)
	if err == io.ErrUnexpectedEOF {
		err = errTruncated
	}
	return n, err
}

// errTruncated is io.ErrUnexpectedEOF from the tar reader, inside ahead.
var errTruncated = errors.New("truncated")

// rawError undoes aheadContent's renaming.
func rawError(err error) error {
	if err == errTruncated {
		return io.ErrUnexpectedEOF
	}
	return err
}

// item returns the next item, without taking it.
func (a *ahead) item() *aheadItem {
	if a.cur != nil && a.pos == len(a.cur.items) {
		a.release(a.cur)
		a.cur = nil
	}
	if a.cur == nil {
		a.cur, a.pos = <-a.full, 0
		a.cur.refs.Add(1)
	}
	return &a.cur.items[a.pos]
}

// take returns the next item that is not a warning, giving the warnings
// met on the way.
func (a *ahead) take() *aheadItem {
	for {
		it := a.item()
		a.pos++
		if it.warn == "" {
			return it
		}
		a.warn("%s", it.warn)
	}
}

// next returns the next entry, or the error the scanner's next returned
// (io.EOF at the end), skipping what is left of the content before it.
func (a *ahead) next() (*entry, error) {
	for a.err == nil && a.open {
		a.piece()
	}
	if a.err != nil {
		return nil, a.err
	}
	it := a.take()
	a.marked = it.marked
	if it.e == nil { // the end
		a.err = it.err
		return nil, it.err
	}
	a.entry, a.open = it.e, true
	a.pos-- // its content is read from the item itself
	return it.e, nil
}

// piece returns the next piece of the current entry's content, io.EOF
// after the last.
func (a *ahead) piece() ([]byte, error) {
	if a.contentErr != nil {
		return nil, a.contentErr
	}
	if !a.open {
		return nil, io.EOF
	}
	it := a.take()
	a.open = !it.last
	if it.err != nil {
		// As the tar reader would have said it reading the content, or,
		// reading the next header, skipping it.
		raw := rawError(it.err)
		a.open = false
		a.contentErr = a.sc.contentError(a.entry, raw)
		a.err = a.sc.readError(raw)
		if len(it.data) > 0 {
			return it.data, nil
		}
		return nil, a.contentErr
	}
	return it.data, nil
}

// whole returns the content of the entry next returned last, if it is in
// one piece and none of it was read yet.
func (a *ahead) whole() ([]byte, bool) {
	if !a.open || a.contentErr != nil {
		return nil, false
	}
	it := &a.cur.items[a.pos]
	if it.e != a.entry || !it.last || it.err != nil {
		return nil, false
	}
	return it.data, true
}

// keep takes the content whole returned, for a file writer: its batch is
// not reused until the writer releases it.
func (a *ahead) keep() *aheadBatch {
	a.pos++
	a.open = false
	a.cur.refs.Add(1)
	return a.cur
}

// release gives a batch back to be filled again once nothing holds it.
// It never blocks: free has room for every batch.
func (a *ahead) release(b *aheadBatch) {
	if b.refs.Add(-1) == 0 {
		a.free <- b
	}
}

// copyContent copies the current entry's content to w, as the scanner's
// copyContent does.
func (a *ahead) copyContent(w io.Writer, e *entry) (int64, error) {
	var n int64
	for {
		p, err := a.piece()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(p) == 0 {
			continue
		}
		if _, err := w.Write(p); err != nil {
			return n, err
		}
		n += int64(len(p))
	}
}

// content reads the current entry's content.
func (a *ahead) content() io.Reader { return &aheadReader{a: a} }

type aheadReader struct {
	a    *ahead
	rest []byte
}

func (r *aheadReader) Read(b []byte) (int, error) {
	for len(r.rest) == 0 {
		p, err := r.a.piece()
		if err != nil {
			return 0, err
		}
		r.rest = p
	}
	n := copy(b, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// buffer is a buffer of the extractor's own.
func (a *ahead) buffer() []byte {
	if a.buf == nil {
		a.buf = make([]byte, copyChunk)
	}
	return a.buf
}
