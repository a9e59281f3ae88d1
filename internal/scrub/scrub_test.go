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

// A share with a few bad blocks counts stripe by stripe: the seed-5 year
// of the soak had three shares of a 3-of-5 backup each with one rotten
// block, in three stripes, and bk-check called it lost (two shares good)
// while every stripe had four good blocks.
func TestJudgeByStripes(t *testing.T) {
	good := Share{Good: true}
	bad := func(stripes ...int64) Share { return Share{Problem: "rot", BadStripes: stripes} }
	whole := Share{Problem: "trailer"} // bad as a whole
	for _, tt := range []struct {
		shares []Share
		want   State
	}{
		{[]Share{good, good, bad(1), bad(10), bad(7)}, Degraded}, // 4 good blocks in each stripe
		{[]Share{good, good, bad(1, 2), bad(2), bad(7)}, AtRisk}, // stripe 2: 3
		{[]Share{good, good, bad(2), bad(2), bad(2)}, Lost},      // stripe 2: 2
		{[]Share{good, good, bad(2), whole, whole}, Lost},        // stripe 2: 2
		{[]Share{good, good, bad(2), whole, good}, AtRisk},       // stripe 2: 3
		{[]Share{good, good, good, good, bad(9)}, Degraded},
		{[]Share{good, whole, bad(3), bad(4), {Missing: true}}, Lost}, // stripes 3 and 4: 2 each
	} {
		r := &Report{Manifest: &manifest.Manifest{K: 3, N: 5}, Shares: tt.shares}
		r.judge()
		if r.State != tt.want {
			t.Errorf("%+v: %s, want %s", tt.shares, r.State, tt.want)
		}
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
