package connect

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/bk-backup/bk/internal/cli"
	"github.com/bk-backup/bk/internal/hostsfile"
	"github.com/bk-backup/bk/internal/remote/local"
)

// Hosts reads the HOSTS arguments of the tools that work on the hosts
// alone (bk-ls, bk-check): each is a hosts file, or a folder that is a
// host itself, like a hosts file of one line.
func Hosts(args []string) ([]hostsfile.Host, error) {
	if len(args) == 0 {
		return nil, cli.Usagef("no HOSTS given: name a hosts file or a host folder")
	}
	var hosts []hostsfile.Host
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			abs, err := filepath.Abs(arg)
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, hostsfile.Host{Location: local.Location{Path: abs}})
			continue
		}
		hs, err := hostsfile.ParseFile(arg)
		if err != nil {
			return nil, err
		}
		if len(hs) == 0 {
			return nil, fmt.Errorf("no hosts in %s", arg)
		}
		hosts = append(hosts, hs...)
	}
	return hosts, nil
}
