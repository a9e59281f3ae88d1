package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Errors of Join that a caller may want to explain.
var (
	ErrMixedSets = errors.New("shares of different sets mixed")
	ErrNoShare   = errors.New("no bk share among the sources")
)

// Join rebuilds the stream from stored shares and writes it to w. It reads
// the header of every source (of one copy of a share found on several
// hosts: probeCopies), then the blocks of K shares (data shares
// first, which need no decoding) and the checksums of all the others, so
// that every block used is checked against every reachable share's record
// of it; a stripe that does not verify makes it read more blocks there.
// w receives only verified data: on failure it holds a prefix of whole
// stripes of the stream.
func Join(ctx context.Context, sources []Source, w io.Writer, opts JoinOptions) (JoinReport, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	probes := probeCopies(sources, opts.SetID, func(srcs []Source) []probe { return probeAll(ctx, srcs) })
	j, err := admit(ctx, probes, opts)
	for _, p := range probes {
		if p.rc != nil && !slices.ContainsFunc(j.shares, func(sh *share) bool { return sh != nil && sh.first == p.rc }) {
			p.rc.Close()
		}
	}
	if err != nil {
		for _, sh := range j.shares {
			if sh != nil && sh.first != nil {
				sh.first.Close()
			}
		}
		return j.report, err
	}
	full := 0
	for _, sh := range preferred(j.present()) {
		j.start(sh, 0, full < j.need())
		full++
	}
	return j.finish(w, cancel)
}

// admit makes a joiner of the set to rebuild from what the probes found:
// the shares of the set whose headers agree, with a warning for each of
// the others, and fails when fewer than K are left. On failure the
// joiner, never nil, holds the report so far.
func admit(ctx context.Context, probes []probe, opts JoinOptions) (*joiner, error) {
	j := &joiner{opts: opts}
	for _, p := range probes {
		switch {
		case p.err == nil:
		case outOfFiles(p.err):
			return j, openFilesError(p.err, len(probes))
		case errors.Is(p.err, ErrNotShare) || errors.Is(p.err, ErrIsStream):
			j.warn("%s: %v; skipped", fileName(p.src), p.err)
		default:
			j.warn("%s: %v", fileName(p.src), p.err)
			j.report.Damaged = append(j.report.Damaged, fileName(p.src))
		}
	}
	set, err := pickSet(probes, opts.SetID)
	if err != nil {
		return j, err
	}
	damaged := j.report.Damaged
	if j, err = newJoiner(ctx, commonInfo(probes, set), opts); err != nil {
		return &joiner{report: JoinReport{Damaged: damaged}}, err
	}
	j.report.Damaged = damaged
	j.addShares(probes, set)
	return j, j.checkCount()
}

// outOfFiles is the process, not the share, short of file descriptors: no
// host is to blame for it.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// openFilesError says that every share is open at once, so the limit on
// open files must exceed their number.
func openFilesError(err error, shares int) error {
	return fmt.Errorf("%w: bk-join keeps every share open, %d here, and a few files more: raise the limit (ulimit -n)", err, shares)
}

// probe is what reading a source's header found.
type probe struct {
	src Source
	h   Header
	err error
	// rc is the reader of the header, open at the end of it (probeAll),
	// for the share's first read to go on with.
	rc io.ReadCloser
}

// IndexedSource is a Source whose share index is known before its header
// is read: a manifest's share, which may stand on several hosts. Join
// reads one copy of a share, the first one given that holds it.
type IndexedSource interface {
	Source
	ShareIndex() int
}

// probeCopies reads the headers of sources with probeAll, but of the
// copies of a share (IndexedSource, the same index) only the first, and
// the next one only where the copies read give no share that admit would
// take for that index: reading every copy's header cost a request to
// each host that holds one, at every backup of a chain, for a copy that
// was dropped. The probes are in the order of sources, first copies
// first.
func probeCopies(sources []Source, want [16]byte, probeAll func([]Source) []probe) []probe {
	var first []Source
	spares := map[int][]Source{} // by index, in order
	seen := map[int]bool{}
	for _, src := range sources {
		is, ok := src.(IndexedSource)
		switch {
		case !ok:
			first = append(first, src)
		case seen[is.ShareIndex()]:
			spares[is.ShareIndex()] = append(spares[is.ShareIndex()], src)
		default:
			seen[is.ShareIndex()] = true
			first = append(first, src)
		}
	}
	probes := probeAll(first)
	for len(spares) > 0 {
		taken := takenIndices(probes, want)
		var next []Source
		for _, i := range slices.Sorted(maps.Keys(spares)) {
			if copies := spares[i]; !taken[i] {
				next = append(next, copies[0])
				spares[i] = copies[1:]
			}
			if taken[i] || len(spares[i]) == 0 {
				delete(spares, i)
			}
		}
		probes = append(probes, probeAll(next)...)
	}
	return probes
}

// takenIndices are the share indices that admit would fill from probes.
func takenIndices(probes []probe, want [16]byte) map[int]bool {
	taken := map[int]bool{}
	set, err := pickSet(probes, want)
	if err != nil {
		return taken
	}
	info := commonInfo(probes, set)
	for _, p := range probes {
		if p.err == nil && p.h.SetID == set && sameInfo(p.h, info) {
			taken[p.h.Index] = true
		}
	}
	return taken
}

// probeAll reads the header of every source, all at once. Each reader is
// left open after a header that reads: Join reads the share on from there
// rather than opening it again (a request, an S3 GET, an rclone process).
func probeAll(ctx context.Context, sources []Source) []probe {
	probes := make([]probe, len(sources))
	var wg sync.WaitGroup
	for i, src := range sources {
		probes[i].src = src
		wg.Go(func() {
			rc, err := src.Open(ctx, 0)
			if err != nil {
				probes[i].err = err
				return
			}
			if probes[i].h, probes[i].err = ReadHeader(rc); probes[i].err != nil {
				rc.Close()
				return
			}
			probes[i].rc = rc
		})
	}
	wg.Wait()
	return probes
}

// pickSet is the set to rebuild: the one asked for when a share of it is
// there, else the one most shares belong to. Shares of any other set are
// bad shares then; with no set in the majority, nothing tells which is
// wanted.
func pickSet(probes []probe, want [16]byte) ([16]byte, error) {
	sets := map[[16]byte][]string{}
	var order [][16]byte
	for _, p := range probes {
		if p.err != nil {
			continue
		}
		if _, ok := sets[p.h.SetID]; !ok {
			order = append(order, p.h.SetID)
		}
		sets[p.h.SetID] = append(sets[p.h.SetID], fileName(p.src))
	}
	if len(sets[want]) > 0 {
		return want, nil
	}
	// Without a share of the set asked for, the set found is rebuilt, and
	// the caller sees from the report that it is not the one it wanted.
	if len(order) == 0 {
		return [16]byte{}, ErrNoShare
	}
	slices.SortStableFunc(order, func(a, b [16]byte) int { return len(sets[b]) - len(sets[a]) })
	if len(order) > 1 && len(sets[order[0]]) == len(sets[order[1]]) {
		var parts []string
		for _, id := range order {
			parts = append(parts, fmt.Sprintf("set %s: %s", SetInfo{SetID: id}.ShortID(), strings.Join(sets[id], ", ")))
		}
		return [16]byte{}, fmt.Errorf("%w, none held by more shares than the others (%s)", ErrMixedSets, strings.Join(parts, "; "))
	}
	return order[0], nil
}

