//go:build !linux

package soak

// becomeSubreaper does nothing here: an ssh master goes to init when its
// tool exits, and its CPU time is not counted.
func becomeSubreaper() {}
