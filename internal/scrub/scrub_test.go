package scrub

import (
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/manifest"
)

func TestStateOf(t *testing.T) {
	for _, tt := range []struct {
		good, k, n int
		want       State
	}{
		{5, 3, 5, Healthy},
		{4, 3, 5, Degraded},
		{3, 3, 5, AtRisk},
		{2, 3, 5, Lost},
		{0, 1, 2, Lost},
		{1, 1, 2, AtRisk},
	} {
		if got := StateOf(tt.good, tt.k, tt.n); got != tt.want {
			t.Errorf("StateOf(%d, %d, %d) = %s, want %s", tt.good, tt.k, tt.n, got, tt.want)
		}
	}
	if Worse(Degraded, Healthy) != Degraded || Worse(AtRisk, Lost) != Lost || Worse(Healthy, Healthy) != Healthy {
		t.Error("Worse does not order the states")
	}
}

// An incremental backup is no better than its chain, and lost without a
// link of it.
func TestWithChain(t *testing.T) {
	m := &manifest.Manifest{Ancestors: []manifest.Ancestor{{ID: "full"}, {ID: "inc1"}}}
	states := map[string]State{"full": Healthy, "inc1": AtRisk}
	if st, why := WithChain(m, Healthy, states); st != AtRisk || why != "" {
		t.Errorf("with an ancestor at risk: %s %q", st, why)
	}
	delete(states, "inc1")
	if st, why := WithChain(m, Healthy, states); st != Lost || !strings.Contains(why, "inc1") {
		t.Errorf("with an ancestor missing: %s %q", st, why)
	}
	if st, _ := WithChain(&manifest.Manifest{}, Degraded, nil); st != Degraded {
		t.Errorf("a full backup: %s", st)
	}
}
