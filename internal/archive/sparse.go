package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// A sparse file (one with holes that SEEK_HOLE finds) is stored in the GNU
// PAX sparse format 1.0, which GNU tar writes with --sparse and every tar
// since 1.19 reads: the content is a map of its data regions followed by
// those regions only. Section 1 of docs/FORMAT.md describes it. Go's
// archive/tar reads it but cannot write it, so its headers are made here.

// region is a run of data in a sparse file; what lies between regions is a
// hole (zeros).
type region struct{ off, len int64 }

// maxSparseRegions bounds the map kept in memory and written before the
// data (26 bytes a region at most, well below the 1 MiB that readers such
// as Go's accept); a file with more regions is stored whole.
const maxSparseRegions = 16 << 10

// Header fields of the ustar block, and the largest values they hold.
const (
	blockLen   = 512
	nameLen    = 100
	ownerLen   = 32
	maxOctal7  = 1<<21 - 1 // mode, uid, gid: 7 octal digits
	maxOctal11 = 1<<33 - 1 // size, mtime: 11 octal digits
	sparseDir  = "GNUSparseFile.0"
	paxDir     = "PaxHeaders.0"
)

// sparseMap is the start of a sparse entry's content: the number of
// regions, then the offset and length of each, in decimal, one number a
// line, padded with zeros to a block. A file that ends in a hole gets a
// last region of length 0 at its size, as GNU tar writes it.
func sparseMap(regions []region, size int64) []byte {
	if n := len(regions); n == 0 || regions[n-1].off+regions[n-1].len < size {
		regions = append(slices.Clip(regions), region{size, 0})
	}
	b := strconv.AppendInt(nil, int64(len(regions)), 10)
	b = append(b, '\n')
	for _, r := range regions {
		b = strconv.AppendInt(b, r.off, 10)
		b = append(b, '\n')
		b = strconv.AppendInt(b, r.len, 10)
		b = append(b, '\n')
	}
	return append(b, make([]byte, padLen(int64(len(b))))...)
}

func padLen(n int64) int64 { return -n & (blockLen - 1) }

// sparseHeader returns the header blocks of a sparse entry: a PAX extended
// header carrying the GNU.sparse records and what else h needs (nanosecond
// mtime, extended attributes, long or non-ASCII names, big ids), then a
// ustar header whose size is stored, the length of map and data together.
// Its name, dir/GNUSparseFile.0/base, is what a tar without sparse support
// extracts the stored form to.
func sparseHeader(h *tar.Header, size, stored int64) []byte {
	recs := map[string]string{
		"GNU.sparse.major":    "1",
		"GNU.sparse.minor":    "0",
		"GNU.sparse.name":     h.Name,
		"GNU.sparse.realsize": strconv.FormatInt(size, 10),
	}
	for k, v := range h.PAXRecords {
		recs[k] = v
	}
	if ns := h.ModTime.Nanosecond(); ns != 0 || h.ModTime.Unix() < 0 || h.ModTime.Unix() > maxOctal11 {
		recs["mtime"] = paxTime(h.ModTime.Unix(), ns)
	}
	if h.Uid > maxOctal7 {
		recs["uid"] = strconv.Itoa(h.Uid)
	}
	if h.Gid > maxOctal7 {
		recs["gid"] = strconv.Itoa(h.Gid)
	}
	if !fitsField(h.Uname, ownerLen) {
		recs["uname"] = h.Uname
	}
	if !fitsField(h.Gname, ownerLen) {
		recs["gname"] = h.Gname
	}
	if stored > maxOctal11 {
		recs["size"] = strconv.FormatInt(stored, 10)
	}
	var data []byte
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		data = append(data, paxRecord(k, recs[k])...)
	}

	dir, base := path.Split(h.Name)
	name := shortName(dir, sparseDir, base)
	x := ustarBlock(&tar.Header{Name: shortName(dir, paxDir, path.Join(sparseDir, base)), Mode: 0o644}, tar.TypeXHeader, int64(len(data)))
	x = append(x, data...)
	x = append(x, make([]byte, padLen(int64(len(data))))...)
	main := *h
	main.Name = name
	return append(x, ustarBlock(&main, tar.TypeReg, stored)...)
}

// shortName joins dir/sub/base and, if that does not fit a ustar name,
// drops dir and cuts base: the real name is in the PAX records.
func shortName(dir, sub, base string) string {
	if name := dir + sub + "/" + base; len(name) <= nameLen {
		return name
	}
	return sub + "/" + base[:min(len(base), nameLen-len(sub)-1)]
}

func fitsField(s string, n int) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ustarBlock encodes one ustar header block. Fields that do not fit are
// left zero (or empty): the PAX header before it carries them.
func ustarBlock(h *tar.Header, typeflag byte, size int64) []byte {
	b := make([]byte, blockLen)
	copy(b[0:nameLen], h.Name)
	octal(b[100:108], h.Mode)
	octal(b[108:116], int64(h.Uid))
	octal(b[116:124], int64(h.Gid))
	octal(b[124:136], size)
	octal(b[136:148], h.ModTime.Unix())
	b[156] = typeflag
	copy(b[257:265], "ustar\x0000")
	if fitsField(h.Uname, ownerLen) {
		copy(b[265:297], h.Uname)
	}
	if fitsField(h.Gname, ownerLen) {
		copy(b[297:329], h.Gname)
	}
	octal(b[329:337], 0)
	octal(b[337:345], 0)
	setChecksum(b)
	return b
}

