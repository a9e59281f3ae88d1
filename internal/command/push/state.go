package push

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/state"
)

// packWait is how long bk-push waits, once its input has ended, for bk-pack
// to let go of the state folder: bk-pack records its end and exits as its
// output closes, so this is only a bound against a hung process.
const packWait = time.Minute

// ErrPackUnfinished means bk-pack did not finish the archive that arrived.
var ErrPackUnfinished = errors.New("the pack stage did not finish")

// handshake is bk-push's side of an incremental series: it checks, once the
// shares are stored, what bk-pack recorded against the stream that arrived,
// fills in the manifest's chain fields, and advances the state once the
// backup is kept.
type handshake struct {
	dir     string
	series  *state.Series
	pending state.Pending
	// standing says why the backup of that ID cannot be built on, nil
	// when it can.
	standing func(id string) error
}

// beforeManifest is push.Options.BeforeManifest.
func (h *handshake) beforeManifest(m *manifest.Manifest) error {
	s, err := state.OpenWait(h.dir, "bk-push", packWait)
	if err != nil {
		return err
	}
	h.series = s
	p, err := s.ReadPending()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: no bk-pack --state %s run to store", ErrPackUnfinished, h.dir)
	case err != nil:
		return fmt.Errorf("state: %w", err)
	case !p.Finished:
		return fmt.Errorf("%w (it was killed, or failed): nothing was stored", ErrPackUnfinished)
	case p.ArchiveSize != m.StreamSize:
		return fmt.Errorf("%w: bk-pack wrote %d bytes, %d arrived: nothing was stored", ErrPackUnfinished, p.ArchiveSize, m.StreamSize)
	}
	h.pending = p
	if p.Level == 0 {
		return nil
	}
	c, err := s.Chain()
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	last := c.Members[len(c.Members)-1]
	if c.Chain != p.Chain || last.Pack != p.Parent || len(c.Members) != p.Level {
		return errors.New("state: the series moved on since bk-pack ran: nothing was stored")
	}
	m.Chain = p.Chain
	m.Level = p.Level
	for _, a := range c.Members {
		if a.ID == "" {
			return fmt.Errorf("state: backup %s of the chain was not stored by bk-push, so this one cannot name it; start a new chain with bk-pack --full", a.Pack)
		}
		m.Ancestors = append(m.Ancestors, manifest.Ancestor{ID: a.ID, SetID: a.SetID, StreamHash: a.StreamHash})
	}
	m.Parent = last.ID
	// A retention that keeps nothing recent may have pruned the parent: an
	// incremental backup on it would never restore.
	if err := h.standing(m.Parent); err != nil {
		return cli.WithHint(fmt.Errorf("backup %s, which this incremental one builds on, %w: nothing was stored", m.Parent, err),
			"make a full backup: bk-pack --full (bk-backup does so by itself); keep more with bk-prune --keep-last")
	}
	return nil
}

// commit advances the state to the stored backup.
func (h *handshake) commit(m *manifest.Manifest) error {
	if err := h.series.Commit(h.pending, state.Member{ID: m.ID, SetID: m.SetID, StreamHash: m.StreamHash}); err != nil {
		return fmt.Errorf("state: the backup was stored, but the state could not advance (the next run covers this one again): %w", err)
	}
	return nil
}

func (h *handshake) close() {
	if h.series != nil {
		h.series.Close()
	}
}
