package tuning

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// whyWidth is where the why/how column wraps.
const whyWidth = 64

// WriteText writes the report as a table (setting, current, needed,
// status, why/how), the memory arithmetic and the verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "switchboard tune check: %s connections in %s (%s open files each)\n\n",
		grouped(r.Conns), plural(int64(r.Processes), "gateway process", "gateway processes"), grouped(r.FilesPerProcess))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tCURRENT\tNEEDED\tSTATUS\tWHY / HOW")
	for i, s := range r.Settings {
		if i > 0 {
			fmt.Fprintln(tw, "\t\t\t\t")
		}
		lines := wrap(s.Why, whyWidth)
		if s.How != "" {
			lines = append(lines, wrap("how: "+s.How, whyWidth)...)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Current, s.Needed, s.Status, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t\t\t\t%s\n", l)
		}
	}
	tw.Flush()

	m := r.Memory
	fmt.Fprintf(&b, "\nmemory for %s idle connections:\n", grouped(r.Conns))
	fmt.Fprintf(&b, "  kernel   %s × %-20s = %s\n", grouped(r.Conns), fmt.Sprintf("%.1f KiB per socket", m.KernelBytesPerConn/1024), size(m.KernelBytes))
	fmt.Fprintf(&b, "  gateway  %s × %-20s = %s\n", grouped(r.Conns), fmt.Sprintf("%.3f KiB per conn", m.GatewayBytesPerConn/1024), size(m.GatewayBytes))
	if m.MemTotalBytes > 0 {
		fmt.Fprintf(&b, "  total    %s of MemTotal %s (%.0f%%); socket buffers for queued data come on top\n",
			size(m.TotalBytes), size(m.MemTotalBytes), 100*float64(m.TotalBytes)/float64(m.MemTotalBytes))
	} else {
		fmt.Fprintf(&b, "  total    %s (MemTotal unknown)\n", size(m.TotalBytes))
	}

	fmt.Fprintln(&b)
	if r.Capacity > 0 {
		fmt.Fprintf(&b, "capacity as configured: %s connections", grouped(r.Capacity))
		var parts []string
		if r.PerProcess > 0 {
			parts = append(parts, fmt.Sprintf("%s per process × %d, by %s", grouped(r.PerProcess), r.Processes, r.PerProcessBy))
		}
		if r.PerBox > 0 {
			parts = append(parts, fmt.Sprintf("%s for the box, by %s", grouped(r.PerBox), r.PerBoxBy))
		}
		fmt.Fprintf(&b, " (%s)\n", strings.Join(parts, "; "))
	}
	if r.ProcessesNeeded > 1 {
		fmt.Fprintf(&b, "processes needed under the hard open-file limit of %s: %d, sharing the port (gateway.reuse_port: true)\n",
			grouped(int64(r.FileLimit.Hard)), r.ProcessesNeeded)
	}
	fmt.Fprintln(&b, r.Verdict())
	// The table pads the empty cells of wrapped lines: no trailing spaces.
	var out strings.Builder
	for line := range strings.Lines(b.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// Verdict is one line: whether Conns can be reached, and if not which
// settings stop it.
func (r *Report) Verdict() string {
	if r.Reachable {
		return fmt.Sprintf("reachable: %s connections fit the limits as configured", grouped(r.Conns))
	}
	stops := make([]string, len(r.StoppedBy))
	for i, name := range r.StoppedBy {
		stops[i] = name
		if s := r.setting(name); s != nil && s.Allows > 0 {
			per := ""
			if s.Scope == PerProcess {
				per = " per process"
			}
			stops[i] = fmt.Sprintf("%s = %s (allows %s%s)", name, s.Current, grouped(s.Allows), per)
		}
	}
	return fmt.Sprintf("NOT reachable: %s connections are stopped by %s", grouped(r.Conns), strings.Join(stops, "; "))
}

func (r *Report) setting(name string) *Setting {
	for i := range r.Settings {
		if r.Settings[i].Name == name {
			return &r.Settings[i]
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// wrap breaks s into lines of at most width runes, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	var cur strings.Builder
	n := 0
	for _, word := range strings.Fields(s) {
		wl := len([]rune(word))
		if n > 0 && n+1+wl > width {
			lines = append(lines, cur.String())
			cur.Reset()
			n = 0
		}
		if n > 0 {
			cur.WriteByte(' ')
			n++
		}
		cur.WriteString(word)
		n += wl
	}
	if n > 0 || len(lines) == 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return grouped(n) + " " + many
}

// grouped formats n with thousands separators: 1,000,000.
func grouped(n int64) string {
	s := fmt.Sprint(n)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// size formats a byte count in MiB below a GiB, in GiB above.
func size(b int64) string {
	if b < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}
