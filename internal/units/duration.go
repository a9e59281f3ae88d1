package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration units, largest first: a week is 7 days and a day 24 hours, as a
// retention policy counts, whatever the clocks do.
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	{"w", 7 * 24 * time.Hour},
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
}

// ParseDuration reads a duration such as 36h, 30d, 2w, 1d12h, 1.5h or
// 500ms: numbers each followed by a unit (w d h m s ms). A bare 0 is allowed;
// other numbers need a unit, since a bare 30 could mean seconds or days.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	bad := fmt.Errorf("%q is not a duration (e.g. 90s, 36h, 30d, 2w, 1d12h)", s)
	if s == "" {
		return 0, bad
	}
	var total float64
	for rest := s; rest != ""; {
		num := rest[:len(rest)-len(strings.TrimLeft(rest, "0123456789."))]
		rest = rest[len(num):]
		unit := rest[:len(rest)-len(strings.TrimLeft(rest, "abcdefghijklmnopqrstuvwxyz"))]
		rest = rest[len(unit):]
		f, err := strconv.ParseFloat(num, 64)
		if num == "" || num[0] == '.' || err != nil {
			return 0, bad
		}
		d, ok := unitDuration(unit)
		if !ok {
			return 0, bad
		}
		total += f * float64(d)
	}
	if total >= math.MaxInt64 {
		return 0, fmt.Errorf("duration %s is too long", s)
	}
	return time.Duration(math.Round(total)), nil
}

func unitDuration(name string) (time.Duration, bool) {
	for _, u := range durationUnits {
		if u.name == name {
			return u.d, true
		}
	}
	return 0, false
}

// FormatDuration prints d in the same syntax, in whole units, largest first:
// 1w2d, 36h is 1d12h, 500ms. It drops what is below a millisecond.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if n := d / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}

// Duration is a time.Duration that is a flag.Value in this syntax.
type Duration time.Duration

// Set parses a duration into d.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// String prints d as FormatDuration does.
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// ParseTime reads a point in time: RFC 3339 (2026-11-29T02:30:00Z, with an
// offset or fractions of a second), or a date, 2026-11-29, meaning its start
// in loc.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want 2026-11-29 or 2026-11-29T02:30:00Z)", s)
}
