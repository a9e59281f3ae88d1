// Command gendata writes the benchmark data sets of bench/run.sh,
// deterministically from a seed: the same seed and scale give the same
// bytes, names and modification times on every machine.
//
//	gendata -set mixed  -out DIR   ≈1 GiB in ~2,000 files: half random, half source-like text
//	gendata -set small  -out DIR   50,000 text-like files of 1–8 KiB in nested folders
//	gendata -set random -out FILE  one 1 GiB file of random bytes
//
// -scale shrinks every set (sizes and file counts) for a quick run. A stamp
// written beside the output (OUT.stamp) records what was made; when it
// matches, gendata does nothing, and when it doesn't, it makes OUT again.
// It prints one line: the set, its file count and its size in bytes.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

const version = "gendata 1"

// mtime is given to every file and folder, so tar streams are reproducible.
var mtime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// file is one file of a set: its path below the output and how to fill it.
type file struct {
	path string
	size int64
	text bool // source-like text, else random bytes
}

func main() {
	set := flag.String("set", "", "data set: mixed, small or random")
	out := flag.String("out", "", "output folder (mixed, small) or file (random)")
	seed := flag.Uint64("seed", 1, "seed")
	scale := flag.Float64("scale", 1, "scale factor for sizes and file counts")
	flag.Parse()
	if *out == "" || *scale <= 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*set, *out, *seed, *scale); err != nil {
		fmt.Fprintf(os.Stderr, "gendata: error: %v\n", err)
		os.Exit(1)
	}
}

func run(set, out string, seed uint64, scale float64) error {
	var files []file
	switch set {
	case "mixed":
		files = mixed(seed, scale)
	case "small":
		files = small(seed, scale)
	case "random":
		files = []file{{path: "", size: int64(float64(1<<30) * scale)}}
	default:
		return fmt.Errorf("-set %q: want mixed, small or random", set)
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	summary := fmt.Sprintf("%s %d files %d bytes", set, len(files), total)
	stamp := fmt.Sprintf("%s set=%s seed=%d scale=%g\n", version, set, seed, scale)
	old, err := os.ReadFile(out + ".stamp")
	_, statErr := os.Lstat(out)
	switch {
	case err == nil && string(old) == stamp && statErr == nil:
		fmt.Println(summary)
		return nil
	case errors.Is(err, os.ErrNotExist) && statErr == nil:
		return fmt.Errorf("%s exists and was not made by gendata: remove it first", out)
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Remove(out + ".stamp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := write(out, set, seed, files); err != nil {
		return err
	}
	if err := os.WriteFile(out+".stamp", []byte(stamp), 0o644); err != nil {
		return err
	}
	fmt.Println(summary)
	return nil
}

// mixed is ≈1 GiB in ~2,000 files, half the bytes random and half text,
// with sizes spread log-uniformly from 4 KiB to 4 MiB before scaling.
func mixed(seed uint64, scale float64) []file {
	r := newRand(seed, "mixed/layout")
	n := max(4, int(2000*scale))
	half := float64(1<<30) * scale / 2
	var files []file
	for _, text := range []bool{true, false} {
		sizes := make([]float64, n/2)
		var sum float64
		for i := range sizes {
			sizes[i] = math.Exp(math.Log(4<<10) + r.Float64()*math.Log(1024))
			sum += sizes[i]
		}
		for i, s := range sizes {
			ext := []string{".bin", ".jpg", ".zst", ".dat"}[r.IntN(4)]
			if text {
				ext = []string{".go", ".c", ".h", ".txt"}[r.IntN(4)]
			}
			files = append(files, file{
				size: int64(s / sum * half),
				text: text,
				path: fmt.Sprintf("d%02d/s%d/%s%04d%s", r.IntN(40), r.IntN(3), word(r), i, ext),
			})
		}
	}
	return files
}

// small is 50,000 text files of 1–8 KiB, 50 to a folder, three levels deep.
func small(seed uint64, scale float64) []file {
	r := newRand(seed, "small/layout")
	n := max(10, int(50000*scale))
	files := make([]file, n)
	for i := range files {
		leaf := i / 50
		files[i] = file{
			size: 1024 + r.Int64N(7*1024+1),
			text: true,
			path: fmt.Sprintf("a%02d/b%d/c%d/%s%05d.go", leaf/100, leaf/10%10, leaf%10, word(r), i),
		}
	}
	return files
}

// write makes every file of the set below out (or out itself when the
// path is empty), in parallel, each from its own seeded generator.
func write(out, set string, seed uint64, files []file) error {
	jobs := make(chan int)
	errs := make(chan error, len(files))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range jobs {
				errs <- writeFile(filepath.Join(out, files[i].path), files[i], seed, fmt.Sprintf("%s/%d", set, i))
			}
		})
	}
	for i := range files {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	// Folders last, deepest first, since writing a file changes its folder.
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(filepath.Join(out, f.path)); len(d) >= len(out); d = filepath.Dir(d) {
			dirs[d] = true
			if d == out {
				break
			}
		}
	}
	list := make([]string, 0, len(dirs))
	for d := range dirs {
		list = append(list, d)
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	for _, d := range list {
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(name string, f file, seed uint64, key string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	w, err := os.Create(name)
	if err != nil {
		return err
	}
	if f.text {
		err = writeText(w, newRand(seed, key), f.size)
	} else {
		_, err = io.CopyN(w, newChaCha(seed, key), f.size)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Chtimes(name, mtime, mtime)
}

func newRand(seed uint64, key string) *rand.Rand {
	h := sha256.Sum256([]byte(key))
	return rand.New(rand.NewPCG(seed, binary.LittleEndian.Uint64(h[:])))
}

func newChaCha(seed uint64, key string) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "%d/%s", seed, key)))
}

