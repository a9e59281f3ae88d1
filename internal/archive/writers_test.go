package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The file writers keep the archive's order where it shows: a name met
// twice ends as the later entry, whichever writer made the earlier one; a
// hard link finds its target made; a directory replaces a file of the same
// name; files of several directories land in their own.
func TestWritersKeepOrder(t *testing.T) {
	t.Parallel()
	file := func(name, body string) raw { return raw{name: name, typ: '0', body: body} }
	var ents []raw
	want := map[string]string{}
	for _, d := range []string{"d", "e"} {
		ents = append(ents, raw{name: d + "/", typ: '5'})
		for i := range 60 {
			name := fmt.Sprintf("%s/f%02d", d, i)
			body := "first " + name
			if i%10 == 0 {
				// Slow to write, to be overtaken by its next version if
				// another writer made that.
				body += strings.Repeat(".", 100<<10)
			}
			ents = append(ents, file(name, body))
			want[name] = body
			if i%7 == 3 {
				// A hard link to the file just made, by either writer.
				ents = append(ents, raw{name: name + ".link", typ: '1', link: name})
				want[name+".link"] = body
			}
			if i%10 == 0 || i%10 == 3 {
				// A name met again, 1 to 3 entries later.
				again := fmt.Sprintf("%s/f%02d", d, i-i%10)
				ents = append(ents, file(again, "again "+again))
				want[again] = "again " + again
			}
		}
	}
	ents = append(ents, file("d/x", "a file first"), raw{name: "d/x/", typ: '5'}, file("d/x/in", "in"))
	want["d/x/in"] = "in"
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Extract(context.Background(), bytes.NewReader(rawTar(ents...)), out, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, body := range want {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || string(got) != body {
			t.Errorf("%s: %.20q, %v; want %.20q", name, got, err, body)
		}
	}
	// A link made before its target was met again keeps the first content
	// (the later entry is a new file), as in GNU tar.
	for name := range want {
		if target, ok := strings.CutSuffix(name, ".link"); ok {
			fa, _ := os.Stat(filepath.Join(out, name))
			fb, _ := os.Stat(filepath.Join(out, target))
			if same := os.SameFile(fa, fb); same != (want[name] == want[target]) {
				t.Errorf("%s and %s: same file %v", name, target, same)
			}
		}
	}
}

// A file refused by a writer fails the restore with its own error, not
// with what went wrong further on, and leaves nothing.
func TestWriterErrorComesFirst(t *testing.T) {
	t.Parallel()
	file := func(name, body string) raw { return raw{name: name, typ: '0', body: body} }
	ents := []raw{file("a/b", "makes the directory a"), file("a", "replaces it")}
	for i := range 30 {
		ents = append(ents, file(fmt.Sprintf("f%02d", i), "after"))
	}
	data := rawTar(ents...)
	out := filepath.Join(t.TempDir(), "out")
	_, err := Extract(context.Background(), bytes.NewReader(data[:len(data)-2048]), out, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), `"a": replaces a directory`) {
		t.Fatalf("got %v, want the refusal of a", err)
	}
	if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was left behind", out)
	}
}
