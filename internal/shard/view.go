package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// How a stripe is decided (docs/FORMAT.md, "Reading shares"): a view is K
// blocks whose shares' records all name each of those blocks. A view that
// holds one honest share decodes to the true stripe, since that share's
// record pins every block of the view; so fewer than K dishonest shares
// cannot make a false view, and with K or more, their view and the honest
// one differ and both are refused. Blocks are read from K shares and the
// records of all reachable ones: while all records agree, the K blocks
// that match them are the view, which costs no more than reading them.

// decision is what a stripe turned out to be.
type decision struct {
	end     bool
	trailer Trailer
	good    []int // indices of the K blocks that rebuild the stripe
}

// decide reads stripe s from the reachable shares, reading more blocks
// until it is sure what the stripe holds.
func (j *joiner) decide(s int64) (decision, error) {
	for {
		recs, trls, err := j.gather(s)
		if err != nil {
			return decision{}, err
		}
		v := j.findView(s, recs)
		if len(v.want) > 0 {
			j.readBlocks(s, v.want)
			continue
		}
		return j.conclude(s, recs, trls, v)
	}
}

// readBlocks has the blocks of shs read from stripe s on.
func (j *joiner) readBlocks(s int64, shs []*share) {
	if j.fetch != nil {
		j.fetch(s, shs)
		return
	}
	for _, sh := range shs {
		j.reopen(sh, s, true)
	}
}

// gather waits for what every active share holds at stripe s.
func (j *joiner) gather(s int64) (recs, trls []*share, err error) {
	for _, sh := range j.shares {
		if sh == nil || sh.state != stateActive {
			continue
		}
		if sh.cur == nil {
			select {
			case it, ok := <-sh.items:
				if !ok {
					it = &item{kind: kindBad, err: context.Cause(j.ctx)}
				}
				sh.cur = it
			case <-j.ctx.Done():
				return nil, nil, context.Cause(j.ctx)
			}
		}
		switch sh.cur.kind {
		case kindRecord:
			recs = append(recs, sh)
		case kindTrailer:
			trls = append(trls, sh)
		case kindBad:
			if outOfFiles(sh.cur.err) {
				return nil, nil, openFilesError(sh.cur.err, len(j.present()))
			}
			if sh.why == "" {
				sh.why = sh.cur.err.Error()
				j.damaged(sh, s, sh.why)
			}
		}
	}
	return recs, trls, nil
}

// view is what the records and blocks of a stripe support.
type view struct {
	good []int    // K blocks that rebuild the stripe, ascending
	want []*share // shares whose blocks must be read first
	err  error    // two views that differ: both refused
}

// findView looks for a view among the shares that hold a record at s.
func (j *joiner) findView(s int64, recs []*share) view {
	if len(recs) == 0 {
		return view{}
	}
	first := recs[0].cur.checksums(j.info)
	for _, sh := range recs[1:] {
		if !bytes.Equal(sh.cur.checksums(j.info), first) {
			return j.contestedView(s, recs)
		}
	}
	return j.agreedView(s, recs)
}

// agreedView is the common case: all records of the stripe agree, so K
// blocks that match them are a view, and no other view can differ.
func (j *joiner) agreedView(s int64, recs []*share) view {
	var good []int
	var read, unread []*share
	for _, sh := range recs {
		if sh.cur.full {
			read = append(read, sh)
		} else {
			unread = append(unread, sh)
		}
	}
	for next := 0; len(good) < j.info.K && next < len(read); {
		batch := read[next:min(len(read), next+j.info.K-len(good))]
		next += len(batch)
		j.hash(s, batch)
		for _, sh := range batch {
			if sh.cur.sum == sh.cur.names(j.info, sh.index) {
				good = append(good, sh.index)
			} else {
				sh.cur.bad = true
			}
		}
	}
	if len(good) >= j.info.K {
		slices.Sort(good)
		return view{good: good}
	}
	unread = preferred(unread)
	return view{want: unread[:min(len(unread), j.info.K-len(good))]}
}

// contestedView handles a stripe whose records disagree: it reads every
// block, finds the views each group of agreeing records supports, and
// takes one only if all of them decode to the same stripe.
func (j *joiner) contestedView(s int64, recs []*share) view {
	var unread []*share
	for _, sh := range recs {
		if !sh.cur.full {
			unread = append(unread, sh)
		}
	}
	if len(unread) > 0 {
		return view{want: unread}
	}
	j.hash(s, recs)
	var views [][]*share
	for _, g := range groupRecords(j.info, recs) {
		if c := j.clique(g, recs); len(c) >= j.info.K && !slices.ContainsFunc(views, func(v []*share) bool { return sameShares(v, c) }) {
			views = append(views, c)
		}
	}
	if len(views) == 0 {
		for _, sh := range recs {
			sh.cur.bad = sh.cur.sum != sh.cur.names(j.info, sh.index)
		}
		return view{}
	}
	base := views[0][:j.info.K]
	stripe, err := j.codeword(base)
	if err != nil {
		return view{err: err}
	}
	for _, v := range views[1:] {
		for _, sh := range v {
			if !bytes.Equal(sh.cur.block(j.info), stripe[sh.index]) {
				a, b := j.apart(indices(views[0]), indices(v))
				return view{err: fmt.Errorf("stripe %d: %s and %s each hold a consistent version of it, and the two differ; refusing both",
					s, a, b)}
			}
		}
	}
	j.blame(recs, stripe)
	return view{good: slices.Sorted(slices.Values(indices(base)))}
}

