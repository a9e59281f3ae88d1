package archive

import (
	"fmt"
	"hash/maphash"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/bk-backup/bk/internal/xattr"
)

// fileWriters is how many goroutines create small files, beside the
// extraction. Of a restore of small files into tmpfs, their six system
// calls each (openat, pwrite, fchown, fchmod, utimensat, close) were 42 %
// of the CPU samples, on the one goroutine: the longest stage by far.
const fileWriters = 2

// writerJobs is how many files are handed to a writer at once.
const writerJobs = 16

// A regular file whose content the read-ahead holds whole, without
// extended attributes, is handed to a file writer; everything else is done
// in line, after the writers have finished what they were given (drain).
// So the order of the archive holds where it matters: a directory exists
// before a file is made in it, a hard link's target before the link, and
// a name met twice goes to the same writer (picked by the name), which
// makes its files in order, the later replacing the earlier. Warnings and
// errors are kept with the file's place in the archive and given at the
// drain in that order; the first error is the one the restore fails with,
// as in line, and no warning of a file after it is given. The writers
// write into the staging directory only, as the rest of the extraction
// does.

// fileJob is one file for a writer.
type fileJob struct {
	seq   int // its place among the jobs, for the order of messages
	e     *entry
	pr    *os.Root // its directory
	dir   *os.File // the same, for the calls by descriptor
	base  string
	data  []byte
	batch *aheadBatch // holds data, released when the file is made
	from  *ahead
}

// fileNote is a warning or the error of one job.
type fileNote struct {
	seq  int
	warn string
	err  error
}

// fileWriter is one writer goroutine with its queue.
type fileWriter struct {
	jobs    chan []fileJob
	pending []fileJob // not handed over yet
	pend    []byte    // the holeWriter's buffer
	notes   []fileNote
	files   int64
	bytes   int64
}

// writers are the file writers of one extraction.
type writers struct {
	x    *extractor
	w    [fileWriters]*fileWriter
	busy sync.WaitGroup // jobs handed over, not done
	seed maphash.Seed
	seq  int
	// batch is the read-ahead's batch the jobs not handed over yet are in:
	// they are handed over before one of the next, so that they never hold
	// batches the read-ahead needs to go on, while the extraction waits.
	batch *aheadBatch
	done  sync.WaitGroup // the goroutines
}

func startWriters(x *extractor) *writers {
	ws := &writers{x: x, seed: maphash.MakeSeed()}
	for i := range ws.w {
		w := &fileWriter{jobs: make(chan []fileJob, 4)}
		ws.w[i] = w
		ws.done.Add(1)
		go func() {
			defer ws.done.Done()
			for jobs := range w.jobs {
				for _, j := range jobs {
					ws.write(w, j)
				}
				ws.busy.Done()
			}
		}()
	}
	return ws
}

// stop ends the goroutines, after a drain.
func (ws *writers) stop() {
	for _, w := range ws.w {
		close(w.jobs)
	}
	ws.done.Wait()
}

// hand gives a writer the file e, whose content is data in the batch b of
// the read-ahead a, to make at base in the directory pr (dir).
func (ws *writers) hand(e *entry, pr *os.Root, dir *os.File, base string, data []byte, a *ahead, b *aheadBatch) {
	if b != ws.batch {
		for _, w := range ws.w {
			ws.flush(w)
		}
		ws.batch = b
	}
	ws.seq++
	w := ws.w[maphash.String(ws.seed, base)%fileWriters]
	w.pending = append(w.pending, fileJob{seq: ws.seq, e: e, pr: pr, dir: dir, base: base, data: data, batch: b, from: a})
	if len(w.pending) == writerJobs {
		ws.flush(w)
	}
}

func (ws *writers) flush(w *fileWriter) {
	if len(w.pending) == 0 {
		return
	}
	ws.busy.Add(1)
	w.jobs <- w.pending
	w.pending = make([]fileJob, 0, writerJobs)
}

// drain waits for every file handed over to be made, gives their warnings
// in the archive's order, and returns the first error.
func (ws *writers) drain() error {
	for _, w := range ws.w {
		ws.flush(w)
	}
	ws.busy.Wait()
	var notes []fileNote
	for _, w := range ws.w {
		notes = append(notes, w.notes...)
		w.notes = w.notes[:0]
		ws.x.stats.Files += w.files
		ws.x.stats.Bytes += w.bytes
		w.files, w.bytes = 0, 0
	}
	slices.SortStableFunc(notes, func(a, b fileNote) int { return a.seq - b.seq })
	for _, n := range notes {
		if n.err != nil {
			return n.err
		}
		ws.x.opts.Warn("%s", n.warn)
	}
	return nil
}

// write makes one file, on a writer's goroutine.
func (ws *writers) write(w *fileWriter, j fileJob) {
	warn := func(format string, args ...any) {
		w.notes = append(w.notes, fileNote{seq: j.seq, warn: fmt.Sprintf(format, args...)})
	}
	content := func(hw *holeWriter) (int64, error) { return int64(len(j.data)), hw.writeAll(j.data) }
	n, err := ws.x.makeFile(j.e, j.pr, j.dir, j.base, content, &w.pend, warn)
	j.from.release(j.batch)
	if err != nil {
		w.notes = append(w.notes, fileNote{seq: j.seq, err: err})
		return
	}
	w.files++
	w.bytes += n
}

// hasXattrs reports whether h carries extended attributes.
func hasXattrs(h map[string]string) bool {
	for k := range h {
		if strings.HasPrefix(k, xattr.RecordPrefix) {
			return true
		}
	}
	return false
}
