// Package passphrase finds the passphrase of -p for bk-pack and bk-restore,
// and turns seal's key errors into messages with hints naming their flags.
package passphrase

import (
	"errors"
	"os"
	"sync"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/seal"
)

const hintPassphrase = "give -p, --passphrase-file FILE or $" + seal.PassphraseEnv

// Load reads the passphrase from file (--passphrase-file), $BK_PASSPHRASE or
// the terminal, asking twice when confirm is set (a new archive).
func Load(file string, confirm bool) ([]byte, error) {
	p, err := seal.LoadPassphrase(file, os.Getenv, func() ([]byte, error) {
		return cli.ReadSecret("Enter passphrase: ", confirm)
	})
	if errors.Is(err, cli.ErrNoTerminal) || errors.Is(err, seal.ErrNoPassphrase) {
		return nil, cli.WithHint(err, "give --passphrase-file FILE or set "+seal.PassphraseEnv)
	}
	return p, err
}

// Hint adds to a key error of seal.Open the flags that give the key the
// archive wants; identities says whether -i was given. Other errors are
// returned as they are.
func Hint(err error, identities bool) error {
	var ke *seal.KeyError
	switch {
	case !errors.As(err, &ke):
		return err
	case ke.Passphrase:
		return cli.WithHint(err, hintPassphrase)
	case errors.Is(err, seal.ErrNoKey):
		return cli.WithHint(err, "give -i KEYFILE or -p")
	case !identities:
		return cli.WithHint(err, "give -i KEYFILE")
	}
	return err
}

// Keys are the keys of the identity files (-i) given, and the passphrase
// (asked for once, whatever the number of archives, and only when one is
// encrypted with a passphrase).
func Keys(identityFiles []string, passphraseFile string) (seal.Keys, error) {
	var keys seal.Keys
	ask := func(prompt string) ([]byte, error) { return cli.ReadSecret(prompt, false) }
	for _, path := range identityFiles {
		ids, err := seal.ReadIdentitiesFile(path, ask)
		if err != nil {
			return keys, err
		}
		keys.Identities = append(keys.Identities, ids...)
	}
	keys.Passphrase = sync.OnceValues(func() ([]byte, error) { return Load(passphraseFile, false) })
	return keys, nil
}
