package hostsfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bk-backup/bk/internal/remote"
	"github.com/bk-backup/bk/internal/remote/local"
	"github.com/bk-backup/bk/internal/remote/sftp"
	"github.com/bk-backup/bk/internal/units"
)

func TestParseLine(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line string
		want Host
	}{
		{"/mnt/usb", Host{Location: local.Location{Path: "/mnt/usb"}}},
		{"/mnt/usb/ quota=2TiB", Host{Location: local.Location{Path: "/mnt/usb"}, Quota: units.Bytes(2 << 40)}},
		{"file:///mnt/my%20disk", Host{Location: local.Location{Path: "/mnt/my disk"}}},
		{"file://localhost/mnt/x", Host{Location: local.Location{Path: "/mnt/x"}}},
		{`"/media/me/My Disk"  quota=1.5G`, Host{Location: local.Location{Path: "/media/me/My Disk"}, Quota: units.Bytes(3 << 29)}},
		{"~/bk", Host{Location: local.Location{Path: filepath.Join(home, "bk")}}},
		{"~", Host{Location: local.Location{Path: home}}},
		{"~root/bk", Host{Location: local.Location{Path: "/root/bk"}}},
		{"shares", Host{Location: local.Location{Path: "/etc/bk/shares"}}},
		{"./a:b", Host{Location: local.Location{Path: "/etc/bk/a:b"}}},
		{"../x", Host{Location: local.Location{Path: "/etc/x"}}},
		{"sftp://nas.local/srv/bk", Host{Location: sftp.Location{Host: "nas.local", Path: "/srv/bk"}}},
		{"sftp://me@nas.local:2222/srv/bk/", Host{Location: sftp.Location{User: "me", Host: "nas.local", Port: 2222, Path: "/srv/bk"}}},
		{"sftp://nas/~/bk", Host{Location: sftp.Location{Host: "nas", Path: "bk"}}},
		{"sftp://nas", Host{Location: sftp.Location{Host: "nas"}}},
		{"sftp://[::1]:22/x", Host{Location: sftp.Location{Host: "::1", Port: 22, Path: "/x"}}},
		{"nas:", Host{Location: sftp.Location{Host: "nas"}}},
		{"nas:bk quota=500G # the attic", Host{Location: sftp.Location{Host: "nas", Path: "bk"}, Quota: units.Bytes(500 << 30)}},
		{"me@nas:/srv/bk", Host{Location: sftp.Location{User: "me", Host: "nas", Path: "/srv/bk"}}},
		{"[fe80::1]:bk", Host{Location: sftp.Location{Host: "fe80::1", Path: "bk"}}},
		{"me@[fe80::1]:/bk", Host{Location: sftp.Location{User: "me", Host: "fe80::1", Path: "/bk"}}},
		{"\tnas:bk\t quota=1k ", Host{Location: sftp.Location{Host: "nas", Path: "bk"}, Quota: units.Bytes(1024)}},
	}
	for _, tt := range tests {
		got, ok, err := ParseLine(tt.line, "/etc/bk")
		if err != nil || !ok {
			t.Errorf("ParseLine(%q): %v, %v", tt.line, ok, err)
			continue
		}
		if !sameHost(got, tt.want) {
			t.Errorf("ParseLine(%q)\n got %+v\nwant %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseLineErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{"nas:bk quota", `option "quota": want key=value`},
		{"nas:bk quota=lots", `"lots" is not a size`},
		{"nas:bk quota=0", `must be more than 0`},
		{"nas:bk quota=-1G", `"-1G" is not a size`},
		{"nas:bk quota=99999999P", `too large`},
		{"nas:bk speed=fast", `unknown option "speed"`},
		{"s3://bucket/x", `unknown kind of destination`},
		{"sftp://", `no host name`},
		{"sftp://me:secret@nas/x", `holds a password`},
		{"sftp://nas:99999/x", `bad port`},
		{"sftp://nas:0/x", `bad port`},
		{"-oProxyCommand=evil:x", `may not start with '-'`},
		{"sftp://-oEvil/x", `may not start with '-'`},
		{"file://nas/x", `names a host`},
		{`"/my disk`, `missing closing quote`},
		{`"/my disk"quota=1G`, `need a space`},
		{`""`, `empty destination`},
		{"~nosuchuserhere/x", `nosuchuserhere`},
		{"file://", `empty folder name`},
	}
	for _, tt := range tests {
		_, _, err := ParseLine(tt.line, "/etc/bk")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseLine(%q) = %v, want error containing %q", tt.line, err, tt.want)
		}
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "hosts")
	text := "# backup destinations\n\n/mnt/usb\n  # indented comment\nnas:bk quota=1T\nrel\n"
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts, err := ParseFile(name)
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{
		{File: name, Line: 3, Location: local.Location{Path: "/mnt/usb"}},
		{File: name, Line: 5, Location: sftp.Location{Host: "nas", Path: "bk"}, Quota: units.Bytes(1 << 40)},
		{File: name, Line: 6, Location: local.Location{Path: filepath.Join(dir, "rel")}},
	}
	if len(hosts) != len(want) {
		t.Fatalf("got %d hosts, want %d: %+v", len(hosts), len(want), hosts)
	}
	for i := range want {
		if !sameHost(hosts[i], want[i]) {
			t.Errorf("host %d:\n got %+v\nwant %+v", i, hosts[i], want[i])
		}
	}
}

func TestParseErrorNamesFileAndLine(t *testing.T) {
	_, err := Parse(strings.NewReader("/a\n\nnas:x bogus=1\n"), "hosts.txt", "/")
	if err == nil || !strings.HasPrefix(err.Error(), `hosts.txt:3: unknown option "bogus"`) {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("no error for a missing hosts file")
	}
	_, err = Parse(strings.NewReader("rel\n"), "", "")
	if err == nil || !strings.HasPrefix(err.Error(), "line 1: relative folder") {
		t.Fatalf("got %v", err)
	}
}

// A host on two lines is refused, naming both lines, however the two
// lines write it; different folders of one server are different hosts.
func TestParseRefusesRepeatedHost(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"/srv/a\nnas:x\n# c\n/srv/a\n", "hosts:4: file:///srv/a is on line 1 already: list each host once"},
		{"/srv/a quota=1G\nfile:///srv/a/\n", "hosts:2: file:///srv/a is on line 1 already: list each host once"},
		{"nas:x\nsftp://nas/~/x\n", "hosts:2: sftp://nas/~/x is on line 1 already: list each host once"},
	} {
		if _, err := Parse(strings.NewReader(tt.file), "hosts", "/"); err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %s", tt.file, err, tt.want)
		}
	}
	hosts, err := Parse(strings.NewReader("nas:x\nnas:y\nsftp://me@nas/~/x\n"), "hosts", "/")
	if err != nil || len(hosts) != 3 {
		t.Fatalf("three different hosts: %d, %v", len(hosts), err)
	}
}

func TestHostString(t *testing.T) {
	for _, tt := range []struct {
		h    Host
		want string
	}{
		{Host{Location: local.Location{Path: "/mnt/usb"}}, "/mnt/usb"},
		{Host{Location: sftp.Location{Host: "nas.local", User: "me"}}, "nas.local"},
		{Host{Location: sftp.Location{Host: "127.0.0.1", Port: 2222}}, "127.0.0.1:2222"},
	} {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.h, got, tt.want)
		}
	}
}

// sameHost compares hosts, their quotas by bytes: a quota keeps its text for
// messages.
func sameHost(a, b Host) bool {
	if a.Quota.Bytes != b.Quota.Bytes {
		return false
	}
	a.Quota, b.Quota = units.Size{}, units.Size{}
	return a == b
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"/mnt/usb quota=1G", "sftp://u@h:22/p", "[::1]:x", `"a b" quota=1`, "~/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		h, ok, err := ParseLine(line, "/base")
		if err != nil || !ok {
			return
		}
		switch loc := h.Location.(type) {
		case sftp.Location:
			if loc.Host == "" || strings.HasPrefix(loc.Host, "-") {
				t.Fatalf("%q gave host %q", line, loc.Host)
			}
		case local.Location:
			if !filepath.IsAbs(loc.Path) {
				t.Fatalf("%q gave relative folder %q", line, loc.Path)
			}
		default:
			t.Fatalf("%q gave %T", line, loc)
		}
		back, err := remote.ParseLocation(h.URL(), "")
		if err != nil || back != h.Location {
			t.Fatalf("%q: URL %s reads back as %+v, %v", line, h.URL(), back, err)
		}
		if h.Quota.Bytes < 0 {
			t.Fatalf("%q gave quota %d", line, h.Quota.Bytes)
		}
	})
}

