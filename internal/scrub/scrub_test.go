package scrub

import "testing"

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
