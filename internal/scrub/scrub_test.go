package scrub

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/manifest"
	"github.com/bk-backup/bk/internal/shard"
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

// A share on a host down may be whole there: a backup it could still
// make restorable is at risk and waits for that host, not lost; one that
// even it could not save is lost.
func TestJudgeWithHostDown(t *testing.T) {
	good := Share{Good: true}
	bad := Share{Problem: "rot", BadStripes: []int64{0}}
	whole := Share{Problem: "trailer"}
	down := Share{Missing: true, Problem: "host unreachable", Unreachable: true, Host: "nas"}
	for _, tt := range []struct {
		shares []Share
		want   State
		waits  bool
	}{
		{[]Share{good, good, bad, bad, down}, AtRisk, true},   // stripe 0: 2 reached, 3 with nas
		{[]Share{good, whole, bad, bad, down}, Lost, false},   // stripe 0: 1, 2 with nas
		{[]Share{good, good, good, bad, down}, AtRisk, false}, // stripe 0: 3 reached
		{[]Share{good, good, whole, whole, down}, AtRisk, true},
		{[]Share{good, bad, bad, down, down}, AtRisk, true}, // two shares on nas: named once
	} {
		r := &Report{Manifest: &manifest.Manifest{K: 3, N: 5}, Shares: tt.shares}
		r.judge()
		if r.State != tt.want || (len(r.WaitsFor) > 0) != tt.waits || len(r.WaitsFor) > 1 {
			t.Errorf("%+v: %s, waits for %v; want %s, waiting %v", tt.shares, r.State, r.WaitsFor, tt.want, tt.waits)
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

// TestCheckBlocksListsBadStripes: a full check reads a share on past its
// bad blocks and names them all; past maxBadStripes the share is bad as a
// whole (an error that lists nothing), and the read stops.
func TestCheckBlocksListsBadStripes(t *testing.T) {
	const stripes = maxBadStripes + 10
	in := make([]byte, stripes*shard.MinBlockSize)
	if _, err := rand.Read(in); err != nil {
		t.Fatal(err)
	}
	var share0, share1 bytes.Buffer
	opts := shard.SplitOptions{K: 1, N: 2, BlockSize: shard.MinBlockSize, Workers: 1}
	if _, _, err := shard.Split(context.Background(), bytes.NewReader(in), []io.Writer{&share0, &share1}, opts); err != nil {
		t.Fatal(err)
	}
	hdr, err := shard.ReadHeader(bytes.NewReader(share0.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	check := func(rot func(stripe int64) bool) error {
		b := bytes.Clone(share0.Bytes())
		for s := range int64(stripes) {
			if rot(s) {
				b[hdr.Offset(s)] ^= 1 // the first byte of the stripe's block
			}
		}
		body := b[hdr.Offset(0):hdr.Offset(stripes)]
		return checkBlocks(bytes.NewReader(body), hdr, stripes, 0, nil, shard.NewMetaHash(hdr.BlockSize))
	}
	if err := check(func(int64) bool { return false }); err != nil {
		t.Fatalf("a whole share: %v", err)
	}
	var bad *badBlocks
	err = check(func(s int64) bool { return s == 3 || s == 700 || s == stripes-1 })
	if !errors.As(err, &bad) || len(bad.stripes) != 3 || bad.stripes[0] != 3 || bad.stripes[1] != 700 || bad.stripes[2] != stripes-1 {
		t.Fatalf("three bad blocks: got %v, want stripes 3, 700 and %d listed", err, stripes-1)
	}
	err = check(func(int64) bool { return true })
	if err == nil || errors.As(err, &bad) || !strings.HasPrefix(err.Error(), "stripes 0 and ") {
		t.Fatalf("every block bad: got %v, want the share bad as a whole", err)
	}
}
