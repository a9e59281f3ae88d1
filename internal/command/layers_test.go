package command

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLibrariesKnowNoCLI checks the layering: no package below internal/
// other than the commands and internal/cli links urfave/cli, progressbar,
// internal/cli or a command, even through another package. Libraries take
// Warn, Note and Progress functions instead.
func TestLibrariesKnowNoCLI(t *testing.T) {
	const module = "github.com/bk-backup/bk/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{"github.com/urfave/cli/", "github.com/schollz/progressbar/", module + "internal/cli", module + "internal/command"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		if strings.HasPrefix(pkg, module+"internal/command") || strings.HasPrefix(pkg, module+"internal/cli") {
			continue
		}
		checked++
		for _, dep := range strings.Fields(deps) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(dep, f)) {
					t.Errorf("library package %s imports %s", pkg, dep)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages; go list gave:\n%s", checked, out)
	}
}