func TestURLRoundTrip(t *testing.T) {
	for _, line := range []string{
		"/mnt/usb/bk quota=1G", `"/srv/with space"`, "sftp://bk@nas:2222/srv/bk", "sftp://nas/~/bk",
		"friend@vps.example.org:bk", "vps:", "[::1]:/srv/bk", "sftp://[::1]:22/x",
	} {
		h, _, err := ParseLine(line, "")
		if err != nil {
			t.Fatal(err)
		}
		u := h.URL()
		got, err := remote.ParseLocation(u, "")
		if err != nil {
			t.Errorf("%s → %s: %v", line, u, err)
			continue
		}
		if got != h.Location {
			t.Errorf("%s → %s → %+v, want %+v", line, u, got, h.Location)
		}
	}
}

// TestVerifyOption: verify=yes asks Verify of that host's uploads; the
// flag's Verify stays on for every host.
func TestVerifyOption(t *testing.T) {
	for line, want := range map[string][2]bool{"nas:bk verify=yes": {true, true}, "nas:bk verify=no": {false, true}, "nas:bk": {false, true}} {
		h, _, err := ParseLine(line, "")
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if got := h.DialOptions(remote.DialOptions{}).Verify; got != want[0] {
			t.Errorf("%s: Verify %v, want %v", line, got, want[0])
		}
		if got := h.DialOptions(remote.DialOptions{Verify: true}).Verify; got != want[1] {
			t.Errorf("%s with --verify: Verify %v, want %v", line, got, want[1])
		}
	}
	_, _, err := ParseLine("nas:bk verify=true", "")
	if err == nil || err.Error() != `option verify: "true" is not yes or no` {
		t.Fatalf("verify=true: %v", err)
	}
}

// TestFsyncOption: fsync=no spares that host's uploads the fsync; yes,
// the default, does not.
func TestFsyncOption(t *testing.T) {
	for line, want := range map[string]bool{"nas:bk fsync=no": true, "nas:bk fsync=yes": false, "nas:bk": false} {
		h, _, err := ParseLine(line, "")
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if got := h.DialOptions(remote.DialOptions{}).NoFsync; got != want {
			t.Errorf("%s: NoFsync %v, want %v", line, got, want)
		}
	}
	_, _, err := ParseLine("nas:bk fsync=off", "")
	if err == nil || err.Error() != `option fsync: "off" is not yes or no` {
		t.Fatalf("fsync=off: %v", err)
	}
}

// TestOptionTwice: a key given twice on a line is an error, not the last
// value silently.
func TestOptionTwice(t *testing.T) {
	for _, line := range []string{"nas:bk quota=1G quota=2G", "/srv/bk fsync=no verify=yes fsync=yes"} {
		_, _, err := ParseLine(line, "")
		key := map[bool]string{true: "quota", false: "fsync"}[strings.Contains(line, "quota")]
		if err == nil || err.Error() != "option "+key+" given twice" {
			t.Errorf("%s: %v", line, err)
		}
	}
}

// TestAppendOnlyOption: append-only= takes yes, no or admin, and only yes
// asks the kind of host to work append-only.
func TestAppendOnlyOption(t *testing.T) {
	for val, want := range map[string]AppendOnly{"yes": AppendOnlyClient, "no": NotAppendOnly, "admin": AppendOnlyAdmin} {
		h, _, err := ParseLine("nas:bk append-only="+val, "")
		if err != nil || h.AppendOnly != want || h.DialOptions(remote.DialOptions{}).AppendOnly != (val == "yes") {
			t.Fatalf("append-only=%s: %v, %v", val, h.AppendOnly, err)
		}
	}
	_, _, err := ParseLine("nas:bk append-only=true", "")
	if err == nil || err.Error() != `option append-only: "true" is not yes, no or admin` {
		t.Fatalf("append-only=true: %v", err)
	}
}
