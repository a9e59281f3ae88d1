// Package keygen is the bk-keygen command: its flags and wiring.
package keygen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	ucli "github.com/urfave/cli/v2"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/seal"
)

// Tool describes bk-keygen: flags, help and man page.
func Tool() cli.Tool {
	return cli.Tool{
		Name:      "bk-keygen",
		Usage:     "make an age key pair for encrypting backups",
		ArgsUsage: "",
		Description: `bk-keygen writes a new age X25519 identity (secret key) in the format of
age-keygen, to FILE with -o or else to stdout, and prints its public key on
stderr as "Public key: age1...". The public key is what bk-pack encrypts to
(-r age1... or -R FILE); it can stay on the machine that makes backups, while
the secret key, needed only to restore, is kept elsewhere. The key file works
with age itself: age -d -i FILE decrypts what bk-pack encrypted.

With -o the file is created with mode 0600, and bk-keygen refuses to replace a
file that exists: losing a key loses every backup made for it.

bk-keygen -y FILE prints the public key of each identity in an age identity
file, one a line, on stdout.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the key file to `FILE` (mode 0600, never replaced) instead of stdout"},
			&ucli.StringFlag{Name: "public", Aliases: []string{"y"}, Usage: "print the public keys of the identity file `FILE` and exit"},
		},
		Sections: []cli.Section{
			{Title: "EXIT STATUS", Body: `0  the key file was written (or, with -y, every public key printed).

1  failed: the output file exists or cannot be created, or the -y file
   cannot be read or holds no age identity.

2  usage error: an unknown flag, or an argument.

130  interrupted.`},
			{Title: "EXAMPLES", Body: `Make a key; keep key.txt safe and off the backed-up machine:

  $ bk-keygen -o key.txt
  Public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p

Back up from cron with only the public key, no secret on the machine:

  bk-pack -r age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p ~/docs | bk-split -k 2 -n 3 | bk-push hosts.txt

Restore with the secret key:

  bk-join hosts.txt | bk-restore -i key.txt -C ~/restored

Print the public key again, or decrypt without bk:

  bk-keygen -y key.txt
  age -d -i key.txt < backup.bk | zstd -d | tar -x`},
			{Title: "SEE ALSO", Body: `bk-pack(1), bk-restore(1), age(1), age-keygen(1)`},
		},
		Action: run,
	}
}

// Main runs bk-keygen and returns its exit code.
func Main(args []string, stdio cli.Stdio) int { return cli.Main(Tool(), args, stdio) }

func run(_ context.Context, env *cli.Env, c *ucli.Context) error {
	if c.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", c.Args().First())
	}
	if c.IsSet("public") {
		if c.IsSet("output") {
			return cli.Usagef("-y prints to stdout; it takes no -o")
		}
		return printPublic(env.Stdout, c.String("public"))
	}
	id, err := seal.GenerateIdentity()
	if err != nil {
		return err
	}
	key := seal.FormatIdentity(id, time.Now())
	if path := c.String("output"); path != "" && path != "-" {
		err = writeNew(path, key)
	} else {
		_, err = io.WriteString(env.Stdout, key)
	}
	if err != nil {
		return err
	}
	if !env.Msg.Quiet {
		fmt.Fprintf(env.Stderr, "Public key: %s\n", id.Recipient())
	}
	return nil
}

// writeNew creates path with the key and mode 0600; O_EXCL refuses a file
// that exists, even one that appears after a check would have passed.
func writeNew(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return cli.WithHint(fmt.Errorf("key file %s already exists", path),
			"choose another name; replacing a key loses the backups made for it")
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// printPublic prints the public key of each native age identity in path.
func printPublic(w io.Writer, path string) error {
	ids, err := seal.ReadIdentitiesFile(path, nil)
	if err != nil {
		return err
	}
	var out strings.Builder
	for _, id := range ids {
		switch id := id.(type) {
		case *age.X25519Identity:
			fmt.Fprintln(&out, id.Recipient())
		case *age.HybridIdentity:
			fmt.Fprintln(&out, id.Recipient())
		default:
			return cli.WithHint(fmt.Errorf("%s is not an age identity file", path),
				"for an SSH key the public key is in "+path+".pub, or run ssh-keygen -y -f "+path)
		}
	}
	_, err = io.WriteString(w, out.String())
	return err
}