// addShares takes the shares of set whose headers agree, one per index.
func (j *joiner) addShares(probes []probe, set [16]byte) {
	for _, p := range probes {
		if p.err != nil {
			continue
		}
		h, name := p.h, p.src.Name()
		switch {
		case h.SetID != set:
			j.report.Damaged = append(j.report.Damaged, fileName(p.src))
			j.warn("%s: a share of another set (%s), not of set %s; skipped", fileName(p.src), h.ShortID(), j.info.ShortID())
		case !sameInfo(h, j.info):
			j.report.Damaged = append(j.report.Damaged, fileName(p.src))
			j.warn("%s: header disagrees with the other shares of set %s; skipped", fileName(p.src), j.info.ShortID())
		case j.shares[h.Index] != nil:
			j.note("share %d given twice (%s and %s): reading %s", h.Index, j.shares[h.Index].src.Name(), name, j.shares[h.Index].src.Name())
		default:
			j.shares[h.Index] = &share{
				index: h.Index, name: fmt.Sprintf("share %d (%s)", h.Index, name),
				src: p.src, hdrSize: int64(h.Size()), first: p.rc,
			}
		}
	}
}

func (j *joiner) present() []*share {
	var out []*share
	for _, sh := range j.shares {
		if sh != nil {
			out = append(out, sh)
		}
	}
	return out
}

// commonInfo is the parameters most of the headers of set agree on.
func commonInfo(probes []probe, set [16]byte) SetInfo {
	count := map[string]int{}
	best, votes := SetInfo{}, 0
	for _, p := range probes {
		if p.err != nil || p.h.SetID != set {
			continue
		}
		h := p.h
		key := string(h.marshal(magicStream, indexStream))
		count[key]++
		if count[key] > votes {
			best, votes = h.SetInfo, count[key]
		}
	}
	return best
}

func sameInfo(h Header, info SetInfo) bool { return h.SetInfo == info }

// checkCount warns about the missing shares, each in a line of its own
// when they are few or EachMissing asks, and fails early when fewer than K
// are left.
func (j *joiner) checkCount() error {
	var have, missing []string
	for i, sh := range j.shares {
		if sh == nil {
			missing = append(missing, fmt.Sprintf("share %d", i))
		} else {
			have = append(have, sh.name)
		}
	}
	j.report.Missing = append(j.report.Missing, missing...)
	if len(missing) > namedShares+1 && !j.opts.EachMissing {
		j.warn("%d shares of set %s missing: %s", len(missing), j.info.ShortID(), Summary(missing))
	} else {
		for _, name := range missing {
			j.warn("%s of set %s missing", name, j.info.ShortID())
		}
	}
	if len(have) < j.info.K {
		return fmt.Errorf("set %s needs %d of its %d shares, found %d (%s); missing: %s",
			j.info.ShortID(), j.info.K, j.info.N, len(have), Summary(have), Summary(missing))
	}
	return nil
}

// JoinStream rebuilds the stream from a share stream, as bk-split writes
// it, and writes it to w. All shares are in the stream; only the blocks
// needed are checked and decoded, against the records of all shares.
func JoinStream(ctx context.Context, r io.Reader, w io.Writer, opts JoinOptions) (JoinReport, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sr, err := NewStreamReader(r)
	if err != nil {
		return JoinReport{}, err
	}
	info := sr.Info()
	j, err := newJoiner(ctx, info, opts)
	if err != nil {
		return JoinReport{}, err
	}
	if err := j.readStreamHeaders(sr); err != nil {
		return j.report, err
	}
	if err := j.checkCount(); err != nil {
		return j.report, err
	}
	demuxed := make(chan struct{})
	go func() {
		defer close(demuxed)
		j.demux(sr)
	}()
	report, err := j.finish(w, cancel)
	if err == nil {
		// A share that goes on past the end is not read further; the
		// others' end frame still is.
		cancel(nil)
		<-demuxed
		if j.endErr != nil {
			report.Incomplete = j.endErr
			j.warn("%v; the data verified all the same", j.endErr)
		} else if j.streamErr != nil {
			report.Incomplete = j.streamErr
		}
	}
	return report, err
}