// blame marks, after a contested stripe was decided, the blocks that are
// not the stripe's and the records that name another checksum for a block
// that is.
func (j *joiner) blame(recs []*share, stripe [][]byte) {
	var right []*share
	for _, sh := range recs {
		if sh.cur.bad = !bytes.Equal(sh.cur.block(j.info), stripe[sh.index]); !sh.cur.bad {
			right = append(right, sh)
		}
	}
	for _, sh := range recs {
		sh.cur.badRecord = slices.ContainsFunc(right, func(r *share) bool { return sh.cur.names(j.info, r.index) != r.cur.sum })
	}
}

// groupRecords returns, for each distinct record among recs, the shares
// that hold it, the largest group first.
func groupRecords(info SetInfo, recs []*share) [][]*share {
	var groups [][]*share
	for _, sh := range recs {
		k := slices.IndexFunc(groups, func(g []*share) bool {
			return bytes.Equal(g[0].cur.checksums(info), sh.cur.checksums(info))
		})
		if k < 0 {
			groups = append(groups, []*share{sh})
		} else {
			groups[k] = append(groups[k], sh)
		}
	}
	slices.SortStableFunc(groups, func(a, b []*share) int { return len(b) - len(a) })
	return groups
}

// clique is the largest set of blocks, built greedily from the group's
// own, then the others' that its record names, in which each share's
// record names every block of the set.
func (j *joiner) clique(group, recs []*share) []*share {
	claim := group[0].cur
	var cands []*share
	for _, sh := range group {
		if sh.cur.sum == claim.names(j.info, sh.index) {
			cands = append(cands, sh)
		}
	}
	for _, sh := range recs {
		if !slices.Contains(group, sh) && sh.cur.sum == claim.names(j.info, sh.index) && sh.cur.sum == sh.cur.names(j.info, sh.index) {
			cands = append(cands, sh)
		}
	}
	var c []*share
	for _, x := range cands {
		if !slices.ContainsFunc(c, func(v *share) bool {
			return x.cur.names(j.info, v.index) != v.cur.sum || v.cur.names(j.info, x.index) != x.cur.sum
		}) {
			c = append(c, x)
		}
	}
	return c
}

// codeword decodes all N blocks of the stripe from the K blocks of base.
func (j *joiner) codeword(base []*share) ([][]byte, error) {
	blocks := make([][]byte, j.info.N)
	for _, sh := range base {
		blocks[sh.index] = sh.cur.block(j.info)
	}
	if err := j.enc.Reconstruct(blocks); err != nil {
		return nil, err
	}
	return blocks, nil
}

func indices(shs []*share) []int {
	out := make([]int, len(shs))
	for i, sh := range shs {
		out[i] = sh.index
	}
	return out
}

func sameShares(a, b []*share) bool {
	return slices.Equal(slices.Sorted(slices.Values(indices(a))), slices.Sorted(slices.Values(indices(b))))
}