// setChecksum fills in a header block's checksum: the sum of its bytes,
// the checksum field counted as spaces.
func setChecksum(b []byte) {
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// octal fills a numeric field: zero-padded octal digits and a NUL; a value
// that does not fit (or is negative) is written as 0.
func octal(field []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	if v < 0 || len(s) > len(field)-1 {
		s = "0"
	}
	copy(field, strings.Repeat("0", len(field)-1-len(s))+s)
	field[len(field)-1] = 0
}

// paxRecord formats "LEN key=value\n", LEN counting the whole record.
func paxRecord(k, v string) string {
	size := len(k) + len(v) + 3
	size += len(strconv.Itoa(size))
	rec := strconv.Itoa(size) + " " + k + "=" + v + "\n"
	if len(rec) != size { // the length gained a digit
		rec = strconv.Itoa(len(rec)) + " " + k + "=" + v + "\n"
	}
	return rec
}

// paxTime formats a time as PAX does: seconds, and a fraction when there
// are nanoseconds.
func paxTime(secs int64, nsecs int) string {
	if nsecs == 0 {
		return strconv.FormatInt(secs, 10)
	}
	sign := ""
	if secs < 0 {
		sign, secs, nsecs = "-", -(secs + 1), 1e9-nsecs
	}
	return strings.TrimRight(fmt.Sprintf("%s%d.%09d", sign, secs, nsecs), "0")
}

// holeBlock is the unit of a restored hole: a run of whole, aligned 4 KiB
// blocks of zeros is not written, so the file system leaves a hole there.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// holeWriter writes a new file's content, leaving runs of zero blocks as
// holes, as cp --sparse=always does. Data is gathered into runs of up to
// holeFlush bytes, so a small file takes one write; Close sets the size only
// when the file ends in a hole, which no write would cover.
type holeWriter struct {
	f    restoredFile
	at   int64  // the offset of pend: everything before it is written or a hole
	pend []byte // not yet written: whole data blocks, then the start of a block
	end  int64  // where the written data ends
}

// holeFlush is the most data a holeWriter holds before writing it.
const holeFlush = 64 << 10

func (w *holeWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(w.pend) == 0 && len(p) >= holeFlush {
		// Big writes go straight through, with no copy.
		whole := len(p) / holeBlock * holeBlock
		if err := w.put(p[:whole]); err != nil {
			return 0, err
		}
		p = p[whole:]
	}
	for len(p) > 0 {
		start := len(w.pend) / holeBlock * holeBlock // the block being filled
		k := min(len(p), start+holeBlock-len(w.pend))
		w.pend = append(w.pend, p[:k]...)
		p = p[k:]
		if len(w.pend)-start < holeBlock {
			break
		}
		if bytes.Equal(w.pend[start:], zeroBlock[:]) {
			if err := w.write(w.pend[:start]); err != nil {
				return 0, err
			}
			w.at += holeBlock
			w.pend = w.pend[:0]
		} else if len(w.pend) >= holeFlush {
			if err := w.write(w.pend); err != nil {
				return 0, err
			}
			w.pend = w.pend[:0]
		}
	}
	return n, nil
}

// put writes whole blocks, skipping the zero ones.
func (w *holeWriter) put(p []byte) error {
	for len(p) > 0 {
		data := 0
		for data < len(p) && !bytes.Equal(p[data:data+holeBlock], zeroBlock[:]) {
			data += holeBlock
		}
		if err := w.write(p[:data]); err != nil {
			return err
		}
		p = p[data:]
		zeros := 0
		for zeros < len(p) && bytes.Equal(p[zeros:zeros+holeBlock], zeroBlock[:]) {
			zeros += holeBlock
		}
		w.at += int64(zeros)
		p = p[zeros:]
	}
	return nil
}

// write writes data at the current offset and moves past it.
func (w *holeWriter) write(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(data, w.at); err != nil {
		return err
	}
	w.at += int64(len(data))
	w.end = w.at
	return nil
}

// Close writes what is pending, but for a last partial block of zeros, and
// sets the size if the file ends in a hole.
func (w *holeWriter) Close() error {
	size := w.at + int64(len(w.pend))
	data := w.pend
	if start := len(data) / holeBlock * holeBlock; bytes.Equal(data[start:], zeroBlock[:len(data)-start]) {
		data = data[:start]
	}
	err := w.write(data)
	w.pend = w.pend[:0]
	if err != nil || w.end == size {
		return err
	}
	return w.f.Truncate(size)
}

// writeAll writes p, all of the file's content, as Write(p) then Close
// would; with no whole block of zeros in it, in one write, without
// gathering it first.
func (w *holeWriter) writeAll(p []byte) error {
	whole := len(p) / holeBlock * holeBlock
	for i := 0; i < whole; i += holeBlock {
		if bytes.Equal(p[i:i+holeBlock], zeroBlock[:]) {
			if _, err := w.Write(p); err != nil {
				return err
			}
			return w.Close()
		}
	}
	data := p
	if bytes.Equal(p[whole:], zeroBlock[:len(p)-whole]) {
		data = p[:whole]
	}
	if err := w.write(data); err != nil || w.end == int64(len(p)) {
		return err
	}
	return w.f.Truncate(int64(len(p)))
}

var _ io.WriteCloser = (*holeWriter)(nil)
