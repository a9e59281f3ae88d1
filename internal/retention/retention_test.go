package retention

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/bk-backup/bk/internal/manifest"
)

// A month of nightly backups, a full one every 7 days and incremental ones
// between: the policy's set, plus the ancestors the kept incrementals need.
func TestKeepMonthOfChains(t *testing.T) {
	var all []*manifest.Manifest
	var chain []manifest.Ancestor
	day := map[string]int{}
	for d := 1; d <= 30; d++ {
		at := time.Date(2026, 11, d, 3, 0, 0, 0, time.UTC)
		m := &manifest.Manifest{ID: fmt.Sprintf("home-202611%02dT030000Z-0000000%d", d, d%10), Name: "home", Time: at}
		if (d-1)%7 == 0 {
			chain = nil
		} else {
			m.Parent = chain[len(chain)-1].ID
			m.Level = len(chain)
			m.Ancestors = slices.Clone(chain)
		}
		chain = append(chain, manifest.Ancestor{ID: m.ID})
		day[m.ID] = d
		all = append(all, m)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) // a Monday
	keep := Keep(all, Policy{Last: 2, Daily: 4, Weekly: 4, Monthly: 1}, now)
	var days []int
	for id := range maps.Keys(keep) {
		days = append(days, day[id])
	}
	slices.Sort(days)
	// last 2: 30, 29; daily 4: 30..27; weekly 4: 30, 29, 22, 15; monthly: 30.
	// 27 and 28 are incrementals of the chain of 22: 23..26 are needed.
	want := []int{15, 22, 23, 24, 25, 26, 27, 28, 29, 30}
	if !slices.Equal(days, want) {
		t.Fatalf("kept days %v, want %v", days, want)
	}
	if why := keep[all[22].ID]; why != "needed by "+all[26].ID && why != "needed by "+all[27].ID {
		t.Errorf("day 23 kept as %q", why)
	}
	if got := Keep(all, Policy{Within: 36 * time.Hour}, now); len(got) != 2 { // 29 and 30; 29 is also 30's full
		t.Errorf("within 36h keeps %v", got)
	}
}
