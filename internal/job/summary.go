package job

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bk-backup/bk/internal/units"
)

// WriteText prints the summary for people and logs: the outcome, a line
// per stage, what each host took, and the hooks and upkeep run.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s: %s (exit %d) in %.1fs\n", s.Job, s.Status, s.Exit, s.Seconds)
	if s.BackupID != "" {
		fmt.Fprintf(&b, "backup %s\n", s.BackupID)
	} else if len(s.Stages) > 0 {
		b.WriteString("no backup was stored\n")
	}
	if len(s.Stages) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "stage\texit\ttime\tin\tout\t")
		for _, r := range s.Stages {
			fmt.Fprintf(tw, "%s\t%s\t%.1fs\t%s\t%s\t\n", r.Name, r.Status, r.Seconds, size(r.BytesIn), size(r.BytesOut))
		}
		tw.Flush()
		fmt.Fprintf(&b, "files skipped: %d\n", s.Skipped)
	}
	for _, h := range s.Hosts {
		fmt.Fprintf(&b, "host %s: %d share(s), %s\n", h.Host, h.Shares, size(h.Bytes))
	}
	for _, st := range s.Steps {
		fmt.Fprintf(&b, "%s %q: %s\n", st.Kind, st.Command, st.Status)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func size(n int64) string {
	if n < 0 {
		return "-"
	}
	return units.Bytes(n).String()
}