// names lists shares by index for messages, with where each one is.
func (j *joiner) names(idx []int) string {
	var parts []string
	for k, i := range slices.Sorted(slices.Values(idx)) {
		name := j.shares[i].name
		if k > 0 {
			name = strings.TrimPrefix(name, "share ")
		}
		parts = append(parts, name)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "shares " + strings.TrimPrefix(strings.Join(parts, ", "), "share ")
}

// says is the verb for what the shares of idx hold.
func says(idx []int) string {
	if len(idx) == 1 {
		return "says"
	}
	return "say"
}

// apart names the shares of two views that are not in both, the ones
// that disagree.
func (j *joiner) apart(a, b []int) (string, string) {
	onlyA := slices.DeleteFunc(slices.Clone(a), func(i int) bool { return slices.Contains(b, i) })
	onlyB := slices.DeleteFunc(slices.Clone(b), func(i int) bool { return slices.Contains(a, i) })
	if len(onlyA) == 0 || len(onlyB) == 0 {
		return j.names(a), j.names(b)
	}
	return j.names(onlyA), j.names(onlyB)
}

// conclude decides stripe s from its view and the trailers found there.
func (j *joiner) conclude(s int64, recs, trls []*share, v view) (decision, error) {
	if v.err != nil {
		return decision{}, v.err
	}
	e := j.ending(s, trls)
	switch {
	case e.err != nil:
		return decision{}, e.err
	case v.good != nil && e.strong:
		return decision{}, fmt.Errorf("stripe %d: %s end there with a trailer the data confirms, while %s go on with a consistent stripe; refusing both",
			s, j.names(indices(e.group)), j.names(v.good))
	case v.good != nil:
		for _, sh := range recs {
			switch {
			case sh.cur.bad:
				j.damaged(sh, s, "its block does not match the checksums the other shares keep of it")
			case sh.cur.badRecord:
				j.damaged(sh, s, "its checksums of the other shares' blocks are wrong")
			}
		}
		for _, sh := range trls {
			j.damaged(sh, s, "it ends before the others do")
		}
		return decision{good: v.good}, nil
	case e.found:
		for _, sh := range append(recs, trls...) {
			switch {
			case sh.cur.kind == kindRecord:
				j.damaged(sh, s, "it does not end where the others do")
			case sh.cur.trailer != e.trailer:
				j.damaged(sh, s, "its trailer does not match the rebuilt stream")
			}
			sh.cur.release()
		}
		return decision{end: true, trailer: e.trailer}, nil
	case len(trls) > len(recs):
		return decision{}, errors.New("the rebuilt stream does not match the checksum in any share's trailer")
	}
	return decision{}, j.failure(s, recs)
}

// ending is the trailer that ends the stream at stripe s, if any.
type ending struct {
	trailer Trailer
	group   []*share // the shares that hold it
	found   bool
	strong  bool // K or more shares hold it
	err     error
}

// ending picks, among the trailers found at stripe s, the one the rebuilt
// data confirms (its stream hash, its stripe count, zeros past its
// length). Anyone holding a share can write a trailer that the stream hash
// confirms for another length of the same stripe count, so where several
// are confirmed, the one that K or more shares hold is taken, and two
// such are both refused.
func (j *joiner) ending(s int64, trls []*share) ending {
	var confirmed [][]*share
	for _, sh := range trls {
		t := sh.cur.trailer
		if !j.confirms(s, t) {
			continue
		}
		k := slices.IndexFunc(confirmed, func(g []*share) bool { return g[0].cur.trailer == t })
		if k < 0 {
			confirmed = append(confirmed, []*share{sh})
		} else {
			confirmed[k] = append(confirmed[k], sh)
		}
	}
	var strong [][]*share
	for _, g := range confirmed {
		if len(g) >= j.info.K {
			strong = append(strong, g)
		}
	}
	pick := func(g []*share, strong bool) ending {
		return ending{trailer: g[0].cur.trailer, group: g, found: true, strong: strong}
	}
	switch {
	case len(strong) == 1:
		return pick(strong[0], true)
	case len(confirmed) == 1:
		return pick(confirmed[0], false)
	case len(confirmed) > 1:
		var parts []string
		for _, g := range confirmed {
			parts = append(parts, fmt.Sprintf("%s %s %d bytes", j.names(indices(g)), says(indices(g)), g[0].cur.trailer.Length))
		}
		return ending{err: fmt.Errorf("the shares' trailers disagree on the stream's length and the data confirms each (%s); refusing all",
			strings.Join(parts, "; "))}
	}
	return ending{}
}

// confirms reports whether t fits the stream rebuilt before stripe s.
func (j *joiner) confirms(s int64, t Trailer) bool {
	if t.Stripes != s || !j.stream.matches(t) {
		return false
	}
	pad := s*j.info.StripeSize() - t.Length
	for i := len(j.last) - 1; i >= 0 && pad > 0; i-- {
		b := j.last[i]
		n := min(int64(len(b)), pad)
		if slices.ContainsFunc(b[int64(len(b))-n:], func(c byte) bool { return c != 0 }) {
			return false
		}
		pad -= n
	}
	return true
}

// failure explains why stripe s cannot be rebuilt: how many good blocks
// it had, and what was wrong with each other share.
func (j *joiner) failure(s int64, recs []*share) error {
	if j.streamErr != nil {
		return j.streamErr
	}
	var good []int
	for _, sh := range recs {
		if sh.cur.hashed && !sh.cur.bad {
			good = append(good, sh.index)
		}
	}
	var bad []string
	for i, sh := range j.shares {
		switch {
		case slices.Contains(good, i):
		case sh == nil:
			bad = append(bad, fmt.Sprintf("share %d missing", i))
		case sh.state == stateDead || sh.cur != nil && sh.cur.kind == kindBad:
			bad = append(bad, fmt.Sprintf("%s %s", sh.name, sh.why))
		case sh.cur != nil && sh.cur.kind == kindRecord:
			bad = append(bad, sh.name+" damaged")
		case sh.cur != nil && sh.cur.kind == kindTrailer:
			bad = append(bad, sh.name+" ends early")
		default:
			bad = append(bad, sh.name+" not readable")
		}
	}
	return fmt.Errorf("cannot rebuild stripe %d: it needs %d good blocks, found %d (%s)",
		s, j.info.K, len(good), strings.Join(bad, "; "))
}
