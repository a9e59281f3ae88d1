package cli

import (
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// gnuOrder rearranges args (without the program name) the way GNU getopt
// reads them, for urfave/cli, which stops at the first argument and would
// take an option after it for a path: options anywhere, "--" ending them,
// clustered short options split (-xq is -x -q; -k2 and -o- are -k 2 and
// -o -). It returns the options, then "--", then the arguments in their
// order, so an argument that looks like an option stays an argument. help
// says whether -h or --help is among the options (not a value).
func gnuOrder(flags []ucli.Flag, args []string) (ordered []string, help bool) {
	takesValue := map[string]bool{}
	for _, f := range flags {
		df, ok := f.(ucli.DocGenerationFlag)
		for _, name := range f.Names() {
			takesValue[name] = ok && df.TakesValue()
		}
	}
	var opts, operands []string
	option := func(arg, name string) {
		opts = append(opts, arg)
		help = help || name == "help" || name == "h"
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		next := func() {
			if i+1 < len(args) {
				i++
				opts = append(opts, args[i])
			}
		}
		switch {
		case arg == "--":
			operands = append(operands, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(arg, "--"):
			name, _, hasValue := strings.Cut(arg[2:], "=")
			option(arg, name)
			if takesValue[name] && !hasValue {
				next()
			}
		case len(arg) > 1 && arg[0] == '-':
			// A long name with one dash, as Go's flag package allows.
			if name, _, hasValue := strings.Cut(arg[1:], "="); len(name) > 1 {
				if tv, known := takesValue[name]; known {
					option(arg, name)
					if tv && !hasValue {
						next()
					}
					continue
				}
			}
			for j := 1; j < len(arg); j++ {
				name := arg[j : j+1]
				tv, known := takesValue[name]
				if !known {
					opts = append(opts, "-"+arg[j:]) // for urfave to report
					break
				}
				option("-"+name, name)
				if tv {
					if value := strings.TrimPrefix(arg[j+1:], "="); value != "" {
						opts = append(opts, value)
					} else {
						next()
					}
					break
				}
			}
		default:
			operands = append(operands, arg)
		}
	}
	return append(append(opts, "--"), operands...), help
}
