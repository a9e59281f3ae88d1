package shard

import (
	"fmt"
	"io"
	"maps"
	"slices"
)

// A share is regenerated from what the join has verified anyway: each
// stripe's data blocks (read, or decoded and matched against a record) and
// their checksums, and the parity blocks it read. Only parity blocks it
// did not read are encoded and hashed here: with k=2 n=3 and a share lost,
// none, where splitting the stream again hashed all N blocks.

// regenerator writes the shares JoinOptions.Regenerate asks for.
type regenerator struct {
	info    SetInfo
	indices []int // ascending
	writers []io.Writer
	pool    chan []byte // record buffers
}

func newRegenerator(info SetInfo, ws map[int]io.Writer) regenerator {
	r := regenerator{info: info, indices: slices.Sorted(maps.Keys(ws))}
	for _, i := range r.indices {
		r.writers = append(r.writers, ws[i])
	}
	// Two stripes in flight (the one held back, the next), and one
	// being built.
	r.pool = make(chan []byte, 3*len(r.indices))
	return r
}

// check refuses an index that is not one of the set's shares.
func (r regenerator) check() error {
	for _, i := range r.indices {
		if i < 0 || i >= r.info.N {
			return fmt.Errorf("cannot regenerate share %d of a set of %d", i, r.info.N)
		}
	}
	return nil
}

func (r regenerator) headers() error {
	for k, i := range r.indices {
		if _, err := r.writers[k].Write(Header{SetInfo: r.info, Index: i}.Marshal()); err != nil {
			return err
		}
	}
	return nil
}

func (r regenerator) records(o *outStripe) error {
	for k, rec := range o.records {
		if _, err := r.writers[k].Write(rec); err != nil {
			return err
		}
	}
	return nil
}

func (r regenerator) trailers(t Trailer) error {
	if len(r.indices) == 0 {
		return nil
	}
	tb := t.Marshal(r.info.SetID)
	for _, w := range r.writers {
		if _, err := w.Write(tb); err != nil {
			return err
		}
	}
	return nil
}

func (r regenerator) release(o *outStripe) {
	for _, rec := range o.records {
		if rec == nil {
			continue
		}
		select {
		case r.pool <- rec:
		default:
		}
	}
	o.records = nil
}

// blockBuffer is an empty buffer with room for block i of the stripe o
// is, for the decoder to fill: when share i is regenerated, its record's,
// so that the block is decoded in place and not copied there afterwards
// (a quarter of a GiB at each lost share of a 1 GiB backup, k=2); else a
// spare block.
func (j *joiner) blockBuffer(o *outStripe, i int) []byte {
	if k := slices.Index(j.regen.indices, i); k >= 0 {
		if o.records == nil {
			o.records = make([][]byte, len(j.regen.indices))
		}
		if o.records[k] == nil {
			o.records[k] = j.regen.record()
		}
		return o.records[k][:0]
	}
	var b []byte
	select {
	case b = <-j.spares:
	default:
		b = make([]byte, j.info.BlockSize)
	}
	o.spares = append(o.spares, b)
	return b[:0]
}

// record is a buffer for one record of a share regenerated.
func (r regenerator) record() []byte {
	select {
	case rec := <-r.pool:
		return rec
	default:
		return make([]byte, r.info.RecordSize())
	}
}

// regenerate builds the records of stripe s of the shares asked for, from
// the stripe's blocks (shards: the data blocks, and the blocks of good as
// read) and their checksums: the ones the join computed, and those of the
// parity blocks it did not read, encoded and hashed here. No record's word
// is taken for any of them, so the share is the one bk-split made of the
// stream the join verified.
func (j *joiner) regenerate(o *outStripe, s int64, shards [][]byte, good []int) error {
	if len(j.regen.indices) == 0 {
		return nil
	}
	info := j.info
	sums := make([]byte, info.N*HashSize)
	copy(sums, o.sums)
	for _, g := range good {
		copy(sums[g*HashSize:], j.shares[g].cur.sum[:])
	}
	required := make([]bool, info.N)
	var encode []int
	for i := info.K; i < info.N; i++ {
		if shards[i] != nil {
			continue
		}
		shards[i], required[i] = j.blockBuffer(o, i), true
		encode = append(encode, i)
	}
	if len(encode) > 0 {
		if err := j.enc.ReconstructSome(shards, required); err != nil {
			return err
		}
		together(len(encode), func(k int) {
			i := encode[k]
			sum := BlockHash(info.SetID, s, i, shards[i])
			copy(sums[i*HashSize:], sum[:])
		})
	}
	if o.records == nil {
		o.records = make([][]byte, len(j.regen.indices))
	}
	for k, i := range j.regen.indices {
		if o.records[k] == nil {
			o.records[k] = j.regen.record()
			copy(o.records[k], shards[i])
		}
		copy(o.records[k][info.BlockSize:], sums)
	}
	return nil
}
