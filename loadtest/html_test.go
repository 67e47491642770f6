package loadtest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/plotter"
)

// latencyOf is a latency summary of n values spread from 1 ms to about
// tail ms, through a real histogram.
func latencyOf(name string, n int, tail time.Duration) Latency {
	h := newHistogram()
	for i := range n {
		ms := 1 + float64(i)/float64(n)*float64(tail/time.Millisecond)
		h.record(int64(ms * float64(time.Millisecond)))
	}
	return h.latency(name)
}

// chatLikeReport has everything a chat run measures, and text that must be
// escaped.
func chatLikeReport() *Report {
	r := &Report{
		Scenario: "chat", RunID: "0123abcd", Target: "ws://127.0.0.1:1/v1/ws",
		Params:      map[string]any{"pairs": 200, "rate": 2000.0, "mode": `open loop <"constant">`},
		Environment: Environment{CPUs: 2, GOMAXPROCS: 2, Kernel: "linux 6", GoVersion: "go1.26", OSArch: "linux/amd64", Hostname: "box", FileLimit: 20000, Processes: 1},
		Started:     time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), ElapsedSeconds: 10.2,
		Errors: map[string]int64{"rate_limited": 3},
		CPU:    &CPU{WindowSeconds: 10, GeneratorSeconds: 3, GeneratorPercent: 30, GeneratorSysSeconds: 2, ServerSeconds: 6, ServerPercent: 60, ServerSysSeconds: 4},
		Notes:  []string{`a note with <script>alert("x")</script> & more`},
	}
	r.Add("sent", 20000, "")
	r.Add("send rate achieved", 2000, "msg/s")
	r.Latencies = []Latency{latencyOf("send→ack", 5000, 80*time.Millisecond), latencyOf("send→receive", 5000, 90*time.Millisecond)}
	for i := 1; i <= 10; i++ {
		s := Sample{T: float64(i), Conns: 400, ConnsTarget: 400, SentPerSec: 2000, AckedPerSec: 2000, RecvPerSec: 1990,
			E2EP50Ms: 2, E2EP99Ms: 9, E2EMaxMs: 12, AckP50Ms: 1.9, AckP99Ms: 8.5,
			ServerCPUPercent: 60, ServerRSSMB: 40 + float64(i), GeneratorCPUPercent: 30}
		if i == 4 {
			s.ErrorsPerSec = 3
			s.E2EP50Ms, s.E2EP99Ms = -1, -1 // a second without deliveries
		}
		r.Timeline = append(r.Timeline, s)
	}
	// The last sample covers what was left of the last second.
	r.Timeline = append(r.Timeline, Sample{T: 10.05, Conns: 400, ConnsTarget: 400, SentPerSec: 100, RecvPerSec: 100,
		E2EP50Ms: 2, E2EP99Ms: 3, AckP50Ms: 2, AckP99Ms: 3, ServerCPUPercent: 100, ServerRSSMB: 51, GeneratorCPUPercent: 100})
	return r
}

