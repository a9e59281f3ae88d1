package cli

import (
	"fmt"
	"strconv"
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
	// tbl(1) must run, for the EXIT STATUS table.
	b.WriteString(`'\" t` + "\n")
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
	for _, f := range append(commonFlags(t), append(t.Flags, ucli.VersionFlag, ucli.HelpFlag)...) {
		writeFlag(&b, f)
	}
	for _, s := range t.Sections {
		fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(s.Title))
		if rows, ok := exitRows(s); ok {
			writeTable(&b, rows)
		} else {
			writeBody(&b, s.Body)
		}
	}
	return b.String()
}

func writeFlag(b *strings.Builder, f ucli.Flag) {
	names, usage := flagDoc(f, func(name string) string { return `\fB` + roffEscape(name) + `\fR` })
	// The value's name follows each name in italics.
	for i, n := range names {
		if name, value, ok := strings.Cut(n, " "); ok {
			names[i] = name + ` \fI` + roffEscape(value) + `\fR`
		}
	}
	b.WriteString(".TP\n" + strings.Join(names, ", ") + "\n")
	b.WriteString(roffEscape(usage) + "\n")
}

// exitRows reads an EXIT STATUS section: paragraphs that each start with a
// code, then its meaning.
func exitRows(s Section) ([][2]string, bool) {
	if !strings.EqualFold(s.Title, "exit status") {
		return nil, false
	}
	var rows [][2]string
	for _, para := range strings.Split(strings.TrimSpace(s.Body), "\n\n") {
		code, meaning, _ := strings.Cut(para, " ")
		if _, err := strconv.Atoi(code); err != nil {
			return nil, false
		}
		rows = append(rows, [2]string{code, strings.Join(strings.Fields(meaning), " ")})
	}
	return rows, true
}

// writeTable writes rows as a tbl(1) table whose last column fills the
// line and wraps.
func writeTable(b *strings.Builder, rows [][2]string) {
	b.WriteString(".TS\ntab(|);\nl lx.\n")
	for _, r := range rows {
		fmt.Fprintf(b, "%s|T{\n%s\nT}\n", roffEscape(r[0]), roffEscape(r[1]))
	}
	b.WriteString(".TE\n")
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
