package plan

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures in testdata are written by hand in the shape of
// loadtest.Report's JSON (loadtest/report.go), with fields the planner
// does not read, and fields a later report may add.

func readFixture(t *testing.T, name string) (Measured, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ReadLoadtest(f, name)
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestReadLoadtest(t *testing.T) {
	for _, c := range []struct {
		file   string
		values map[string]float64
		notes  []string // substrings, one per note expected
	}{
		{"idle.json", map[string]float64{"rss_per_conn_kib": 1.279, "tested_conns": 15000},
			[]string{`"kernel TCP memory per connection" (0 bytes) not used`}},
		{"idle-250k.json", map[string]float64{"rss_per_conn_kib": 1.31, "tested_conns": 250000},
			[]string{"interrupted", "12 errors", `"kernel TCP memory per connection" (-1,980 bytes) not used`}},
		{"connect.json", map[string]float64{"upgrades_per_core": 16299 / 0.74}, nil},
		{"chat-max.json", map[string]float64{"msgs_per_core": 90130 / 1.5}, nil},
		{"chat-open-nocpu.json", map[string]float64{"msgs_per_core": 9999.5 / 2},
			[]string{"CPU is unknown", "open-loop", "3 messages were not delivered"}},
	} {
		m, err := readFixture(t, c.file)
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if len(m.Values) != len(c.values) {
			t.Errorf("%s: values %v, want %v", c.file, m.Values, c.values)
		}
		for k, want := range c.values {
			if got, ok := m.Values[k]; !ok || !near(got, want) {
				t.Errorf("%s: %s = %v, want %v", c.file, k, got, want)
			}
			if !strings.Contains(m.Basis[k], c.file) || !strings.HasPrefix(m.Basis[k], "measured:") {
				t.Errorf("%s: %s basis %q does not name the report", c.file, k, m.Basis[k])
			}
		}
		if len(m.Notes) != len(c.notes) {
			t.Errorf("%s: notes %q, want %d", c.file, m.Notes, len(c.notes))
		}
		for _, want := range c.notes {
			if !strings.Contains(strings.Join(m.Notes, "\n"), want) {
				t.Errorf("%s: no note about %q in %q", c.file, want, m.Notes)
			}
		}
	}
}

func TestReadLoadtestApply(t *testing.T) {
	in := Defaults()
	for _, name := range []string{"idle-250k.json", "connect.json", "chat-max.json"} {
		m, err := readFixture(t, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(&in); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Input{}
	for _, i := range p.Inputs {
		got[i.Key] = i
	}
	if i := got["msgs_per_core"]; !near(i.Value, 90130/1.5) || !strings.Contains(i.Basis, "chat-max.json") {
		t.Errorf("msgs_per_core: %+v", i)
	}
	if i := got["rss_per_conn_kib"]; !near(i.Value, 1.31) || !strings.Contains(i.Basis, "idle-250k.json") {
		t.Errorf("rss_per_conn_kib: %+v", i)
	}
	if i := got["kernel_per_conn_kib"]; i.Value != 3.8 || !strings.HasPrefix(i.Basis, "measured: the slab objects") {
		t.Errorf("kernel_per_conn_kib: %+v; the sockstat figure must not replace it", i)
	}
	// 250,000 connections measured: the per-box extrapolation shrinks.
	if v, _ := p.Value("conns_per_box_planned"); v/in.TestedConns > 10 {
		t.Errorf("planned %v per box against %v tested", v, in.TestedConns)
	}
}

// TestReadLoadtestSmallAndDay: a small idle run and a day run are read,
// with a note on what to make of them.
func TestReadLoadtestSmallAndDay(t *testing.T) {
	m, err := ReadLoadtest(strings.NewReader(`{"scenario": "idle", "figures": [
		{"name": "connections up", "value": 300}, {"name": "server RSS per connection", "value": 4.9, "unit": "KiB"}]}`), "small.json")
	if err != nil || m.Values["rss_per_conn_kib"] != 4.9 || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "a small run") {
		t.Errorf("small idle run: %v %v %q", err, m.Values, m.Notes)
	}
	m, err = ReadLoadtest(strings.NewReader(`{"scenario": "day", "params": {"mode": "open loop, poisson", "dau": 10000},
		"figures": [{"name": "delivery rate during load", "value": 500, "unit": "msg/s"}],
		"cpu": {"server_percent": 25}}`), "day.json")
	if err != nil || m.Values["msgs_per_core"] != 2000 || len(m.Notes) != 2 || !strings.Contains(strings.Join(m.Notes, "\n"), "read receipts") {
		t.Errorf("day run: %v %v %q", err, m.Values, m.Notes)
	}
}

func TestReadLoadtestErrors(t *testing.T) {
	for _, c := range []struct {
		name, json, want string
		report           bool // wraps ErrLoadtestReport
	}{
		{"garbage", `{"scenario": "idle", "figures": [`, "not a load-test JSON report", false},
		{"not json", `hello`, "not a load-test JSON report", false},
		{"unknown scenario", `{"scenario": "reconnect", "figures": []}`, `scenario "reconnect" has no figure a plan uses`, true},
		{"idle without RSS", `{"scenario": "idle", "figures": [{"name": "connections up", "value": 10}]}`, `no figure "server RSS per connection"`, true},
		{"connect without rate", `{"scenario": "connect", "figures": []}`, `no figure "upgrade rate"`, true},
		{"chat rate 0", `{"scenario": "chat", "figures": [{"name": "delivery rate during load", "value": 0}]}`, `is 0`, true},
		{"idle RSS below 0", `{"scenario": "idle", "figures": [{"name": "server RSS per connection", "value": -0.2, "unit": "KiB"}]}`, `is -0.2`, true},
	} {
		_, err := ReadLoadtest(strings.NewReader(c.json), "x.json")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.json") {
			t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.want)
		}
		if errors.Is(err, ErrLoadtestReport) != c.report {
			t.Errorf("%s: errors.Is(err, ErrLoadtestReport) = %v", c.name, !c.report)
		}
	}
}