// idleLikeReport has connections and server memory over time, no messages,
// no latencies over time and an unknown server CPU.
func idleLikeReport() *Report {
	r := &Report{Scenario: "idle", RunID: "idle0001", Target: "ws://127.0.0.1:1/v1/ws", Params: map[string]any{"conns": 300},
		Errors: map[string]int64{}, Started: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	r.Add("connections up", 300, "")
	r.Latencies = []Latency{latencyOf("connect+upgrade", 300, 20*time.Millisecond)}
	for i := 1; i <= 5; i++ {
		r.Timeline = append(r.Timeline, Sample{T: float64(i), Conns: int64(min(300, 100*i)), ConnsTarget: 300,
			E2EP50Ms: -1, E2EP99Ms: -1, E2EMaxMs: -1, AckP50Ms: -1, AckP99Ms: -1,
			ServerCPUPercent: -1, ServerRSSMB: 70 + float64(i), GeneratorCPUPercent: 5})
	}
	return r
}

var allPlotTitles = []string{titleLatencyOverTime, titleThroughput, titleConnections, titleErrors, titleCPU, titleMemory, titleDistribution}

// page is a rendered report: its text and what checkPage found in it.
type page struct {
	html   string
	titles map[string]bool // aria-labels of the inline SVG plots
	text   string          // character data outside the plots
}

// renderPage writes r as HTML and checks what every page must be: well
// formed (as XML, which is stricter than HTML), self-contained (no
// element or attribute that fetches anything) and without a failed plot.
func renderPage(t *testing.T, r *Report) page {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	p := page{html: b.String(), titles: map[string]bool{}}
	for _, bad := range []string{`src="http`, "<script", `<link`, `href="http`, "url(http", "@import", "<iframe", "<img"} {
		if strings.Contains(p.html, bad) {
			t.Errorf("page contains %q: it must fetch nothing", bad)
		}
	}
	dec := xml.NewDecoder(strings.NewReader(p.html))
	dec.Strict = true
	var text strings.Builder
	svgDepth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("page is not well formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "svg" {
				svgDepth++
				for _, a := range tok.Attr {
					if a.Name.Local == "aria-label" {
						p.titles[a.Value] = true
					}
				}
			}
			for _, a := range tok.Attr {
				if (a.Name.Local == "src" || a.Name.Local == "href") && !strings.HasPrefix(a.Value, "#") && !strings.HasPrefix(a.Value, "data:") {
					t.Errorf("<%s %s=%q> fetches", tok.Name.Local, a.Name.Local, a.Value)
				}
			}
		case xml.EndElement:
			if tok.Name.Local == "svg" {
				svgDepth--
			}
		case xml.CharData:
			if svgDepth == 0 {
				text.Write(tok)
			}
		}
	}
	p.text = text.String()
	if strings.Contains(p.html, `class="error">`) && strings.Contains(p.html, "<figcaption") {
		t.Errorf("a plot failed:\n%s", p.html[strings.Index(p.html, "<figcaption"):])
	}
	return p
}

func TestWriteHTMLChatReportHasEveryPlot(t *testing.T) {
	r := chatLikeReport()
	p := renderPage(t, r)
	for _, title := range allPlotTitles {
		if !p.titles[title] {
			t.Errorf("no plot %q; plots: %v", title, p.titles)
		}
	}
	if n := strings.Count(p.html, "<svg"); n != len(allPlotTitles) {
		t.Errorf("%d plots, want %d", n, len(allPlotTitles))
	}
	// The plots carry their legends and axis labels with units.
	for _, s := range []string{"send→receive p99", "send→ack p50", "received", "target", "generator", "latency (ms)",
		"messages per second", "time since start (s)", "% of one CPU", "server RSS (MiB)", "99.9%"} {
		if !strings.Contains(p.html, ">"+s+"<") {
			t.Errorf("no text %q in the plots", s)
		}
	}
	// The tables, with text escaped, not interpreted.
	for _, s := range []string{"chat", "0123abcd", "ws://127.0.0.1:1/v1/ws", "2026-11-27 10:00:00 UTC",
		`open loop <"constant">`, `a note with <script>alert("x")</script> & more`, "rate_limited", "send rate achieved", "msg/s", "20000",
		"send→receive", "6.0 s CPU, 60% of one CPU (4.0 s system)", "linux/amd64"} {
		if !strings.Contains(p.text, s) {
			t.Errorf("page text lacks %q", s)
		}
	}
	if strings.Contains(p.html, "INTERRUPTED") {
		t.Error("page says INTERRUPTED for a complete run")
	}
	r.Interrupted = true
	if p := renderPage(t, r); !strings.Contains(p.text, "INTERRUPTED") {
		t.Error("an interrupted run's page does not say so")
	}
}

