package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

// readEntries reads every entry and its content as the extractor would, and
// says what it saw, warnings and the final error in their place.
func readEntries(data []byte, viaAhead bool) string {
	var log strings.Builder
	warn := func(format string, args ...any) { fmt.Fprintf(&log, "warning: "+format+"\n", args...) }
	sel, _ := newSelector([]string{"keep", "big", "marked"})
	sc := newMemberScanner(context.Background(), bytes.NewReader(data), sel, nil, warn, false)
	next, content := sc.next, func(e *entry) ([]byte, error) {
		var b bytes.Buffer
		_, err := sc.copyContent(&b, e)
		return b.Bytes(), err
	}
	if viaAhead {
		a := newAhead(sc, warn, nil)
		defer a.close()
		next, content = a.next, func(*entry) ([]byte, error) { return io.ReadAll(a.content()) }
	}
	for i := 0; ; i++ {
		e, err := next()
		if err != nil {
			fmt.Fprintf(&log, "end: %v\n", err)
			return log.String()
		}
		fmt.Fprintf(&log, "%s selected=%v", e.name, e.selected)
		if e.selected && i%3 != 0 { // some entries' content is left unread
			b, err := content(e)
			fmt.Fprintf(&log, " %d bytes %x err=%v", len(b), b[:min(len(b), 8)], err)
		}
		log.WriteByte('\n')
	}
}

// The read-ahead gives the extractor the entries, their content, the
// scanner's warnings and its errors exactly as the scanner read in line
// does: over batch boundaries, past the item limit of a batch, with
// content left unread, and on a stream cut anywhere.
func TestAheadSameAsInLine(t *testing.T) {
	t.Parallel()
	var ents []raw
	for i := range aheadItems + 40 {
		ents = append(ents, raw{name: fmt.Sprintf("keep/f%d", i), typ: '0', body: strings.Repeat(string(rune('a'+i%26)), i*37%5000)})
		if i%50 == 0 {
			ents = append(ents, raw{name: fmt.Sprintf("skip/f%d", i), typ: '0', body: "not selected"})
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (2*aheadBytes+aheadMinRoom+7)/16)
	ents = append(ents, raw{name: "big", typ: '0', body: string(big)})
	ents = append(ents, raw{name: "marked", typ: '0', body: "half read"},
		raw{name: "GlobalHead", typ: 'g', pax: nil, body: paxRecord(damagedPath, "marked") + paxRecord(damagedReason, "it moved")})
	ents = append(ents, raw{name: "keep/last", typ: '0', body: "last"})
	data := rawTar(ents...)
	for _, cut := range []int{len(data), len(data) - 1024, len(data) / 2, len(data) - len(big)/2, 3000} {
		want, got := readEntries(data[:cut], false), readEntries(data[:cut], true)
		if got != want {
			t.Errorf("cut at %d of %d: read ahead:\n%s\nin line:\n%s", cut, len(data), got, want)
		}
		if cut == len(data) && (!strings.Contains(got, "warning: marked: damaged") || !strings.Contains(got, "end: EOF")) {
			t.Errorf("the whole archive did not read as expected:\n%s", got)
		}
	}
}
