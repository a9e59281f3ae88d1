package find

import "testing"

func TestMatchRanks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		sensitive     bool
		rank          int
		ok            bool
	}{
		{"report.pdf", "home/me/Report.PDF", false, RankName, true},
		{"report.pdf", "home/me/Report.PDF", true, 0, false},
		{"repo", "home/me/report.pdf", false, RankPrefix, true},
		{"port", "home/me/report.pdf", false, RankInName, true},
		{"me/rep", "home/me/report.pdf", false, RankInPath, true},
		{"rprt", "home/me/report.pdf", false, RankScattered, true},
		{"tpr", "home/me/report.pdf", false, 0, false},
		{"*.PDF", "home/me/report.pdf", false, RankGlobName, true},
		{"home/*", "home/me/report.pdf", false, RankGlobPath, true},
		{"*.txt", "home/me/report.pdf", false, 0, false},
		{"hôme", "HÔME/x", false, RankInPath, true},
	} {
		m, err := New(tc.pattern, tc.sensitive)
		if err != nil {
			t.Fatal(err)
		}
		rank, ok := m.Match(tc.name)
		if ok != tc.ok || (ok && rank != tc.rank) {
			t.Errorf("%q on %q: rank %d, %v; want %d, %v", tc.pattern, tc.name, rank, ok, tc.rank, tc.ok)
		}
	}
	if _, err := New("[", false); err == nil {
		t.Error("a bad glob is accepted")
	}
}
