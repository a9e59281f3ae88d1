package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Errors of Join that a caller may want to explain.
var (
	ErrMixedSets = errors.New("shares of different sets mixed")
	ErrNoShare   = errors.New("no bk share among the sources")
)

// Join rebuilds the stream from stored shares and writes it to w. It reads
// the header of every source, then only K shares (data shares first, which
// need no decoding); a stripe whose blocks do not all verify makes it open
// another share at that stripe. w receives only verified data: on failure
// it holds a prefix of whole stripes of the stream.
func Join(ctx context.Context, sources []Source, w io.Writer, opts JoinOptions) (JoinReport, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	probes := make([]probe, len(sources))
	var wg sync.WaitGroup
	for i, src := range sources {
		wg.Go(func() {
			rc, err := src.Open(ctx, 0)
			if err != nil {
				probes[i].err = err
				return
			}
			defer rc.Close()
			probes[i].h, probes[i].err = ReadHeader(rc)
		})
	}
	wg.Wait()

	warn := func(format string, args ...any) {
		if opts.Warn != nil {
			opts.Warn(format, args...)
		}
	}
	var report JoinReport
	var valid []int
	sets := map[[16]byte][]string{}
	var setOrder [][16]byte
	for i, p := range probes {
		if p.err != nil {
			name := sources[i].Name()
			if errors.Is(p.err, ErrNotShare) || errors.Is(p.err, ErrIsStream) {
				warn("%s: %v; skipped", name, p.err)
			} else {
				warn("%s: %v", name, p.err)
				report.Damaged = append(report.Damaged, name)
			}
			continue
		}
		if _, ok := sets[p.h.SetID]; !ok {
			setOrder = append(setOrder, p.h.SetID)
		}
		sets[p.h.SetID] = append(sets[p.h.SetID], sources[i].Name())
		valid = append(valid, i)
	}
	if len(sets) > 1 {
		var parts []string
		for _, id := range setOrder {
			parts = append(parts, fmt.Sprintf("set %s: %s", SetInfo{SetID: id}.ShortID(), strings.Join(sets[id], ", ")))
		}
		return report, fmt.Errorf("%w (%s)", ErrMixedSets, strings.Join(parts, "; "))
	}
	if len(valid) == 0 {
		return report, ErrNoShare
	}

	info := commonInfo(probes, valid)
	j, err := newJoiner(ctx, info, opts)
	if err != nil {
		return report, err
	}
	j.report.Damaged = report.Damaged
	for _, i := range valid {
		h, name := probes[i].h, sources[i].Name()
		switch {
		case !sameInfo(h, info):
			j.report.Damaged = append(j.report.Damaged, name)
			j.warn("%s: header disagrees with the other shares of set %s; skipped", name, info.ShortID())
		case j.shares[h.Index] != nil:
			j.note("share %d given twice (%s and %s): reading %s", h.Index, j.shares[h.Index].src.Name(), name, j.shares[h.Index].src.Name())
		default:
			j.shares[h.Index] = &share{
				index: h.Index, name: fmt.Sprintf("share %d (%s)", h.Index, name),
				src: sources[i], hdrSize: int64(h.Size()),
			}
		}
	}
	if err := j.checkCount(); err != nil {
		return j.report, err
	}
	for _, sh := range j.shares {
		if sh != nil && j.active() < j.need() {
			j.start(sh, 0)
		}
	}
	return j.finish(w, cancel)
}

// probe is what reading a source's header found.
type probe struct {
	h   Header
	err error
}

// commonInfo is the set parameters most of the valid headers agree on.
func commonInfo(probes []probe, valid []int) SetInfo {
	count := map[string]int{}
	best, votes := SetInfo{}, 0
	for _, i := range valid {
		h := probes[i].h
		key := string(h.marshal(magicStream, indexStream))
		count[key]++
		if count[key] > votes {
			best, votes = h.SetInfo, count[key]
		}
	}
	return best
}

func sameInfo(h Header, info SetInfo) bool { return h.SetInfo == info }

func (j *joiner) active() int {
	n := 0
	for _, sh := range j.shares {
		if sh != nil && sh.state == stateActive {
			n++
		}
	}
	return n
}

