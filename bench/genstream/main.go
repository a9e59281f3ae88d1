// Command genstream writes a long stream of incompressible bytes to stdout
// fast, for the stream row of bench/run.sh: a 1 MiB block of ChaCha8 bytes
// written again and again, each copy with its number in its first 8 bytes,
// so no two blocks are the same and the generator costs next to nothing.
//
//	genstream -gib 64 -marks FILE | bk-split … | bk-join … > /dev/null
//
// With -marks it appends a line to FILE at every GiB written: the GiB's
// number and the seconds since the start, as the pipeline downstream took
// them (the pipe blocks the generator when it is ahead).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

func main() {
	gib := flag.Int("gib", 1, "how many GiB to write")
	marks := flag.String("marks", "", "append \"GIB SECONDS\" to this file at every GiB")
	flag.Parse()
	var log *os.File
	if *marks != "" {
		f, err := os.OpenFile(*marks, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "genstream:", err)
			os.Exit(1)
		}
		log = f
	}
	block := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{'b', 'k'}).Read(block)
	start := time.Now()
	for n := range uint64(*gib) << 10 {
		binary.BigEndian.PutUint64(block, n)
		if _, err := os.Stdout.Write(block); err != nil {
			fmt.Fprintln(os.Stderr, "genstream:", err)
			os.Exit(1)
		}
		if log != nil && (n+1)%1024 == 0 {
			fmt.Fprintf(log, "%d %.3f\n", (n+1)>>10, time.Since(start).Seconds())
		}
	}
}
