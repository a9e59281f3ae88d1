package soak

import (
	"math/rand/v2"
)

// Kinds of fault, as the summary counts them.
const (
	faultRot       = "bit rot"
	faultTruncate  = "share truncated"
	faultCut       = "stage cut short and killed"
	faultKill      = "stage killed (SIGKILL)"
	faultPruneKill = "prune killed mid-way"
	faultClockBack = "clock back an hour"
	faultClockFwd  = "clock forward an hour"
	faultOffline   = "host offline"
	faultDeath     = "host died"
	faultQuota     = "host quota full"
	faultStale     = "host back with stale data"
)

// night is what the plan holds for one night, beside the tree's changes.
type night struct {
	offline, back  []string // hosts going offline, coming back
	die            string   // a host that dies for good
	replace        string   // the dead host the admin replaces with a new spare
	snapshot       string   // a host whose folder is copied, to come back stale
	stale          string   // a host that comes back with its snapshot
	quota, unquota string   // a host whose quota fills up, is raised again
	rot            int      // bytes of shares flipped
	truncate       bool
	cut, kill      bool // a stage cut short, a stage SIGKILLed
	pruneKill      bool
	clockBack      bool // a second run, an hour earlier on the clock
	clockFwd       bool // the run an hour late
}

// makePlan lays out the year from the seed and the number of nights alone,
// so that a replay meets the same events whatever the tools did. The short
// form has fewer faults.
func makePlan(seed uint64, nights int, short bool) []night {
	rng := rand.New(rand.NewPCG(seed, 0x504c414e))
	p := make([]night, nights+12)
	busy := make([]bool, len(p)) // a host already out that night
	reserve := func(from, to int) bool {
		if from < 1 || to >= nights {
			return false
		}
		for i := from; i <= to; i++ {
			if busy[i] {
				return false
			}
		}
		for i := from; i <= to; i++ {
			busy[i] = true
		}
		return true
	}
	// h1 dies for good; the admin notices and replaces it three nights later.
	if d := nights * 2 / 5; reserve(d, d+7) {
		p[d].die = "h1"
		p[d+3].replace = "h1"
	}
	// h0 goes offline and comes back a week later with its disk restored
	// from a copy made the night before it went.
	if s := nights * 3 / 5; reserve(s, s+9) {
		p[s].snapshot = "h0"
		p[s+1].offline = append(p[s+1].offline, "h0")
		p[s+8].stale = "h0"
	}
	// h2 runs out of quota for a few weeks.
	if q := nights / 4; q > 0 {
		p[q].quota = "h2"
		p[q+min(20, nights/6)].unquota = "h2"
	}
	episodes, kills, cuts, prunes, truncs := 6, 4, 4, 4, 2
	rotChance := 0.35
	if short {
		episodes, kills, cuts, prunes, truncs, rotChance = 2, 1, 1, 1, 1, 0.2
	}
	for tries := 0; episodes > 0 && tries < 1000; tries++ {
		h := []string{"h2", "h3", "h4"}[rng.IntN(3)]
		from := 1 + rng.IntN(max(1, nights-6))
		days := 1 + rng.IntN(4)
		if reserve(from, from+days) {
			p[from].offline = append(p[from].offline, h)
			p[from+days].back = append(p[from+days].back, h)
			episodes--
		}
	}
	some := func(n int, set func(*night)) {
		for ; n > 0; n-- {
			set(&p[2+rng.IntN(max(1, nights-2))])
		}
	}
	some(kills, func(n *night) { n.kill = true })
	some(cuts, func(n *night) { n.cut = true })
	some(prunes, func(n *night) { n.pruneKill = true })
	some(truncs, func(n *night) { n.truncate = true })
	for i := 1; i < nights; i++ {
		for rng.Float64() < rotChance {
			p[i].rot++
			if p[i].rot > 3 {
				break
			}
		}
	}
	// Daylight saving, as a clock that is not kept in UTC sees it.
	if f := nights * 3 / 12; f > 2 {
		p[f].clockFwd = true
	}
	if b := nights * 10 / 12; b > 2 {
		p[b].clockBack = true
	}
	return p[:nights]
}