// readStreamHeaders reads the header frame of each share.
func (j *joiner) readStreamHeaders(sr *StreamReader) error {
	for i := range j.info.N {
		index, length, err := sr.frame()
		if errors.Is(err, io.EOF) {
			err = errors.New("malformed share stream: it ends before the share headers")
		}
		if err != nil {
			return err
		}
		if index != i || length != sr.hdrSize {
			return fmt.Errorf("malformed share stream: frame for share %d where the header of share %d belongs", index, i)
		}
		p := make([]byte, length)
		if err := sr.payload(p); err != nil {
			return err
		}
		sh := &share{index: i, name: fmt.Sprintf("share %d", i), full: true}
		h, err := ReadHeader(bytes.NewReader(p))
		switch {
		case err != nil:
			j.damaged(sh, 0, err.Error())
		case h.Index != i || !sameInfo(h, j.info):
			j.damaged(sh, 0, "its header disagrees with the stream's")
		default:
			sh.state = stateActive
			sh.items = make(chan *item, 1)
			j.shares[i] = sh
		}
	}
	return nil
}

// demuxer hands each frame of a share stream to its share.
type demuxer struct {
	j       *joiner
	sr      *StreamReader
	pools   []chan []byte
	ended   []bool
	stripe  []int64
	scratch []byte // for the frames of shares not read
}

// demux hands each frame of the stream to its share. Frames come in
// rounds, one per share that has not ended, in index order; anything else
// is a malformed stream.
func (j *joiner) demux(sr *StreamReader) {
	d := &demuxer{j: j, sr: sr, pools: make([]chan []byte, j.info.N),
		ended: make([]bool, j.info.N), stripe: make([]int64, j.info.N)}
	for i := range d.pools {
		d.pools[i] = newPool(poolSize)
	}
	next := 0
	for {
		index, length, err := sr.frame()
		switch {
		case errors.Is(err, io.EOF):
			d.stop(errors.New("share stream ended before the trailers"))
			return
		case err != nil:
			d.stop(err)
			return
		case index != nextOpen(d.ended, next) || length != j.info.RecordSize() && length != TrailerSize:
			d.stop(fmt.Errorf("malformed share stream: frame for share %d out of order", index))
			return
		}
		next = index + 1
		if !d.pass(index, length) {
			return
		}
		if !slices.Contains(d.ended, false) {
			// The trailers said it all, but the end frame tells a
			// complete stream from a cut one.
			if _, _, err := sr.frame(); !errors.Is(err, io.EOF) {
				j.endErr = err
			}
			return
		}
	}
}

// pass reads the payload of a frame of share index and sends it on.
func (d *demuxer) pass(index, length int) bool {
	j := d.j
	sh := j.shares[index]
	var buf []byte
	var pool chan []byte
	if sh == nil {
		if d.scratch == nil {
			d.scratch = make([]byte, j.info.RecordSize())
		}
		buf = d.scratch
	} else {
		pool = d.pools[index]
		select {
		case buf = <-pool:
		case <-j.ctx.Done():
			return false
		}
		if buf == nil {
			buf = make([]byte, j.info.RecordSize())
		}
	}
	if err := d.sr.payload(buf[:length]); err != nil {
		d.stop(err)
		return false
	}
	it := &item{buf: buf, pool: pool, full: true}
	if length == TrailerSize {
		classify(it, buf, j.info, d.stripe[index], TrailerSize, io.ErrUnexpectedEOF)
		d.ended[index] = true
		it.release()
	} else {
		it.kind = kindRecord
	}
	d.stripe[index]++
	return sh == nil || d.send(sh, it)
}

func (d *demuxer) send(sh *share, it *item) bool {
	select {
	case sh.items <- it:
		return true
	case <-d.j.ctx.Done():
		it.release()
		return false
	}
}

// stop tells every share that has not ended that the stream broke off.
func (d *demuxer) stop(err error) {
	d.j.streamErr = err
	for i, sh := range d.j.shares {
		if sh != nil && !d.ended[i] && !d.send(sh, &item{kind: kindBad, err: err}) {
			return
		}
	}
}

// nextOpen is the index of the next share that has not ended, from i on,
// wrapping around.
func nextOpen(ended []bool, i int) int {
	for k := range ended {
		if x := (i + k) % len(ended); !ended[x] {
			return x
		}
	}
	return -1
}
