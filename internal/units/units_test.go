package units

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "512B": 512, "1K": 1024, "1k": 1024, "1KiB": 1024, "1kib": 1024,
		"1KB": 1000, "1kB": 1000, "128K": 128 << 10, "16M": 16 << 20, "250M": 250 << 20,
		"250MB": 250e6, "500G": 500 << 30, "2TiB": 2 << 40, "2TB": 2e12, "1P": 1 << 50,
		"1.5K": 1536, "1.5T": 3 << 39, "0.5KB": 500, "7E": 7 << 60,
	} {
		got, err := ParseSize(in)
		if err != nil || got.Bytes != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got.Bytes, err, want)
		}
	}
}

func TestParseSizeRefuses(t *testing.T) {
	for _, in := range []string{"", "K", "-1K", "1.K", ".5K", "1..5K", "1X", "1Ki", "1KiBB", "1 K", "0x10", "1e3", "8E", "99999999999999999999"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got.Bytes)
		} else if !strings.Contains(err.Error(), in) {
			t.Errorf("ParseSize(%q): error %q does not name the input", in, err)
		}
	}
}

// Sizes are echoed as written, and other sizes shown in the same units.
func TestSizeEchoesItsUnits(t *testing.T) {
	for _, c := range []struct {
		written string
		other   int64
		want    string
	}{
		{"250M", 12 << 20, "12M"},
		{"250M", 3 << 29, "1.5G"},
		{"250MB", 12e6, "12MB"},
		{"250MB", 1_600_000_000, "1.6GB"},
		{"2TiB", 3 << 39, "1.5TiB"},
		{"2TiB", 100, "100B"},
		{"500g", 1023, "1023B"},
		{"500g", 1024*1024 - 1, "1M"},
		{"500g", 10*1024 - 1, "10K"},
		{"500g", 100*1024 - 1, "100K"},
		{"500g", 238 << 20, "238M"},
		{"17MB", 16 << 20, "16.8MB"},
		{"1K", -2048, "-2K"},
	} {
		s, err := ParseSize(c.written)
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != c.written {
			t.Errorf("ParseSize(%q).String() = %q", c.written, s)
		}
		if got := s.Format(c.other); got != c.want {
			t.Errorf("%s: Format(%d) = %q, want %q", c.written, c.other, got, c.want)
		}
	}
}

// What Bytes prints, ParseSize reads back to within the rounding shown.
func TestBytesRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, 1024, 1536, 10 << 20, 250 << 20, 5<<30 + 1, 1 << 62} {
		text := Bytes(n).String()
		back, err := ParseSize(text)
		if err != nil {
			t.Fatalf("Bytes(%d) = %q, which does not parse: %v", n, text, err)
		}
		if diff := float64(back.Bytes-n) / float64(max(n, 1)); diff > 0.05 || diff < -0.05 {
			t.Errorf("Bytes(%d) = %q, read back as %d", n, text, back.Bytes)
		}
	}
}

func TestSizeIsAFlagValue(t *testing.T) {
	var s Size
	if err := s.Set("64K"); err != nil || s.Bytes != 64<<10 || s.String() != "64K" {
		t.Errorf("Set(64K): %v, %d, %q", err, s.Bytes, s)
	}
	if err := s.Set("lots"); err == nil || s.Bytes != 64<<10 {
		t.Errorf("Set(lots) = %v, left %d", err, s.Bytes)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "90s": 90 * time.Second, "36h": 36 * time.Hour, "30d": 30 * 24 * time.Hour,
		"2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1.5h": 90 * time.Minute,
		"500ms": 500 * time.Millisecond, "1m30s": 90 * time.Second, "0s": 0,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "1d12", "d", "1y", "1H", "-1h", "1 h", ".5h", "1.2.3h", "9999999w"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 36 * time.Hour: "1d12h", 14 * 24 * time.Hour: "2w", 24 * time.Hour: "1d",
		500 * time.Millisecond: "500ms", 90 * time.Second: "1m30s", -time.Hour: "-1h",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if d >= 0 {
			if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
				t.Errorf("FormatDuration(%v) = %q, read back as %v, %v", d, FormatDuration(d), back, err)
			}
		}
	}
}

func TestParseTime(t *testing.T) {
	zone := time.FixedZone("test", 3600)
	for in, want := range map[string]time.Time{
		"2026-11-29":                time.Date(2026, 11, 29, 0, 0, 0, 0, zone),
		"2026-11-29T02:30:00Z":      time.Date(2026, 11, 29, 2, 30, 0, 0, time.UTC),
		"2026-11-29T02:30:00+02:00": time.Date(2026, 11, 29, 0, 30, 0, 0, time.UTC),
		"2026-11-29T02:30:00.5Z":    time.Date(2026, 11, 29, 2, 30, 0, 5e8, time.UTC),
	} {
		if got, err := ParseTime(in, zone); err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-13-01", "2026-11-29 02:30", "29.11.2026", "2026-11-29T02:30:00"} {
		if got, err := ParseTime(in, zone); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestDurationIsAFlagValue(t *testing.T) {
	var d Duration
	if err := d.Set("1d12h"); err != nil || time.Duration(d) != 36*time.Hour || d.String() != "1d12h" {
		t.Errorf("Set(1d12h): %v, %v", err, d)
	}
}
