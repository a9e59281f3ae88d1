package job

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `# a job
format = 1
path = /home
recipients-file = /etc/bk/recipients
k = 2
n = 3
hosts = /etc/bk/hosts
`

func write(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "home.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadGood(t *testing.T) {
	c, err := Load(write(t, good+"exclude = *.tmp\nexclude = cache\nstage = tee /tmp/x\n"), "home")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "home" || c.StateDir != "/var/lib/bk/home" || len(c.Excludes) != 2 {
		t.Fatalf("got %+v", c)
	}
	line := ShellLine(c.Pipeline(false))
	want := "cd / && bk-pack --state /var/lib/bk/home/series -R /etc/bk/recipients --exclude '*.tmp' --exclude cache home | sh -c 'tee /tmp/x' | bk-split -k 2 -n 3 | bk-push --state /var/lib/bk/home/series --name home /etc/bk/hosts"
	if line != want {
		t.Fatalf("pipeline\n got %s\nwant %s", line, want)
	}
}

func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"path = /home\n", `:1: the first setting must be "format = 1"`},
		{"format = 2\n", `:1: format "2": this bk-backup reads format 1`},
		{good + "colour = blue\n", `:8: unknown key "colour"`},
		{good + "k = 3\n", `:8: k given twice (first on line 5)`},
		{good + "just words\n", `:8: want KEY = VALUE`},
		{good + "nice = 40\n", `:8: nice: "40" is not a whole number from -20 to 19`},
		{good + "keep-within = soon\n", `:8: keep-within:`},
		{good + "ionice = fast\n", `:8: ionice: "fast": want idle`},
		{strings.Replace(good, "n = 3", "n = 2\nk = 2", 1), `:7: k given twice`},
		{strings.Replace(good, "k = 2", "k = 3", 1), `k = 3 must be less than n = 3`},
		{strings.Replace(good, "k = 2", "k = 1", 1) + "min-shares = 1\n", `min-shares = 1 must be from 2 (the least bk-join counts, k = 1) to n = 3`},
		{good + "min-shares = 1\n", `min-shares = 1 must be from 2 (the least bk-join counts, k = 2) to n = 3`},
		{strings.Replace(good, "hosts = /etc/bk/hosts\n", "", 1), `no hosts`},
		{good + "plaintext = yes\n", `say how to encrypt, one way`},
		{"", `empty: a config starts with "format = 1"`},
	} {
		path := write(t, tc.text)
		_, err := Load(path, "home")
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: got %v, want %s…%s", tc.text, err, path, tc.want)
		}
	}
}

func TestSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("secret\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(good, "recipients-file = /etc/bk/recipients", "passphrase-file = "+pass, 1)
	if _, err := Load(write(t, text), "home"); err == nil || !strings.Contains(err.Error(), "is mode 0640: a secret must be readable by its owner only") {
		t.Fatalf("group-readable passphrase file: got %v", err)
	}
	if err := os.Chmod(pass, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(write(t, text), "home"); err != nil {
		t.Fatal(err)
	}
}

func TestCombine(t *testing.T) {
	for _, tc := range []struct {
		exits []int
		want  int
	}{
		{[]int{0, 0, 0}, 0},
		{[]int{3, 0, 0}, 3},
		{[]int{0, 3, 1}, 1},
		{[]int{3, 2, 1}, 2},
		{[]int{130, 1, 130}, 130},
	} {
		var rs []StageResult
		for _, e := range tc.exits {
			rs = append(rs, StageResult{Exit: e})
		}
		if got := Combine(rs); got != tc.want {
			t.Errorf("Combine(%v) = %d, want %d", tc.exits, got, tc.want)
		}
	}
}
