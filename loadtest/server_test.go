package loadtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
)

// The scenarios run against the real server binary, built once per test
// binary: the gateway is exercised exactly as a user runs it.
func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }

func switchboardBinary(t *testing.T) string { return testserver.Binary(t) }

// testServer is what a scenario needs to know of a server.
type testServer struct {
	URL     string
	DataDir string
	PID     int
}

// startServer starts the server on a random loopback port and a fresh data
// dir, with extra environment (KEY=VALUE), and waits for /readyz; it is
// stopped when the test ends.
func startServer(t *testing.T, env ...string) *testServer {
	t.Helper()
	s := testserver.Start(t, testserver.Options{Env: env})
	return &testServer{URL: s.URL(), DataDir: s.DataDir(), PID: s.PID()}
}

func (s *testServer) config() Config {
	return Config{URL: s.URL, DataDir: s.DataDir, ServerPID: s.PID, Concurrency: 16, DialTimeout: 5 * time.Second}
}

// run runs s against srv and fails the test on a run error.
func run(t *testing.T, ctx context.Context, cfg Config, s Scenario) *Report {
	t.Helper()
	rep, err := Run(ctx, cfg, s)
	if err != nil {
		t.Fatalf("%s: %v", s.Name(), err)
	}
	if testing.Verbose() {
		var b strings.Builder
		rep.WriteText(&b)
		t.Log("\n" + b.String())
	}
	return rep
}

func figure(t *testing.T, r *Report, name string) float64 {
	t.Helper()
	v, ok := r.Figure(name)
	if !ok {
		t.Fatalf("report has no figure %q", name)
	}
	return v
}

func wantFigure(t *testing.T, r *Report, name string, want float64) {
	t.Helper()
	if got := figure(t, r, name); got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func wantNoErrors(t *testing.T, r *Report) {
	t.Helper()
	if len(r.Errors) != 0 {
		t.Errorf("errors: %s", formatCounts(r.Errors))
	}
}

// wantSaneLatency checks that a latency summary has count samples and
// ordered percentiles below limit.
func wantSaneLatency(t *testing.T, r *Report, name string, count int64, limit time.Duration) {
	t.Helper()
	l, ok := r.Latency(name)
	if !ok {
		t.Fatalf("report has no latency %q", name)
	}
	if l.Count != count {
		t.Errorf("%s: %d samples, want %d", name, l.Count, count)
	}
	if count == 0 {
		return
	}
	lim := float64(limit) / 1e6
	if !(0 < l.P50Ms && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.P999Ms && l.P999Ms <= l.MaxMs && l.MaxMs < lim) {
		t.Errorf("%s: percentiles not ordered or over %v: %+v", name, limit, l)
	}
}
