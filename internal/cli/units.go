package cli

import (
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/units"
)

// SizeFlag is a flag that takes a size in units' syntax (64K, 500G, 20GB);
// def is its default, "" for none.
func SizeFlag(name, def, usage string) *ucli.GenericFlag {
	v := &units.Size{}
	if def != "" {
		if err := v.Set(def); err != nil {
			panic("flag --" + name + ": " + err.Error())
		}
	}
	return &ucli.GenericFlag{Name: name, Value: v, Usage: usage}
}

// Size returns the value of a SizeFlag.
func Size(c *ucli.Context, name string) units.Size {
	return *c.Generic(name).(*units.Size)
}

// DurationFlag is a flag that takes a duration in units' syntax (90s, 36h,
// 30d, 2w).
func DurationFlag(name string, def time.Duration, usage string) *ucli.GenericFlag {
	v := units.Duration(def)
	return &ucli.GenericFlag{Name: name, Value: &v, Usage: usage}
}

// Duration returns the value of a DurationFlag.
func Duration(c *ucli.Context, name string) time.Duration {
	return time.Duration(*c.Generic(name).(*units.Duration))
}

// Time reads the flag name as a point in time (units.ParseTime: RFC 3339,
// or a date meaning its start in local time), the zero time when it is not
// given. A bad value is a usage error naming the flag.
func Time(c *ucli.Context, name string) (time.Time, error) {
	s := c.String(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := units.ParseTime(s, time.Local)
	if err != nil {
		return time.Time{}, Usagef("--%s: %v", name, err)
	}
	return t, nil
}
