// Package tarread is archive/tar's Reader from Go 1.26 (BSD licence, see
// LICENSE), with the checks it runs on every header block done a word at a
// time (fast.go): on a tree of small files they were a fifth of
// bk-restore's instructions. Headers are archive/tar's own type, so it
// reads exactly what archive/tar reads; the tests compare the two on
// archive/tar's test archives and on fuzzed input.
package tarread