func TestWriteHTMLIdleReportLeavesOutWhatItLacks(t *testing.T) {
	p := renderPage(t, idleLikeReport())
	for _, title := range []string{titleConnections, titleCPU, titleMemory, titleDistribution} {
		if !p.titles[title] {
			t.Errorf("no plot %q; plots: %v", title, p.titles)
		}
	}
	for _, title := range []string{titleLatencyOverTime, titleThroughput, titleErrors} {
		if p.titles[title] {
			t.Errorf("plot %q for an idle run, which has no such data", title)
		}
	}
	if strings.Contains(p.html, ">server<") {
		t.Error("the CPU plot has a server line though the server's CPU is unknown")
	}
	if !strings.Contains(p.text, "none") {
		t.Error("no errors is not said")
	}

	// A run that ended at once: no timeline, no latencies, no plot.
	r := &Report{Scenario: "connect", RunID: "x", Params: map[string]any{}, Errors: map[string]int64{}}
	p = renderPage(t, r)
	if len(p.titles) != 0 || !strings.Contains(p.text, "no timeline or latencies to plot") {
		t.Errorf("empty report: plots %v, text %q", p.titles, p.text)
	}
	// A timeline of one sample is no plot either.
	r.Timeline = []Sample{{T: 0.07, Conns: 500, ConnsTarget: 500, ServerRSSMB: 70, ServerCPUPercent: 90, GeneratorCPUPercent: 70}}
	if p := renderPage(t, r); len(p.titles) != 0 {
		t.Errorf("one sample: plots %v", p.titles)
	}
}

func TestTimelineXYsSkipUnmeasuredAndShortSamples(t *testing.T) {
	tl := chatLikeReport().Timeline
	e2e := timelineXYs(tl, func(s Sample) float64 { return s.E2EP50Ms }, true)
	if len(e2e) != 9 { // 10 whole seconds, one without deliveries; the last 50 ms left out
		t.Errorf("e2e p50: %d points, want 9: %v", len(e2e), e2e)
	}
	for _, xy := range e2e {
		if xy.X == 4 || xy.X > 10 || xy.Y < 0 {
			t.Errorf("e2e p50 point %v", xy)
		}
	}
	if conns := timelineXYs(tl, func(s Sample) float64 { return float64(s.Conns) }, false); len(conns) != 11 {
		t.Errorf("connections: %d points, want every sample's (11)", len(conns))
	}
}

func TestDistributionXYs(t *testing.T) {
	l := latencyOf("x", 10000, 100*time.Millisecond)
	check := func(name string, xys plotter.XYs) {
		t.Helper()
		if len(xys) < 5 {
			t.Fatalf("%s: %d points", name, len(xys))
		}
		for i := 1; i < len(xys); i++ {
			if xys[i].X < xys[i-1].X || xys[i].Y < xys[i-1].Y {
				t.Errorf("%s: not monotonic at %d: %v then %v", name, i, xys[i-1], xys[i])
			}
		}
		if last := xys[len(xys)-1]; last.X != float64(l.Count) || last.Y != l.MaxMs {
			t.Errorf("%s: last point %v, want the max %v at 1/(1-p) = count %d", name, last, l.MaxMs, l.Count)
		}
		// The median: 1/(1-0.5) = 2.
		for _, xy := range xys {
			if xy.X == 2 && math.Abs(xy.Y-l.P50Ms) > l.P50Ms*0.01 {
				t.Errorf("%s: p50 %v, want %v", name, xy.Y, l.P50Ms)
			}
		}
	}
	fromHDR := distributionXYs(l)
	check("from the histogram", fromHDR)
	noHDR := l
	noHDR.HDR = nil
	fromPercentiles := distributionXYs(noHDR)
	check("from the percentiles", fromPercentiles)
	if len(fromHDR) <= len(fromPercentiles) {
		t.Errorf("the histogram gives %d points, the percentiles %d: want more from the histogram", len(fromHDR), len(fromPercentiles))
	}
	// A histogram of another range (a damaged file) is not rebuilt: the
	// percentiles serve.
	foreign := l
	foreign.HDR = &HDR{LowestMicros: 1, HighestMicros: 1 << 62, Digits: 5, Counts: l.HDR.Counts}
	if got := distributionXYs(foreign); len(got) != len(fromPercentiles) {
		t.Errorf("foreign histogram: %d points, want the %d of the percentiles", len(got), len(fromPercentiles))
	}
	if xys := distributionXYs(Latency{Name: "empty"}); len(xys) != 0 {
		t.Errorf("empty latency: %v", xys)
	}
}

func TestPercentileTicks(t *testing.T) {
	var labels []string
	for _, tk := range percentileTicks(20000) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got, want := strings.Join(labels, " "), "0% 50% 90% 99% 99.9% 99.99%"; got != want {
		t.Errorf("labels %q, want %q", got, want)
	}
}
