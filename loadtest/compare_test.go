package loadtest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// roundTrip writes r as JSON and reads it back, as compare does.
func roundTrip(t *testing.T, r *Report) *Report {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(&b)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func TestReadReportRoundTripsAndRefusesOtherJSON(t *testing.T) {
	r := chatLikeReport()
	back := roundTrip(t, r)
	if back.Scenario != "chat" || len(back.Timeline) != len(r.Timeline) || len(back.Latencies) != 2 ||
		back.Latencies[0].HDR == nil || back.Errors["rate_limited"] != 3 || back.CPU == nil {
		t.Errorf("read back %+v", back)
	}
	// The histograms survive: the read report merges to the same summary.
	m, err := MergeLatencies("x", back.Latencies[0])
	if err != nil || m.P99Ms != r.Latencies[0].P99Ms || m.Count != r.Latencies[0].Count {
		t.Errorf("merged after reading: %+v, %v; want p99 %v", m, err, r.Latencies[0].P99Ms)
	}

	for _, bad := range []string{"", "{", "[1,2]", `{"figures": []}`, `{"scenario": 3}`} {
		if _, err := ReadReport(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadReport(%q) accepted it", bad)
		}
	}
	if _, err := ReadReport(strings.NewReader(`{"figures": []}`)); !errors.Is(err, ErrNotReport) {
		t.Errorf("a report without scenario: %v, want ErrNotReport", err)
	}
	// Fields of newer versions are ignored.
	if r, err := ReadReport(strings.NewReader(`{"scenario": "chat", "new_field": {"a": 1}}`)); err != nil || r.Errors == nil {
		t.Errorf("unknown field: %v, %v", r, err)
	}
}

func findDelta(t *testing.T, ds []Delta, name string) Delta {
	t.Helper()
	for _, d := range ds {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no row %q in %+v", name, ds)
	return Delta{}
}

func TestCompareRatiosDifferencesAndMissing(t *testing.T) {
	a := roundTrip(t, chatLikeReport())
	b := roundTrip(t, chatLikeReport())
	a.Params["pairs"] = 200 // as a scenario gives it; B's came through JSON, a float64
	b.Params["rate"] = 4000.0
	b.Params["window"] = 16.0
	b.Environment.CPUs = 8
	b.Figures = nil
	b.Add("sent", 40000, "")             // doubled
	b.Add("missing after drain", 0, "")  // only in B
	a.Add("duplicate deliveries", 0, "") // only in A
	a.Add("unacked after drain", 0, "")
	b.Add("unacked after drain", 3, "") // 0 → 3: no ratio, a difference
	b.Latencies[0].P99Ms = a.Latencies[0].P99Ms * 1.5
	b.Latencies = b.Latencies[:1] // send→receive only in A
	b.Latencies = append(b.Latencies, Latency{Name: "generator lag", Count: 10, P50Ms: 1})
	a.Errors = map[string]int64{}
	b.Errors = map[string]int64{"rate_limited": 3}
	b.CPU.ServerPercent = -1 // unknown in B

	c := Compare(a, b)

	params := map[string]ParamDiff{}
	for _, p := range c.Params {
		params[p.Name] = p
	}
	if p := params["rate"]; !p.Differs || p.A != "2000" || p.B != "4000" {
		t.Errorf("rate: %+v", p)
	}
	if p := params["window"]; !p.Differs || p.A != "" || p.B != "16" {
		t.Errorf("window (only in B): %+v", p)
	}
	if p := params["pairs"]; p.Differs || p.A != "200" || p.B != "200" {
		t.Errorf("pairs (an int in A's scenario, a float in JSON): %+v", p)
	}
	if len(c.Environment) != 1 || c.Environment[0].Name != "cpus" || c.Environment[0].A != "2" || c.Environment[0].B != "8" {
		t.Errorf("environment: %+v", c.Environment)
	}

	if r, ok := findDelta(t, c.Figures, "sent").Ratio(); !ok || r != 2 {
		t.Errorf("sent: ratio %v %v, want 2", r, ok)
	}
	un := findDelta(t, c.Figures, "unacked after drain")
	if _, ok := un.Ratio(); ok {
		t.Error("0 → 3 has a ratio")
	}
	if d, ok := un.Diff(); !ok || d != 3 {
		t.Errorf("0 → 3: difference %v %v", d, ok)
	}
	if d := findDelta(t, c.Figures, "missing after drain"); d.InA || !d.InB {
		t.Errorf("only in B: %+v", d)
	}
	if d := findDelta(t, c.Figures, "duplicate deliveries"); !d.InA || d.InB {
		t.Errorf("only in A: %+v", d)
	}
	if _, ok := findDelta(t, c.Figures, "send rate achieved").Ratio(); ok {
		t.Error("a figure only in A has a ratio")
	}

	lat := map[string]LatencyDelta{}
	for _, l := range c.Latencies {
		lat[l.Name] = l
	}
	if r, ok := findDelta(t, lat["send→ack"].Rows, "p99").Ratio(); !ok || r != 1.5 {
		t.Errorf("send→ack p99 ratio %v %v, want 1.5", r, ok)
	}
	if l := lat["send→receive"]; !l.InA || l.InB {
		t.Errorf("send→receive (only in A): %+v", l)
	}
	if l := lat["generator lag"]; l.InA || !l.InB || len(l.Rows) != 7 {
		t.Errorf("generator lag (only in B): %+v", l)
	}
	if d, _ := findDelta(t, c.Errors, "rate_limited").Diff(); d != 3 {
		t.Errorf("rate_limited: %+v", findDelta(t, c.Errors, "rate_limited"))
	}
	if d := findDelta(t, c.Errors, "total"); d.A != 0 || d.B != 3 {
		t.Errorf("errors total: %+v", d)
	}
	if d := findDelta(t, c.CPU, "server CPU"); !d.InA || d.InB {
		t.Errorf("server CPU unknown in B: %+v", d)
	}

	var out strings.Builder
	if err := c.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"* rate", "* window", "* env: cpus", "(* 3 differ)",
		"×2", "×1.5", "+3", "only B", "only A", "send→receive (only in A)", "generator lag (only in B)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, " pairs ") && strings.HasPrefix(line, "*") {
			t.Errorf("pairs marked as differing: %q", line)
		}
	}
}

func TestCompareSameReportIsAllOnes(t *testing.T) {
	a := roundTrip(t, chatLikeReport())
	c := Compare(a, a)
	for _, p := range c.Params {
		if p.Differs {
			t.Errorf("param %s differs from itself", p.Name)
		}
	}
	for _, d := range c.Figures {
		if r, ok := d.Ratio(); ok && r != 1 {
			t.Errorf("%s: ratio %v", d.Name, r)
		}
	}
	var out strings.Builder
	c.WriteText(&out)
	if strings.Contains(out.String(), "differ") || strings.Contains(out.String(), "only") {
		t.Errorf("self-comparison:\n%s", out.String())
	}
}
