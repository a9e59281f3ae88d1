package manifest

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
)

// The layout of names and IDs as regexps: validName and splitID must
// accept exactly what these match, and split IDs as their groups do.
var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	idPattern   = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})-(\d{8}T\d{6}Z)-([0-9a-f]{8})$`)
)

func TestIDsAsRegexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aZ09_.-TZ/ é\x00fF")
	good := []string{"home-20260101T023000Z-0123abcd", "a-b-c-20991231T235959Z-ffffffff", "x-00000000T000000Z-00000000"}
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'n'
	}
	good = append(good, string(long)+"-20260101T023000Z-0123abcd", string(long)+"n-20260101T023000Z-0123abcd")
	var ids []string
	for _, g := range good {
		ids = append(ids, g, g[1:], g[:len(g)-1], "-"+g, g+"0")
		for range 200 {
			b := []byte(g)
			for range 1 + rng.IntN(2) {
				b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
			}
			ids = append(ids, string(b))
		}
	}
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		ids = append(ids, string(b))
	}
	accepted := 0
	for _, id := range ids {
		name, stamp, ok := splitID(id)
		m := idPattern.FindStringSubmatch(id)
		if ok != (m != nil) || ok && (name != m[1] || stamp != m[2]) {
			t.Errorf("splitID(%q) = %q, %q, %v; the regexp matches %q", id, name, stamp, ok, m)
		}
		if ok {
			accepted++
		}
		if validName(id) != namePattern.MatchString(id) {
			t.Errorf("validName(%q) = %v", id, validName(id))
		}
		if name := id[:min(len(id), 5)]; validName(name) != namePattern.MatchString(name) {
			t.Errorf("validName(%q) = %v", name, validName(name))
		}
	}
	if accepted < 100 {
		t.Errorf("only %d of %d IDs accepted: the test has too few good ones", accepted, len(ids))
	}
}

// ParseManifestPath takes a revision's suffix as the regexp it replaced did.
func TestRevisionsAsRegexp(t *testing.T) {
	revision := regexp.MustCompile(`^(.*)\.r([1-9][0-9]{0,8})$`)
	id := "home-20260101T023000Z-0123abcd"
	for _, suffix := range []string{"", ".r1", ".r2", ".r17", ".r0", ".r02", ".r123456789", ".r1234567890", ".rx", ".r", ".r2.r3", ".r2x", "r2"} {
		base := id + suffix
		wantID, wantRev, wantOK := base, 1, true
		if m := revision.FindStringSubmatch(base); m != nil {
			wantID = m[1]
			wantRev, _ = strconv.Atoi(m[2])
			wantOK = wantRev >= 2
		}
		wantOK = wantOK && idPattern.MatchString(wantID)
		gotID, gotRev, gotOK := ParseManifestPath(base + ManifestSuffix)
		if gotOK != wantOK || gotOK && (gotID != wantID || gotRev != wantRev) {
			t.Errorf("ParseManifestPath(%q) = %q %d %v, the regexp says %q %d %v", base+ManifestSuffix, gotID, gotRev, gotOK, wantID, wantRev, wantOK)
		}
	}
}