// words are the vocabulary of identifiers, comments and strings. They are
// drawn with a skew (common words often, rare words seldom), as in code.
var words = strings.Fields(`
	err ctx buf data file name path size len count index offset value key
	list map set node tree item entry block chunk share host stream reader
	writer header trailer config option flag state error result request
	response client server conn session token user group mode perm time
	start stop open close read write flush sync seek copy move rename remove
	create delete update insert lookup find match parse format encode decode
	pack unpack split join push pull send recv check verify hash sum digest
	sign seal crypt cipher nonce salt salt key secret public private cert
	retry timeout deadline cancel done wait lock unlock mutex atomic queue
	worker pool job task batch limit quota total used free max min avg
	first last next prev head tail left right parent child root leaf depth
	width height level layer frame packet message event signal handler
	callback hook filter sort merge compare equal less greater swap reverse
	init setup teardown reset clear load store save restore backup archive
	compress inflate deflate level window dict table column row field record
	schema version major minor patch build release debug trace info warn
	fatal panic recover defer return break continue goto switch case select
	output input source target dest origin remote local global cache pending
	`)

func word(r *rand.Rand) string {
	// Squaring a uniform skews toward the front of the list.
	u := r.Float64()
	return words[int(u*u*float64(len(words)))]
}

func ident(r *rand.Rand) string {
	n := 1 + r.IntN(3)
	var b strings.Builder
	for i := range n {
		w := word(r)
		if i > 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
	}
	return b.String()
}

func typeName(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return "int"
	case 1:
		return "[]byte"
	case 2:
		return "string"
	case 3:
		return "error"
	}
	w := ident(r)
	return "*" + strings.ToUpper(w[:1]) + w[1:]
}

func sentence(r *rand.Rand, min, max int) string {
	n := min + r.IntN(max-min+1)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = word(r)
	}
	return strings.Join(ws, " ")
}

// writeText writes size bytes of Go/C-like source: functions of
// statements, comments, string literals and numbers, indented by depth.
// Each file has its own small set of local names, so names repeat within
// a file as they do in real code. zstd -3 compresses it about 4×.
func writeText(w io.Writer, r *rand.Rand, size int64) error {
	locals := make([]string, 12+r.IntN(24))
	for i := range locals {
		locals[i] = ident(r)
	}
	local := func() string { return locals[r.IntN(len(locals))] }
	var b strings.Builder
	depth := 0
	line := func(format string, args ...any) {
		b.WriteString(strings.Repeat("\t", depth))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	for int64(b.Len()) < size {
		switch k := r.IntN(20); {
		case depth == 0:
			if r.IntN(2) == 0 {
				line("// %s %s.", local(), sentence(r, 4, 14))
			}
			line("func (%c *%s) %s(%s %s, %s %s) (%s, error) {", 'a'+rune(r.IntN(26)), local(), local(),
				word(r), typeName(r), word(r), typeName(r), typeName(r))
			depth++
		case k < 3 && depth < 5:
			line("if %s := %s(%s, %s); %s != nil {", word(r), local(), local(), word(r), word(r))
			depth++
		case k < 4 && depth < 5:
			line("for %c := %d; %c < len(%s); %c++ {", 'i'+rune(r.IntN(3)), r.IntN(4), 'i', local(), 'i')
			depth++
		case k < 7:
			line("%s := %s.%s(%s, %d)", local(), local(), local(), local(), r.IntN(1<<uint(r.IntN(20))))
		case k < 9:
			line("// %s", sentence(r, 3, 12))
		case k < 10:
			line("return nil, fmt.Errorf(\"%s %%w\", %s)", sentence(r, 2, 6), word(r))
		case k < 11:
			line("%s.%s = 0x%08x ^ %s", local(), local(), r.Uint32(), local())
		case k < 12:
			line("%s[%q] = append(%s, %s...)", local(), word(r), local(), local())
		case k < 15 && depth > 1:
			depth--
			line("}")
		case k < 16 && depth == 1:
			line("return %s, nil", local())
			depth--
			line("}")
			line("")
		default:
			line("%s, err = %s.%s(%s)", local(), word(r), local(), local())
		}
	}
	s := b.String()[:size]
	_, err := io.WriteString(w, s)
	return err
}
