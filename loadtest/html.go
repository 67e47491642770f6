package loadtest

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteHTML writes the report as one self-contained HTML page: the tables
// of WriteText (params, environment, figures, latencies, errors, CPU,
// notes) and plots, drawn with gonum/plot as inline SVG, of what the run
// measured: latency percentiles, throughput, connections, errors and CPU
// and memory over time (Report.Timeline), and each latency's distribution
// (from its HDR histogram). A plot whose data the run does not have is
// left out. WriteHTML only reads r. The page fetches nothing: no scripts, fonts or images; and it
// is well-formed XML as well as HTML.
func (r *Report) WriteHTML(w io.Writer) error {
	d := htmlData{R: r, Started: "unknown"}
	if !r.Started.IsZero() {
		d.Started = r.Started.UTC().Format("2006-01-02 15:04:05 MST")
	}
	for _, k := range sortedKeys(r.Params) {
		d.Params = append(d.Params, [2]string{k, formatParam(r.Params[k])})
	}
	e := r.Environment
	d.Env = [][2]string{
		{"CPUs", fmt.Sprint(e.CPUs)}, {"GOMAXPROCS", fmt.Sprint(e.GOMAXPROCS)},
		{"kernel", e.Kernel}, {"Go", e.GoVersion}, {"OS/arch", e.OSArch}, {"host", e.Hostname},
		{"open-file limit", fmt.Sprint(e.FileLimit)}, {"generator processes", fmt.Sprint(e.Processes)},
	}
	for _, k := range sortedKeys(r.Errors) {
		d.Errors = append(d.Errors, htmlCount{k, r.Errors[k]})
	}
	sort.SliceStable(d.Errors, func(i, j int) bool { return d.Errors[i].N > d.Errors[j].N })
	if c := r.CPU; c != nil {
		d.CPU = append(d.CPU,
			[2]string{"window", fmt.Sprintf("%.1f s", c.WindowSeconds)},
			[2]string{"generator", fmt.Sprintf("%.1f s CPU, %.0f%% of one CPU (%.1f s system)", c.GeneratorSeconds, c.GeneratorPercent, c.GeneratorSysSeconds)})
		srv := "unknown (give --server-pid or make /metrics reachable)"
		if c.ServerSeconds >= 0 {
			srv = fmt.Sprintf("%.1f s CPU, %.0f%% of one CPU", c.ServerSeconds, c.ServerPercent)
			if c.ServerSysSeconds >= 0 {
				srv += fmt.Sprintf(" (%.1f s system)", c.ServerSysSeconds)
			}
		}
		d.CPU = append(d.CPU, [2]string{"server", srv}, [2]string{"the box", fmt.Sprintf("%d CPUs", e.CPUs)})
	}
	for _, c := range r.charts() {
		svg, err := c.svg()
		d.Plots = append(d.Plots, htmlPlot{Title: c.title, SVG: svg, Err: err})
	}
	var b bytes.Buffer
	if err := htmlPage.Execute(&b, d); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

type htmlData struct {
	R       *Report
	Started string
	Params  [][2]string
	Env     [][2]string
	Errors  []htmlCount
	CPU     [][2]string
	Plots   []htmlPlot
}

type htmlCount struct {
	Kind string
	N    int64
}

type htmlPlot struct {
	Title string
	SVG   template.HTML // from vgsvg, which escapes every text it draws
	Err   error
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// formatParam formats a parameter the same way whether it comes from a
// scenario (an int) or from JSON (a float64).
func formatParam(v any) string {
	switch x := v.(type) {
	case float64:
		return formatValue(x)
	case int:
		return formatValue(float64(x))
	case int64:
		return formatValue(float64(x))
	case uint64:
		return formatValue(float64(x))
	}
	return fmt.Sprint(v)
}

// A chart is one plot: lines over a shared x axis.
type chart struct {
	title, xLabel, yLabel string
	lines                 []chartLine
	// percentileX: x is 1/(1-p), on a log scale labelled in percentiles.
	percentileX bool
}

type chartLine struct {
	name   string
	xys    plotter.XYs
	color  color.Color
	dashed bool
	// width of the line; default 1.5 points. A line drawn under one it
	// may hide is drawn wider, so that it shows along both edges.
	width vg.Length
}

// Colors of the plots' lines (Tableau 10).
var chartColors = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, // blue
	color.RGBA{0xff, 0x7f, 0x0e, 0xff}, // orange
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, // green
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, // red
	color.RGBA{0x94, 0x67, 0xbd, 0xff}, // purple
	color.RGBA{0x8c, 0x56, 0x4b, 0xff}, // brown
	color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, // gray
}

const (
	blue = iota
	orange
	green
	red
	purple
	brown
	gray
)

// Titles of the plots, in the order of the page.
const (
	titleLatencyOverTime = "Latency percentiles per second"
	titleThroughput      = "Throughput"
	titleSeries          = "Per-second counts of the load phase"
	titleConnections     = "Connections"
	titleErrors          = "Errors per second"
	titleCPU             = "CPU"
	titleMemory          = "Server memory"
	titleDistribution    = "Latency distribution"
)

// charts returns the plots that the report has data for.
func (r *Report) charts() []chart {
	const tLabel = "time since start (s)"
	tl := r.Timeline
	var cs []chart
	add := func(c chart) {
		// A line of one point is not a plot (a connect run may end
		// within its first second).
		var ls []chartLine
		for _, l := range c.lines {
			if len(l.xys) > 1 {
				ls = append(ls, l)
			}
		}
		if len(ls) > 0 {
			c.lines = ls
			cs = append(cs, c)
		}
	}
	// line plots a level (connections, RSS); rate a measure over the
	// sample's interval (rates, CPU, the interval's latencies).
	line := func(name string, col int, dashed bool, f func(Sample) float64) chartLine {
		return chartLine{name: name, xys: timelineXYs(tl, f, false), color: chartColors[col], dashed: dashed}
	}
	rate := func(name string, col int, dashed bool, f func(Sample) float64) chartLine {
		return chartLine{name: name, xys: timelineXYs(tl, f, true), color: chartColors[col], dashed: dashed}
	}
	wide := func(l chartLine) chartLine { l.width = vg.Points(3); return l }

	// send→ack and send→receive are often the same to the eye: the acks
	// are drawn wide, under the deliveries.
	add(chart{title: titleLatencyOverTime, xLabel: tLabel, yLabel: "latency (ms)", lines: []chartLine{
		wide(rate("send→ack p50", orange, false, func(s Sample) float64 { return s.AckP50Ms })),
		wide(rate("send→ack p99", orange, true, func(s Sample) float64 { return s.AckP99Ms })),
		rate("send→receive p50", blue, false, func(s Sample) float64 { return s.E2EP50Ms }),
		rate("send→receive p99", blue, true, func(s Sample) float64 { return s.E2EP99Ms }),
	}})
	if anySample(tl, func(s Sample) bool { return s.SentPerSec > 0 || s.RecvPerSec > 0 }) {
		add(chart{title: titleThroughput, xLabel: tLabel, yLabel: "messages per second", lines: []chartLine{
			wide(rate("sent", blue, false, func(s Sample) float64 { return s.SentPerSec })),
			rate("received", green, true, func(s Sample) float64 { return s.RecvPerSec }),
		}})
	} else if len(r.Series) > 0 {
		// Without a timeline's rates, the scenario's own per-second counts.
		c := chart{title: titleSeries, xLabel: "second of the load phase", yLabel: "count per second"}
		for i, s := range r.Series {
			xys := make(plotter.XYs, len(s.PerSecond))
			for j, v := range s.PerSecond {
				xys[j] = plotter.XY{X: float64(j + 1), Y: float64(v)}
			}
			c.lines = append(c.lines, chartLine{name: s.Name, xys: xys, color: chartColors[i%len(chartColors)]})
		}
		add(c)
	}
	if anySample(tl, func(s Sample) bool { return s.Conns > 0 || s.ConnsTarget > 0 }) {
		c := chart{title: titleConnections, xLabel: tLabel, yLabel: "connections up", lines: []chartLine{
			line("up", blue, false, func(s Sample) float64 { return float64(s.Conns) }),
		}}
		if anySample(tl, func(s Sample) bool { return s.ConnsTarget > 0 }) {
			c.lines = append(c.lines, line("target", gray, true, func(s Sample) float64 { return float64(s.ConnsTarget) }))
		}
		add(c)
	}
	if anySample(tl, func(s Sample) bool { return s.ErrorsPerSec > 0 }) {
		add(chart{title: titleErrors, xLabel: tLabel, yLabel: "errors per second", lines: []chartLine{
			rate("errors", red, false, func(s Sample) float64 { return s.ErrorsPerSec }),
		}})
	}
	add(chart{title: titleCPU, xLabel: tLabel, yLabel: "% of one CPU", lines: []chartLine{
		rate("server", purple, false, func(s Sample) float64 { return s.ServerCPUPercent }),
		rate("generator", brown, true, func(s Sample) float64 { return s.GeneratorCPUPercent }),
	}})
	add(chart{title: titleMemory, xLabel: tLabel, yLabel: "server RSS (MiB)", lines: []chartLine{
		line("RSS", purple, false, func(s Sample) float64 { return s.ServerRSSMB }),
	}})

	dist := chart{title: titleDistribution, xLabel: "percentile", yLabel: "latency (ms)", percentileX: true}
	for i, l := range r.Latencies {
		cl := chartLine{name: l.Name, xys: distributionXYs(l), color: chartColors[i%len(chartColors)]}
		if i == 0 && len(r.Latencies) > 1 {
			cl = wide(cl)
		}
		dist.lines = append(dist.lines, cl)
	}
	add(dist)
	return cs
}

func anySample(tl []Sample, f func(Sample) bool) bool {
	for _, s := range tl {
		if f(s) {
			return true
		}
	}
	return false
}

// minInterval is the shortest sample interval whose rates are plotted:
// the last sample of a run covers what is left of its last second, and a
// rate over 50 ms would show a cliff that is only noise.
const minInterval = 0.5

// timelineXYs are the points (t, f(sample)), without those not measured
// (negative) and, for measures over the interval (rates), without samples
// of less than minInterval seconds.
func timelineXYs(tl []Sample, f func(Sample) float64, rates bool) plotter.XYs {
	var xys plotter.XYs
	prev := 0.0
	for _, s := range tl {
		short := rates && s.T-prev < minInterval
		prev = s.T
		if v := f(s); v >= 0 && !short && !math.IsInf(v, 0) && !math.IsNaN(v) && !math.IsNaN(s.T) {
			xys = append(xys, plotter.XY{X: s.T, Y: v})
		}
	}
	return xys
}

// distributionXYs are the points (1/(1-p), latency in ms) of a latency's
// distribution, from its HDR histogram when it has one, else from its
// percentiles. The last point is the maximum at 1/(1-p) = count: past the
// rank of the last value a percentile says nothing more.
func distributionXYs(l Latency) plotter.XYs {
	if l.Count == 0 {
		return nil
	}
	n := float64(l.Count)
	var xys plotter.XYs
	point := func(p, ms float64) {
		if p >= 100 || ms < 0 {
			return
		}
		if x := 100 / (100 - p); x < n {
			xys = append(xys, plotter.XY{X: x, Y: ms})
		}
	}
	if s := ownSnapshot(l.HDR); s != nil {
		for _, b := range hdrhistogram.Import(s).CumulativeDistributionWithTicks(5) {
			point(b.Quantile, float64(b.ValueAt)/1000)
		}
	} else {
		for _, p := range l.Percentiles {
			point(p.P, p.Ms)
		}
	}
	if n > 1 {
		xys = append(xys, plotter.XY{X: n, Y: l.MaxMs})
	}
	return xys
}

// ownSnapshot rebuilds h if it has the range and precision this package
// records with, else (none, a damaged or foreign file) returns nil: the
// range read from a file decides the size of what is allocated.
func ownSnapshot(h *HDR) *hdrhistogram.Snapshot {
	if h == nil || h.LowestMicros != histMinMicros || h.HighestMicros != histMaxMicros || h.Digits != histDigits {
		return nil
	}
	s, err := h.snapshot()
	if err != nil {
		return nil
	}
	return s
}

// Size of a plot; the page scales it to its column.
const (
	chartWidth  = 7 * vg.Inch
	chartHeight = 3.2 * vg.Inch
)

// svg draws the chart, its legend on the right of the plot, and returns
// it as an inline SVG element.
func (c chart) svg() (svg template.HTML, err error) {
	defer func() {
		// gonum/plot panics on data it cannot draw; a report still shows
		// the rest.
		if e := recover(); e != nil {
			svg, err = "", fmt.Errorf("plot %q: %v", c.title, e)
		}
	}()
	p := plot.New()
	p.Title.Text = c.title
	p.Title.Padding = vg.Points(6)
	p.Title.TextStyle.Font = chartFont(13, xfont.WeightBold)
	p.X.Label.Text, p.Y.Label.Text = c.xLabel, c.yLabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = chartFont(11, xfont.WeightNormal)
		a.Tick.Label.Font = chartFont(10, xfont.WeightNormal)
	}
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{0xe0}
	grid.Horizontal.Color = color.Gray{0xe0}
	p.Add(grid)
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font = chartFont(10, xfont.WeightNormal)
	legend.Padding = vg.Points(2.5)
	var legendWidth vg.Length
	for _, l := range c.lines {
		ln, err := plotter.NewLine(l.xys)
		if err != nil {
			return "", fmt.Errorf("plot %q, %s: %w", c.title, l.name, err)
		}
		ln.Color, ln.Width = l.color, vg.Points(1.5)
		if l.width > 0 {
			ln.Width = l.width
		}
		if l.dashed {
			ln.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(ln)
		legend.Add(l.name, ln)
		if len(l.xys) < 30 {
			// A few points are easier read as dots.
			pts, err := plotter.NewScatter(l.xys)
			if err != nil {
				return "", fmt.Errorf("plot %q, %s: %w", c.title, l.name, err)
			}
			pts.Color, pts.Radius, pts.Shape = l.color, vg.Points(2), draw.CircleGlyph{}
			p.Add(pts)
		}
		legendWidth = max(legendWidth, legend.ThumbnailWidth+legend.TextStyle.Width(" "+l.name)+vg.Points(2))
	}
	if c.percentileX {
		p.X.Scale = plot.LogScale{}
		// Up to the maximum's point, at 1/(1-p) = count.
		p.X.Min, p.X.Max = 1, max(p.X.Max*1.1, 10)
		p.X.Tick.Marker = percentileTicks(p.X.Max)
	} else {
		p.X.Min = min(p.X.Min, 0)
		p.X.Tick.Marker = trimmedTicks{}
	}
	p.Y.Tick.Marker = trimmedTicks{}
	p.Y.Min = min(p.Y.Min, 0)
	p.Y.Max = max(p.Y.Max*1.05, 1e-3)

	canvas := vgsvg.New(chartWidth, chartHeight)
	dc := draw.New(canvas)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	dc = draw.Crop(dc, vg.Points(4), -vg.Points(6), vg.Points(2), -vg.Points(4))
	gap := vg.Points(10)
	p.Draw(draw.Crop(dc, 0, -(legendWidth + gap), 0, 0))
	title := p.Title.TextStyle.Rectangle(c.title).Size().Y + p.Title.Padding
	legend.Draw(draw.Crop(dc, dc.Size().X-legendWidth, 0, 0, -title))

	var b bytes.Buffer
	if _, err := canvas.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	// Inline SVG starts at its element: drop the XML prelude and comment.
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	s = strings.Replace(s, "<svg ", `<svg role="img" aria-label="`+template.HTMLEscapeString(c.title)+`" `, 1)
	return template.HTML(s), nil
}

// chartFont is the plots' font: Liberation Sans, which the page asks the
// browser for (or Arial, Helvetica: the same widths), so that text takes
// the room gonum/plot measured for it.
func chartFont(points float64, weight xfont.Weight) font.Font {
	return font.From(font.Font{Typeface: "Liberation", Variant: "Sans", Weight: weight}, vg.Points(points))
}

// trimmedTicks are gonum/plot's default ticks without the trailing zeros
// of their labels ("75", not "75.00").
type trimmedTicks struct{}

func (trimmedTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ts {
		if strings.Contains(t.Label, ".") && !strings.ContainsAny(t.Label, "eE") {
			ts[i].Label = strings.TrimSuffix(strings.TrimRight(t.Label, "0"), ".")
		}
	}
	return ts
}

// percentileTicks label 1/(1-p) with p: 0%, 50%, 90%, 99%, 99.9%, …
func percentileTicks(xMax float64) plot.ConstantTicks {
	ticks := plot.ConstantTicks{{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}}
	for x, nines := 10.0, 1; x <= xMax*(1+1e-9); x, nines = x*10, nines+1 {
		label := "90%"
		switch {
		case nines == 2:
			label = "99%"
		case nines > 2:
			label = "99." + strings.Repeat("9", nines-2) + "%"
		}
		ticks = append(ticks, plot.Tick{Value: x, Label: label})
		for m := 2.0; m < 10 && x*m < xMax; m++ {
			ticks = append(ticks, plot.Tick{Value: x * m})
		}
	}
	return ticks
}

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"num": formatValue,
	"ms":  func(v float64) string { return fmt.Sprintf("%.3f", v) },
	"secs": func(v float64) string {
		return (time.Duration(v * float64(time.Second))).Round(100 * time.Millisecond).String()
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>switchboard loadtest {{.R.Scenario}} {{.R.RunID}}</title>
<style>
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 0 auto; padding: 1.5em 2em; max-width: 1500px; color: #222; background: #fafafa; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta { color: #555; margin: 0; }
.meta b { color: #222; font-weight: 600; }
.interrupted { display: inline-block; background: #d62728; color: #fff; padding: .15em .6em; border-radius: 3px; font-weight: 600; margin-left: .5em; }
.cols { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.cols > section.wide { flex: 1 1 480px; }
table { border-collapse: collapse; font-size: .92em; background: #fff; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }
figure { margin: 0; background: #fff; border: 1px solid #e4e4e4; padding: .3em; }
figure svg { display: block; width: 100%; height: auto; }
figure svg text { font-family: "Liberation Sans", Arial, Helvetica, sans-serif !important; }
.error { color: #d62728; }
ul.notes { padding-left: 1.2em; }
footer { margin-top: 2em; color: #888; font-size: .85em; }
</style>
</head>
<body>
<h1>switchboard loadtest {{.R.Scenario}}{{if .R.Interrupted}}<span class="interrupted">INTERRUPTED</span>{{end}}</h1>
<p class="meta">target <b>{{.R.Target}}</b> · run <b>{{.R.RunID}}</b> · started <b>{{.Started}}</b> · took <b>{{secs .R.ElapsedSeconds}}</b></p>
{{if .R.Interrupted}}<p class="error">The run was stopped before its end: the figures cover what was measured until then.</p>{{end}}

<div class="cols">
<section>
<h2>Parameters</h2>
{{if .Params}}<table>
{{range .Params}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>{{else}}<p>none</p>{{end}}
</section>
<section>
<h2>Environment</h2>
<table>
{{range .Env}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>
</section>
{{if .CPU}}<section>
<h2>CPU</h2>
<table>
{{range .CPU}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>
</section>{{end}}
</div>

<div class="cols">
<section>
<h2>Figures</h2>
{{if .R.Figures}}<table>
<tr><th>figure</th><th class="n">value</th><th>unit</th></tr>
{{range .R.Figures}}<tr><td>{{.Name}}</td><td class="n">{{num .Value}}</td><td>{{.Unit}}</td></tr>
{{end}}</table>{{else}}<p>none</p>{{end}}
</section>
<section class="wide">
{{if .R.Latencies}}<h2>Latency (ms)</h2>
<table>
<tr><th>latency</th><th class="n">count</th><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th><th class="n">max</th><th class="n">mean</th></tr>
{{range .R.Latencies}}<tr><td>{{.Name}}{{if .Clamped}} <span class="error">({{.Clamped}} above 100 s)</span>{{end}}</td><td class="n">{{.Count}}</td><td class="n">{{ms .P50Ms}}</td><td class="n">{{ms .P90Ms}}</td><td class="n">{{ms .P99Ms}}</td><td class="n">{{ms .P999Ms}}</td><td class="n">{{ms .MaxMs}}</td><td class="n">{{ms .MeanMs}}</td></tr>
{{end}}</table>{{end}}
<h2>Errors</h2>
{{if .Errors}}<table>
<tr><th>kind</th><th class="n">count</th></tr>
{{range .Errors}}<tr><td>{{.Kind}}</td><td class="n">{{.N}}</td></tr>
{{end}}</table>{{else}}<p>none</p>{{end}}
{{if .R.Notes}}<h2>Notes</h2>
<ul class="notes">
{{range .R.Notes}}<li>{{.}}</li>
{{end}}</ul>{{end}}
</section>
</div>

<h2>Plots</h2>
{{if .Plots}}<div class="plots">
{{range .Plots}}<figure>{{if .Err}}<figcaption class="error">{{.Title}}: {{.Err}}</figcaption>{{else}}{{.SVG}}{{end}}</figure>
{{end}}</div>{{else}}<p>The run has no timeline or latencies to plot.</p>{{end}}

<footer>Written by switchboard loadtest. Timeline: one sample per second; latency over time is each second's own percentiles; a last sample shorter than half a second is not plotted as a rate. The distribution's x axis is 1/(1−p), so the tail gets the room.</footer>
</body>
</html>
`))
