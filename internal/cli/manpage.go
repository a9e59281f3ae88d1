package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// ManDate is the date on the man pages, fixed so they change only when their
// text does.
const ManDate = "2026-11"

// ManPage renders t as a roff man page in section 1, from the same fields
// that make its --help, so the two cannot drift apart.
func ManPage(t Tool, date string) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 %q \"bk\" \"bk manual\"\n", strings.ToUpper(t.Name), date)
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roffEscape(t.Name), roffEscape(t.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n[options] %s\n", roffEscape(t.Name), roffEscape(t.ArgsUsage))
	if t.Description != "" {
		b.WriteString(".SH DESCRIPTION\n")
		writeBody(&b, t.Description)
	}
	b.WriteString(".SH OPTIONS\n")
	for _, f := range append(commonFlags(), append(t.Flags, ucli.VersionFlag, ucli.HelpFlag)...) {
		writeFlag(&b, f)
	}
	for _, s := range t.Sections {
		fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(s.Title))
		writeBody(&b, s.Body)
	}
	return b.String()
}

func writeFlag(b *strings.Builder, f ucli.Flag) {
	df, ok := f.(ucli.DocGenerationFlag)
	if !ok {
		return
	}
	// As in --help, a word in backticks in the usage names the value.
	value, usage := valueName(df.GetUsage())
	if value == "" {
		value = "VALUE"
	}
	var names []string
	for _, n := range f.Names() {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		name := `\fB` + roffEscape(dash+n) + `\fR`
		if df.TakesValue() {
			name += ` \fI` + roffEscape(value) + `\fR`
		}
		names = append(names, name)
	}
	b.WriteString(".TP\n" + strings.Join(names, ", ") + "\n")
	switch v := df.GetValue(); {
	case !df.TakesValue(), v == "", v == `""`, v == "[]", v == "0":
	default:
		usage += " (default " + v + ")"
	}
	b.WriteString(roffEscape(usage) + "\n")
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

func writeBody(b *strings.Builder, body string) {
	inExample := false
	for i, line := range strings.Split(strings.Trim(body, "\n"), "\n") {
		example := strings.HasPrefix(line, "  ")
		switch {
		case example && !inExample:
			b.WriteString(".PP\n.nf\n.RS 4\n")
		case !example && inExample:
			b.WriteString(".RE\n.fi\n")
		}
		inExample = example
		switch {
		case example:
			b.WriteString(roffEscape(strings.TrimPrefix(line, "  ")) + "\n")
		case strings.TrimSpace(line) == "":
			if i > 0 {
				b.WriteString(".PP\n")
			}
		default:
			b.WriteString(roffEscape(line) + "\n")
		}
	}
	if inExample {
		b.WriteString(".RE\n.fi\n")
	}
}

// roffEscape keeps roff from reading text as requests or escapes.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
