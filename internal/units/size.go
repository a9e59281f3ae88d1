// Package units reads and writes the sizes, durations and times that bk's
// users type, in one syntax for every tool and file: GNU coreutils' for sizes
// (dd, head -c, du), s m h d w for durations, RFC 3339 or a date for times.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// system is a family of size units: how a size was written, so other sizes
// can be shown in the same way.
type system int

const (
	binary system = iota // K M G …: powers of 1024, as dd and du -h count
	iec                  // KiB MiB …: powers of 1024, spelled out
	si                   // KB MB …: powers of 1000, as disks are sold
)

const prefixes = "KMGTPE"

// Size is a byte count as the user wrote it. It remembers the spelling, so
// messages can echo a quota of 250M as 250M and print other sizes next to
// it in the same units. The zero Size is 0 bytes, printed in K, M, G.
type Size struct {
	Bytes  int64
	text   string // as written; "" when made from a number
	system system
}

// Bytes returns n bytes as a Size, printed the way du -h prints.
func Bytes(n int64) Size { return Size{Bytes: n} }

// ParseSize reads a size: a number, optionally with a fraction, and an
// optional unit, case ignored. K M G T P E and KiB MiB GiB TiB PiB EiB are
// powers of 1024; KB MB GB TB PB EB powers of 1000; B or no unit means bytes.
// A fraction is rounded to the nearest byte: 1.5K is 1536.
func ParseSize(s string) (Size, error) {
	num := s[:len(s)-len(strings.TrimLeft(s, "0123456789."))]
	unit := strings.ToUpper(s[len(num):])
	mult, sys, ok := parseUnit(unit)
	if !ok || num == "" || strings.Count(num, ".") > 1 || num[0] == '.' || num[len(num)-1] == '.' {
		return Size{}, fmt.Errorf("%q is not a size (e.g. 64K, 500G, 2TiB, 20GB)", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return Size{}, fmt.Errorf("%q is not a size (e.g. 64K, 500G, 2TiB, 20GB)", s)
	}
	bytes := math.Round(f * float64(mult))
	if bytes >= math.MaxInt64 {
		return Size{}, fmt.Errorf("size %s is too large", s)
	}
	return Size{Bytes: int64(bytes), text: s, system: sys}, nil
}

func parseUnit(unit string) (mult int64, sys system, ok bool) {
	if unit == "" || unit == "B" {
		return 1, binary, true
	}
	i := strings.IndexByte(prefixes, unit[0])
	if i < 0 {
		return 0, 0, false
	}
	switch unit[1:] {
	case "":
		sys = binary
	case "IB":
		sys = iec
	case "B":
		sys = si
	default:
		return 0, 0, false
	}
	mult = 1
	for range i + 1 {
		mult *= sys.base()
	}
	return mult, sys, true
}

func (s system) base() int64 {
	if s == si {
		return 1000
	}
	return 1024
}

func (s system) suffix(prefix byte) string {
	switch s {
	case iec:
		return string(prefix) + "iB"
	case si:
		return string(prefix) + "B"
	}
	return string(prefix)
}

// String is the size as the user wrote it, or else as du -h prints it.
func (s Size) String() string {
	if s.text != "" {
		return s.text
	}
	return s.Format(s.Bytes)
}

// Format prints n bytes in the units s was written in, scaled to fit, with
// a decimal below 100 when it is not 0: a quota written as 500G shows 1.5T,
// 12G and 238G; one written as 500GB shows 1.6TB. Under 1 K it prints
// bytes: 512B.
func (s Size) Format(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	base := float64(s.system.base())
	if n < int64(base) {
		return sign + strconv.FormatInt(n, 10) + "B"
	}
	v, i := float64(n), -1
	for v >= base && i < len(prefixes)-1 {
		v /= base
		i++
	}
	// Round before choosing the prefix, so 1023.9K shows as 1M, not 1024K.
	if v = roundFor(v); v >= base && i < len(prefixes)-1 {
		v, i = roundFor(v/base), i+1
	}
	return sign + strings.TrimSuffix(strconv.FormatFloat(v, 'f', -1, 64), ".0") + s.system.suffix(prefixes[i])
}

// roundFor keeps one decimal below 100, none above.
func roundFor(v float64) float64 {
	if v < 100 {
		return math.Round(v*10) / 10
	}
	return math.Round(v)
}

// Set parses a size into s, so a *Size is a flag.Value.
func (s *Size) Set(text string) error {
	v, err := ParseSize(text)
	if err != nil {
		return err
	}
	*s = v
	return nil
}
