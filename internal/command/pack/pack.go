// Package pack is the bk-pack command: its flags and wiring.
package pack

import (
	"context"
	"errors"

	ucli "github.com/urfave/cli/v2"

	"bk/internal/cli"
)

// Tool describes bk-pack: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name: "bk-pack",
		Action: func(ctx context.Context, env *cli.Env, c *ucli.Context) error {
			return errors.New("not built yet")
		},
	}
}

// Main runs bk-pack and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }
