package loadtest

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChatPairsCrossGateways: with two URLs every pair's sender is on one
// server and its recipient on the other. The two servers here are
// independent embedded ones, so a message reaches its recipient only if
// both are on the same server: none is delivered, every one is acked, and
// each server holds half of the connections and gets half of the sends
// (pair i's sender on URL[i mod 2], counted over the whole run, also when
// the pairs are split between worker processes: 3 pairs each, which a
// per-process count would put 4 and 2).
func TestChatPairsCrossGateways(t *testing.T) {
	t.Parallel()
	a := startServer(t, fastServer...)
	b := startServer(t, append([]string{"SWITCHBOARD_SECRET_FILE=" + a.DataDir + "/secret.key"}, fastServer...)...)
	for _, procs := range []int{1, 2} {
		before := [2]float64{metric(t, a, sendFrames), metric(t, b, sendFrames)}
		upBefore := [2]float64{metric(t, a, upgradesOK), metric(t, b, upgradesOK)}
		cfg := Config{URL: a.URL + "," + b.URL, SecretFile: a.DataDir + "/secret.key", Concurrency: 16, DialTimeout: 5 * time.Second,
			ChatWorkerCommand: []string{switchboardBinary(t), "loadtest", "chat-worker"}}
		s := &Chat{Pairs: 6, Rate: 60, Duration: time.Second, Size: 10, Drain: time.Second, Processes: procs}
		rep := run(t, context.Background(), cfg, s)
		wantFigure(t, rep, "connections up", 12)
		wantFigure(t, rep, "sent", 60)
		wantFigure(t, rep, "acked", 60)
		wantFigure(t, rep, "delivered", 0)
		wantFigure(t, rep, "missing after drain (not delivered)", 60)
		for i, srv := range []*testServer{a, b} {
			if got := metric(t, srv, sendFrames) - before[i]; got != 30 {
				t.Errorf("%d processes: server %d got %v sends, want 30", procs, i, got)
			}
			if got := metric(t, srv, upgradesOK) - upBefore[i]; got != 6 {
				t.Errorf("%d processes: server %d upgraded %v connections, want 6", procs, i, got)
			}
		}
	}
}

const (
	sendFrames = "switchboard_gateway_send_frames_total"
	upgradesOK = `switchboard_gateway_upgrades_total{result="ok"}`
)

// metric reads one sample of srv's /metrics.
func metric(t *testing.T, srv *testServer, name string) float64 {
	t.Helper()
	resp, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(srv.URL, "ws"), "/v1/ws") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s's metrics", name, srv.URL)
	return 0
}
