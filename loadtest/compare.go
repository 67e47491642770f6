package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// ErrNotReport is returned by ReadReport for JSON that is not a report.
var ErrNotReport = errors.New("loadtest: not a loadtest report (no scenario)")

// ReadReport reads a report written by WriteJSON. Fields it does not know
// are ignored, so that reports of newer versions still load.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("loadtest: reading report: %w", err)
	}
	if r.Scenario == "" {
		return nil, ErrNotReport
	}
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	return &r, nil
}

// Comparison sets two reports side by side: B against A, as
// ratios B/A, or as differences B−A where a ratio means nothing (A is 0).
type Comparison struct {
	A, B *Report
	// Params lists every parameter of either run; Differs marks those
	// whose values differ (or that only one run has).
	Params []ParamDiff
	// Environment lists the environment fields that differ.
	Environment []ParamDiff
	// Figures, in A's order, then those only B has.
	Figures []Delta
	// Latencies, in A's order, then those only B has.
	Latencies []LatencyDelta
	// Errors by kind, and their total.
	Errors []Delta
	// CPU: generator and server, percent of one CPU.
	CPU []Delta
}

// ParamDiff is one parameter of two runs.
type ParamDiff struct {
	Name    string
	A, B    string // "" when the run does not have it
	Differs bool
}

// Delta is one measure in two runs.
type Delta struct {
	Name, Unit string
	A, B       float64
	InA, InB   bool
}

// Ratio returns B/A, and false when it means nothing: either run lacks
// the measure, or A is 0.
func (d Delta) Ratio() (float64, bool) {
	if !d.InA || !d.InB || d.A == 0 {
		return 0, false
	}
	return d.B / d.A, true
}

// Diff returns B−A, and false when either run lacks the measure.
func (d Delta) Diff() (float64, bool) {
	return d.B - d.A, d.InA && d.InB
}

// LatencyDelta is one latency in two runs: count, p50, p90, p99, p99.9,
// max and mean, in that order, in ms (count as a number).
type LatencyDelta struct {
	Name     string
	InA, InB bool
	Rows     []Delta
}

// Compare sets b against a. It does not modify either.
func Compare(a, b *Report) Comparison {
	c := Comparison{A: a, B: b}
	names := sortedKeys(a.Params)
	for _, k := range sortedKeys(b.Params) {
		if _, ok := a.Params[k]; !ok {
			names = append(names, k)
		}
	}
	for _, k := range names {
		va, okA := a.Params[k]
		vb, okB := b.Params[k]
		p := ParamDiff{Name: k}
		if okA {
			p.A = formatParam(va)
		}
		if okB {
			p.B = formatParam(vb)
		}
		p.Differs = okA != okB || p.A != p.B
		c.Params = append(c.Params, p)
	}
	ea, eb := a.Environment, b.Environment
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"cpus", ea.CPUs, eb.CPUs}, {"gomaxprocs", ea.GOMAXPROCS, eb.GOMAXPROCS},
		{"kernel", ea.Kernel, eb.Kernel}, {"go", ea.GoVersion, eb.GoVersion}, {"os/arch", ea.OSArch, eb.OSArch},
		{"host", ea.Hostname, eb.Hostname}, {"file limit", ea.FileLimit, eb.FileLimit}, {"processes", ea.Processes, eb.Processes},
	} {
		if sa, sb := fmt.Sprint(f.a), fmt.Sprint(f.b); sa != sb {
			c.Environment = append(c.Environment, ParamDiff{Name: f.name, A: sa, B: sb, Differs: true})
		}
	}

	for _, f := range a.Figures {
		d := Delta{Name: f.Name, Unit: f.Unit, A: f.Value, InA: true}
		d.B, d.InB = b.Figure(f.Name)
		c.Figures = append(c.Figures, d)
	}
	for _, f := range b.Figures {
		if _, ok := a.Figure(f.Name); !ok {
			c.Figures = append(c.Figures, Delta{Name: f.Name, Unit: f.Unit, B: f.Value, InB: true})
		}
	}

	for _, l := range a.Latencies {
		lb, ok := b.Latency(l.Name)
		c.Latencies = append(c.Latencies, latencyDelta(l.Name, &l, ptrIf(&lb, ok)))
	}
	for _, l := range b.Latencies {
		if _, ok := a.Latency(l.Name); !ok {
			c.Latencies = append(c.Latencies, latencyDelta(l.Name, nil, &l))
		}
	}

	var ta, tb float64
	for _, k := range sortedKeys(a.Errors) {
		ta += float64(a.Errors[k])
		// A kind a run does not list, it counted 0 times.
		c.Errors = append(c.Errors, Delta{Name: k, A: float64(a.Errors[k]), B: float64(b.Errors[k]), InA: true, InB: true})
	}
	for _, k := range sortedKeys(b.Errors) {
		tb += float64(b.Errors[k])
		if _, ok := a.Errors[k]; !ok {
			c.Errors = append(c.Errors, Delta{Name: k, B: float64(b.Errors[k]), InA: true, InB: true})
		}
	}
	c.Errors = append(c.Errors, Delta{Name: "total", A: ta, B: tb, InA: true, InB: true})

	cpu := func(name string, f func(*CPU) float64) {
		d := Delta{Name: name, Unit: "% of one CPU"}
		if a.CPU != nil && f(a.CPU) >= 0 {
			d.A, d.InA = f(a.CPU), true
		}
		if b.CPU != nil && f(b.CPU) >= 0 {
			d.B, d.InB = f(b.CPU), true
		}
		if d.InA || d.InB {
			c.CPU = append(c.CPU, d)
		}
	}
	cpu("generator CPU", func(c *CPU) float64 { return c.GeneratorPercent })
	cpu("server CPU", func(c *CPU) float64 { return c.ServerPercent })
	return c
}

func ptrIf[T any](p *T, ok bool) *T {
	if !ok {
		return nil
	}
	return p
}

func latencyDelta(name string, a, b *Latency) LatencyDelta {
	ld := LatencyDelta{Name: name, InA: a != nil, InB: b != nil}
	for _, f := range []struct {
		name string
		v    func(*Latency) float64
	}{
		{"count", func(l *Latency) float64 { return float64(l.Count) }},
		{"p50", func(l *Latency) float64 { return l.P50Ms }},
		{"p90", func(l *Latency) float64 { return l.P90Ms }},
		{"p99", func(l *Latency) float64 { return l.P99Ms }},
		{"p99.9", func(l *Latency) float64 { return l.P999Ms }},
		{"max", func(l *Latency) float64 { return l.MaxMs }},
		{"mean", func(l *Latency) float64 { return l.MeanMs }},
	} {
		d := Delta{Name: f.name, Unit: "ms"}
		if f.name == "count" {
			d.Unit = ""
		}
		if a != nil {
			d.A, d.InA = f.v(a), true
		}
		if b != nil {
			d.B, d.InB = f.v(b), true
		}
		ld.Rows = append(ld.Rows, d)
	}
	return ld
}

// WriteText writes the comparison for people: a column for A, one for B
// and one for the change, a ratio "×1.25" or, where A is 0, a difference
// "+3". A '*' marks the parameters (and environment) that differ.
func (c Comparison) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "A: %s  %s  run %s  %s%s\n", c.A.Scenario, c.A.Target, c.A.RunID, formatStarted(c.A), interrupted(c.A))
	fmt.Fprintf(&b, "B: %s  %s  run %s  %s%s\n", c.B.Scenario, c.B.Target, c.B.RunID, formatStarted(c.B), interrupted(c.B))
	if c.A.Scenario != c.B.Scenario {
		fmt.Fprintf(&b, "warning: different scenarios (%s, %s): the figures may not be comparable\n", c.A.Scenario, c.B.Scenario)
	}

	// Rows first, then the columns as wide as their widest cell.
	type row struct{ mark, name, a, b, change, unit string }
	var rows []row
	section := func(title string) { rows = append(rows, row{}, row{name: title, a: "A", b: "B", change: "B/A"}) }
	deltas := func(ds []Delta, indent string) {
		for _, d := range ds {
			rows = append(rows, row{" ", indent + d.Name, deltaValue(d.A, d.InA), deltaValue(d.B, d.InB), change(d), d.Unit})
		}
	}
	section("params")
	differ := 0
	for _, p := range c.Params {
		mark := " "
		if p.Differs {
			mark = "*"
			differ++
		}
		rows = append(rows, row{mark: mark, name: p.Name, a: orDash(p.A), b: orDash(p.B)})
	}
	for _, p := range c.Environment {
		differ++
		rows = append(rows, row{mark: "*", name: "env: " + p.Name, a: orDash(p.A), b: orDash(p.B)})
	}
	if differ > 0 {
		rows = append(rows, row{name: fmt.Sprintf("(* %d differ)", differ)})
	}
	if len(c.Figures) > 0 {
		section("figures")
		deltas(c.Figures, "")
	}
	if len(c.Latencies) > 0 {
		section("latency (ms)")
		for _, l := range c.Latencies {
			name := l.Name
			switch {
			case !l.InA:
				name += " (only in B)"
			case !l.InB:
				name += " (only in A)"
			}
			rows = append(rows, row{name: name})
			deltas(l.Rows, "  ")
		}
	}
	section("errors")
	deltas(c.Errors, "")
	if len(c.CPU) > 0 {
		section("cpu")
		deltas(c.CPU, "")
	}

	wName, wA, wB, wC := 30, 12, 12, 7
	for _, r := range rows {
		if r.a == "" && r.b == "" {
			continue // a heading or a note: it may run past the columns
		}
		wName = max(wName, utf8.RuneCountInString(r.name))
		wA, wB = max(wA, utf8.RuneCountInString(r.a)), max(wB, utf8.RuneCountInString(r.b))
		wC = max(wC, utf8.RuneCountInString(r.change))
	}
	for _, r := range rows {
		mark := r.mark
		if mark == "" {
			mark = " "
		}
		line := fmt.Sprintf("%s %-*s  %*s  %*s  %*s  %s", mark, wName, r.name, wA, r.a, wB, r.b, wC, r.change, r.unit)
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// change is the column B/A: a ratio where A is not 0, else the
// difference ("=" when both are 0), or which run lacks the measure.
func change(d Delta) string {
	switch {
	case !d.InA && !d.InB:
		return ""
	case !d.InA:
		return "only B"
	case !d.InB:
		return "only A"
	}
	if r, ok := d.Ratio(); ok {
		if math.Abs(r) >= 100 {
			return fmt.Sprintf("×%.0f", r)
		}
		return fmt.Sprintf("×%.3g", r)
	}
	switch diff, _ := d.Diff(); {
	case diff == 0:
		return "="
	case diff > 0:
		return "+" + formatValue(diff)
	default:
		return formatValue(diff)
	}
}

func deltaValue(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return formatValue(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatStarted(r *Report) string {
	if r.Started.IsZero() {
		return ""
	}
	return r.Started.UTC().Format("2006-01-02 15:04:05 MST")
}

func interrupted(r *Report) string {
	if r.Interrupted {
		return "  (INTERRUPTED)"
	}
	return ""
}
