package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Report is the outcome of one run: parameters, environment, figures,
// latency distributions, failures by kind and CPU use. WriteText renders
// it for people, WriteJSON for tools. A Report is not safe for concurrent
// use: a scenario fills it from its Run goroutine.
type Report struct {
	Scenario       string         `json:"scenario"`
	RunID          string         `json:"run_id"`
	Target         string         `json:"target"`
	Params         map[string]any `json:"params"`
	Environment    Environment    `json:"environment"`
	Started        time.Time      `json:"started"`
	ElapsedSeconds float64        `json:"elapsed_seconds"`
	// Interrupted is set when the run was stopped (Ctrl-C) before its end.
	Interrupted bool `json:"interrupted"`
	// Figures are the scenario's measurements, in the order it gave them.
	Figures   []Figure  `json:"figures"`
	Latencies []Latency `json:"latencies"`
	// Errors counts failures by kind (see Kind).
	Errors map[string]int64 `json:"errors"`
	CPU    *CPU             `json:"cpu,omitempty"`
	// Series are per-second counts, e.g. deliveries.
	Series []Series `json:"series,omitempty"`
	// Timeline samples the run every second: connections, rates,
	// latency percentiles of the second, errors, server CPU and RSS.
	Timeline []Sample `json:"timeline,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// Figure is one named measurement.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// Series is a count per second of a run.
type Series struct {
	Name      string  `json:"name"`
	PerSecond []int64 `json:"per_second"`
}

// Add appends a figure. NaN and infinities (a ratio without a divisor) are
// left out.
func (r *Report) Add(name string, v float64, unit string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.Figures = append(r.Figures, Figure{name, v, unit})
}

// Figure returns the value of the named figure.
func (r *Report) Figure(name string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// Latency returns the named latency summary.
func (r *Report) Latency(name string) (Latency, bool) {
	for _, l := range r.Latencies {
		if l.Name == name {
			return l, true
		}
	}
	return Latency{}, false
}

// Note appends a line of explanation.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) addErrors(m map[string]int64) {
	for k, v := range m {
		r.Errors[k] += v
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a summary for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "switchboard loadtest %s  %s  run %s", r.Scenario, r.Target, r.RunID)
	if r.Interrupted {
		b.WriteString("  (INTERRUPTED)")
	}
	b.WriteString("\n")
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("params:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, formatParam(r.Params[k]))
	}
	e := r.Environment
	fmt.Fprintf(&b, "\nenv: %d CPUs (GOMAXPROCS %d), %s, %s, open-file limit %d, %d generator process(es); %.1f s\n\n",
		e.CPUs, e.GOMAXPROCS, e.Kernel, e.GoVersion, e.FileLimit, e.Processes, r.ElapsedSeconds)
	for _, f := range r.Figures {
		fmt.Fprintf(&b, "  %-40s %14s %s\n", f.Name, formatValue(f.Value), f.Unit)
	}
	if len(r.Latencies) > 0 {
		fmt.Fprintf(&b, "\n  %-28s %9s %9s %9s %9s %9s %9s %9s\n", "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max", "mean")
		for _, l := range r.Latencies {
			fmt.Fprintf(&b, "  %-28s %9d %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n",
				l.Name, l.Count, l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs)
		}
	}
	b.WriteString("\n")
	if len(r.Errors) == 0 {
		b.WriteString("errors: none\n")
	} else {
		fmt.Fprintf(&b, "errors: %s\n", formatCounts(r.Errors))
	}
	if c := r.CPU; c != nil {
		fmt.Fprintf(&b, "cpu over %.1f s: generator %.1f s (%.0f%% of one CPU; %.1f s system)",
			c.WindowSeconds, c.GeneratorSeconds, c.GeneratorPercent, c.GeneratorSysSeconds)
		if c.ServerSeconds >= 0 {
			fmt.Fprintf(&b, ", server %.1f s (%.0f%% of one CPU", c.ServerSeconds, c.ServerPercent)
			if c.ServerSysSeconds >= 0 {
				fmt.Fprintf(&b, "; %.1f s system", c.ServerSysSeconds)
			}
			b.WriteString(")")
		} else {
			b.WriteString(", server unknown (give --server-pid or make /metrics reachable)")
		}
		fmt.Fprintf(&b, "; the box has %d CPUs\n", e.CPUs)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatValue(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.4g", v)
}
