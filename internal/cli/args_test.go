package cli

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

func TestGNUOrder(t *testing.T) {
	flags := []ucli.Flag{
		&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}},
		&ucli.BoolFlag{Name: "one-file-system", Aliases: []string{"x"}},
		&ucli.IntFlag{Name: "k"},
		&ucli.StringFlag{Name: "output", Aliases: []string{"o"}},
		&ucli.StringSliceFlag{Name: "recipients-file", Aliases: []string{"R"}},
		ucli.HelpFlag,
	}
	for in, want := range map[string]string{
		"docs -R r":                         "-R r -- docs",
		"docs -q":                           "-q -- docs",
		"-k2 a":                             "-k 2 -- a",
		"-k=2 a":                            "-k 2 -- a",
		"-xqk 3 a b":                        "-x -q -k 3 -- a b",
		"-qo- a":                            "-q -o - -- a",
		"-o -q a":                           "-o -q -- a",
		"a --output f b":                    "--output f -- a b",
		"a --output=f b":                    "--output=f -- a b",
		"a -- -q --output f":                "-- a -q --output f",
		"- -q":                              "-q -- -",
		"a -output f":                       "-output f -- a",
		"a --bogus b":                       "--bogus -- a b",
		"a -qz b":                           "-q -z -- a b",
		"a --help":                          "--help -- a",
		"a --recipients-file":               "--recipients-file -- a",
		"--quiet=false a":                   "--quiet=false -- a",
		"":                                  "--",
		"a b c":                             "-- a b c",
		"-R r1 x -R r2 y --one-file-system": "-R r1 -R r2 --one-file-system -- x y",
	} {
		ordered, help := gnuOrder(flags, strings.Fields(in))
		if got := strings.Join(ordered, " "); got != want || help != strings.Contains(in, "help") {
			t.Errorf("gnuOrder(%q) = %q, %v; want %q", in, got, help, want)
		}
	}
	for in, want := range map[string]bool{"-qh": true, "-o -h": false, "-- -h": false, "-help": true, "--output=-h": false} {
		if _, help := gnuOrder(flags, strings.Fields(in)); help != want {
			t.Errorf("gnuOrder(%q) asks help: %v, want %v", in, help, want)
		}
	}
}

// Through urfave: options after arguments are options, and what follows
// "--" stays an argument even if it looks like an option.
func TestOptionsAnywhere(t *testing.T) {
	var got []string
	var quiet bool
	var k int
	tool := Tool{Name: "bk-x", Flags: []ucli.Flag{&ucli.IntFlag{Name: "k"}}, Action: func(_ context.Context, env *Env, c *ucli.Context) error {
		got, quiet, k = c.Args().Slice(), env.Msg.Quiet, c.Int("k")
		return nil
	}}
	code := Main(tool, []string{"bk-x", "a", "-k2", "b", "-q", "--", "-c", "--k"}, Stdio{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
	if code != 0 || !slices.Equal(got, []string{"a", "b", "-c", "--k"}) || !quiet || k != 2 {
		t.Fatalf("exit %d, args %q, quiet %v, k %d", code, got, quiet, k)
	}
}

func TestHelp(t *testing.T) {
	tool := Tool{Name: "bk-x", Flags: []ucli.Flag{
		&ucli.IntFlag{Name: "k", Usage: "any `K`", Required: true},
		&ucli.IntFlag{Name: "m", Usage: "at least `M`"},
		&ucli.BoolFlag{Name: "verify", Usage: "check"},
		SizeFlag("block-size", "128K", "blocks of `SIZE`"),
		SizeFlag("expect-size", "", "about `SIZE`"),
	}, Action: func(context.Context, *Env, *ucli.Context) error { return nil }}
	var out strings.Builder
	if code := Main(tool, []string{"bk-x", "a", "--help"}, Stdio{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := out.String()
	for _, want := range []string{"\nOPTIONS:\n", "-k K ", "any K (required)\n", "at least M\n", "check\n", "blocks of SIZE (default: 128K)\n", "about SIZE\n"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	for _, unwanted := range []string{"GLOBAL", "default: 0", "default: false", "--progress"} {
		if strings.Contains(help, unwanted) {
			t.Errorf("help has %q:\n%s", unwanted, help)
		}
	}
}
