package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The scenarios run against the real server binary, built once per test
// binary: the gateway is exercised exactly as a user runs it.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	var err error
	binDir, err = os.MkdirTemp("", "loadtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

func switchboardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "switchboard")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/switchboard/switchboard/cmd/switchboard")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testServer is a switchboard process on a random loopback port.
type testServer struct {
	URL     string
	DataDir string
	PID     int
}

// startServer starts the server with extra environment (KEY=VALUE) and
// waits for /readyz; it is stopped when the test ends.
func startServer(t *testing.T, env ...string) *testServer {
	t.Helper()
	bin := switchboardBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	var logs strings.Builder
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", dir)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: &logs}, &lockedWriter{w: &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("server exited before ready: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready in 20 s\n%s", logs.String())
		}
	}
	return &testServer{URL: "ws://" + addr + "/v1/ws", DataDir: dir, PID: cmd.Process.Pid}
}

func (s *testServer) config() Config {
	return Config{URL: s.URL, DataDir: s.DataDir, ServerPID: s.PID, Concurrency: 16, DialTimeout: 5 * time.Second}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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
