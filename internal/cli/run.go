package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	ucli "github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X bk/internal/cli.version=…".
var version = ""

// Version names this build: the ldflags value, else the module version.
func Version() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

var errInterrupted = errors.New("interrupted")

func init() {
	// -v is left free for tools that want it for "verbose".
	ucli.VersionFlag = &ucli.BoolFlag{Name: "version", Usage: "print the version and exit"}
}

// Stdio is a tool's standard streams, so tests can run tools in-process.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// OSStdio is the process's own standard streams.
func OSStdio() Stdio { return Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr} }

// Env is what a tool's action gets besides its parsed flags.
type Env struct {
	Stdio
	Msg *Messages
	// ShowProgress is true when progress is wanted: --progress was given,
	// or stderr is a terminal and stdout not a pipe to a next stage; and
	// not -q.
	ShowProgress bool
}

// Tool describes one bk command.
type Tool struct {
	Name        string // e.g. "bk-pack"
	Usage       string // one line
	ArgsUsage   string
	Description string
	Flags       []ucli.Flag
	// Sections follow DESCRIPTION and OPTIONS in the man page, e.g. EXIT
	// STATUS, EXAMPLES, ENVIRONMENT, SEE ALSO. EXIT STATUS is paragraphs
	// that each start with a code ("3  finished, but…"), shown as a table.
	Sections []Section
	// Progress says the tool has progress to show, so it takes --progress.
	Progress bool
	// MemoryLimit is a soft limit for the Go heap, in bytes (0: none). Stream
	// tools keep a bounded working set, so the collector need not let garbage
	// grow to twice of it before it runs; $GOMEMLIMIT overrides it.
	MemoryLimit int64
	// GCPercent is the collector's GOGC (0: Go's 100); $GOGC overrides it.
	// Tools that read every manifest on the hosts make their garbage
	// fast, in a short life, of a small heap: collected at a larger
	// heap, it costs less CPU for a few MiB more.
	GCPercent int
	Action    func(ctx context.Context, env *Env, c *ucli.Context) error
}

// Section is a titled part of a man page. Its body is plain text: blank
// lines separate paragraphs, lines indented by two spaces are shown as is.
type Section struct {
	Title string
	Body  string
}

// commonFlags are accepted by every tool, --progress by those that have
// progress to show.
func commonFlags(t Tool) []ucli.Flag {
	flags := []ucli.Flag{&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing on stderr unless something is wrong: only warnings and errors"}}
	if t.Progress {
		flags = append(flags, &ucli.BoolFlag{Name: "progress", Usage: "show progress on stderr even when it is not a terminal (a line every few seconds), or in a stage of a pipeline"})
	}
	return flags
}

// Main runs t with args (args[0] is the program name) and returns the exit
// code. It is the only place a tool decides how it exits.
func Main(t Tool, args []string, stdio Stdio) int {
	defer profile(t.Name)()
	msg := &Messages{Tool: t.Name, W: stdio.Stderr}
	if t.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(t.MemoryLimit)
	}
	if t.GCPercent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(t.GCPercent)
	}
	growPipes(stdio.Stdin, stdio.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer catchSIGPIPE()()

	var actionErr error
	flags := append(commonFlags(t), t.Flags...)
	app := &ucli.App{
		Name:                  t.Name,
		Usage:                 t.Usage,
		UsageText:             t.Name + " [options] " + t.ArgsUsage,
		ArgsUsage:             t.ArgsUsage,
		Description:           t.Description,
		Version:               Version(),
		Flags:                 flags,
		HideHelpCommand:       true,
		CustomAppHelpTemplate: helpTemplate,
		// Repeat a flag to give several values: a comma may be in a pattern.
		DisableSliceFlagSeparator: true,
		Reader:                    stdio.Stdin,
		Writer:                    stdio.Stdout, // only --help and --version, asked for explicitly
		ErrWriter:                 stdio.Stderr,
		ExitErrHandler:            func(*ucli.Context, error) {},
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return &UsageError{Err: err}
		},
		Action: func(c *ucli.Context) error {
			msg.Quiet = c.Bool("quiet")
			env := &Env{
				Stdio: stdio,
				Msg:   msg,
				// One display per pipeline: the last stage's, whose stdout
				// is not a pipe.
				ShowProgress: !msg.Quiet && (c.Bool("progress") || IsTerminal(stdio.Stderr) && !isPipe(stdio.Stdout)),
			}
			actionErr = t.Action(ctx, env, c)
			return actionErr
		},
	}
	ordered, help := gnuOrder(append(flags, ucli.HelpFlag, ucli.VersionFlag), args[1:])
	if help {
		// urfave would read the arguments as a help topic.
		ordered = []string{"--help"}
	}
	err := downstream(ctx, app.Run(append(args[:1:1], ordered...)), stdio.Stdout)
	if err != nil && ctx.Err() != nil {
		err = errInterrupted
	}
	if err != nil && actionErr == nil && !errors.As(err, new(*UsageError)) {
		// urfave reports flag errors without calling OnUsageError in some paths.
		err = &UsageError{Err: err}
	}
	msg.Report(err)
	return ExitCode(err)
}
