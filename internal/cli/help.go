package cli

import (
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// helpTemplate is urfave's, with the options under OPTIONS: a bk tool has
// no subcommands, so nothing is "global".
var helpTemplate = strings.ReplaceAll(ucli.AppHelpTemplate, "GLOBAL OPTIONS:", "OPTIONS:")

func init() {
	ucli.FlagStringer = func(f ucli.Flag) string {
		names, usage := flagDoc(f, func(s string) string { return s })
		return strings.Join(names, ", ") + "\t" + usage
	}
}

// flagDoc describes a flag for --help and the man page alike: its names,
// each with the name of its value, and its usage, saying whether it is
// required and what its default is, when that is more than a zero.
// mark formats the names in the man page's way.
func flagDoc(f ucli.Flag, mark func(string) string) (names []string, usage string) {
	df, ok := f.(ucli.DocGenerationFlag)
	if !ok {
		return f.Names(), ""
	}
	// A word in backticks in the usage names the value.
	value, usage := valueName(df.GetUsage())
	if value == "" {
		value = "VALUE"
	}
	for _, n := range f.Names() {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		name := mark(dash + n)
		if df.TakesValue() {
			name += " " + value
		}
		names = append(names, name)
	}
	if r, ok := f.(ucli.RequiredFlag); ok && r.IsRequired() {
		return names, usage + " (required)"
	}
	// The default as it was before the command line set the flag, unquoted.
	d := df.GetDefaultText()
	if u, err := strconv.Unquote(d); err == nil {
		d = u
	}
	switch {
	case !df.TakesValue(), d == "", d == "[]", d == "0", d == "0B":
	default:
		usage += " (default: " + d + ")"
	}
	return names, usage
}

// valueName takes the first word in backticks out of a flag's usage, as
// urfave/cli's help does, and returns it with the usage without backticks.
func valueName(usage string) (string, string) {
	start := strings.IndexByte(usage, '`')
	if start < 0 {
		return "", usage
	}
	end := strings.IndexByte(usage[start+1:], '`')
	if end < 0 {
		return "", usage
	}
	name := usage[start+1 : start+1+end]
	return name, usage[:start] + name + usage[start+1+end+1:]
}