// checkCount warns about each missing share and fails early when fewer
// than K are left.
func (j *joiner) checkCount() error {
	var have, missing []string
	for i, sh := range j.shares {
		if sh == nil {
			name := fmt.Sprintf("share %d", i)
			missing = append(missing, name)
			j.report.Missing = append(j.report.Missing, name)
			j.warn("%s of set %s missing", name, j.info.ShortID())
		} else {
			have = append(have, sh.name)
		}
	}
	if len(have) < j.info.K {
		return fmt.Errorf("set %s needs %d of its %d shares, found %d (%s); missing: %s",
			j.info.ShortID(), j.info.K, j.info.N, len(have), strings.Join(have, ", "), strings.Join(missing, ", "))
	}
	return nil
}

// JoinStream rebuilds the stream from a share stream, as bk-split writes
// it, and writes it to w. All shares are in the stream; only the blocks
// needed are checked and decoded.
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
	for i := range info.N {
		index, length, err := sr.frame()
		if errors.Is(err, io.EOF) {
			err = errors.New("malformed share stream: it ends before the share headers")
		}
		if err != nil {
			return j.report, err
		}
		if index != i || length != sr.hdrSize {
			return j.report, fmt.Errorf("malformed share stream: frame for share %d where the header of share %d belongs", index, i)
		}
		p := make([]byte, length)
		if err := sr.payload(p); err != nil {
			return j.report, err
		}
		sh := &share{index: i, name: fmt.Sprintf("share %d", i)}
		h, err := ReadHeader(bytes.NewReader(p))
		switch {
		case err != nil:
			j.damaged(sh, 0, err.Error())
		case h.Index != i || !sameInfo(h, info):
			j.damaged(sh, 0, "its header disagrees with the stream's")
		default:
			sh.state = stateActive
			sh.items = make(chan *item, 1)
			j.shares[i] = sh
		}
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
			j.warn("%v; the data verified all the same", j.endErr)
		}
	}
	return report, err
}

// demux hands each frame of the stream to its share. Frames come in
// rounds, one per share that has not ended, in index order; anything else
// is a malformed stream.
func (j *joiner) demux(sr *StreamReader) {
	info := j.info
	pools := make([]chan []byte, info.N)
	for i := range pools {
		pools[i] = newPool()
	}
	ended := make([]bool, info.N)
	stripe := make([]int64, info.N)
	var scratch []byte // for the frames of shares not read
	send := func(sh *share, it *item) bool {
		select {
		case sh.items <- it:
			return true
		case <-j.ctx.Done():
			it.release()
			return false
		}
	}
	stop := func(err error) {
		j.streamErr = err
		for i, sh := range j.shares {
			if sh != nil && !ended[i] {
				if !send(sh, &item{kind: kindBad, err: err}) {
					return
				}
			}
		}
	}
	next := 0
	for {
		index, length, err := sr.frame()
		if errors.Is(err, io.EOF) {
			stop(errors.New("share stream ended before the trailers"))
			return
		}
		if err != nil {
			stop(err)
			return
		}
		want := nextOpen(ended, next)
		if index != want || length != info.RecordSize() && length != TrailerSize {
			stop(fmt.Errorf("malformed share stream: frame for share %d out of order", index))
			return
		}
		next = index + 1
		sh := j.shares[index]
		var buf []byte
		var pool chan []byte
		if sh == nil {
			if scratch == nil {
				scratch = make([]byte, info.RecordSize())
			}
			buf = scratch
		} else {
			pool = pools[index]
			select {
			case buf = <-pool:
			case <-j.ctx.Done():
				return
			}
			if buf == nil {
				buf = make([]byte, info.RecordSize())
			}
		}
		if err := sr.payload(buf[:length]); err != nil {
			stop(err)
			return
		}
		it := &item{buf: buf, pool: pool}
		if length == TrailerSize {
			classify(it, info, stripe[index], TrailerSize, io.ErrUnexpectedEOF)
			ended[index] = true
			it.release()
		} else {
			it.kind = kindRecord
		}
		stripe[index]++
		if sh != nil && !send(sh, it) {
			return
		}
		if !slices.Contains(ended, false) {
			// The trailers said it all, but the end frame tells a
			// complete stream from a cut one.
			if _, _, err := sr.frame(); !errors.Is(err, io.EOF) {
				j.endErr = err
			}
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
