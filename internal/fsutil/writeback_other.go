//go:build !linux

package fsutil

import "os"

// StartWriteback would start writing n bytes of f from off to disk; this
// system has no call for it, so the fsync does it all.
func StartWriteback(f *os.File, off, n int64) {}
