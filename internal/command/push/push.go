// Package push is the bk-push command: its flags and wiring.
package push

import (
	"context"
	"errors"

	ucli "github.com/urfave/cli/v2"

	"bk/internal/cli"
)

// Tool describes bk-push: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name: "bk-push",
		Action: func(ctx context.Context, env *cli.Env, c *ucli.Context) error {
			return errors.New("not built yet")
		},
	}
}

// Main runs bk-push and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }
