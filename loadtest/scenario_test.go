package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Enough rate for any test sender, as the measured runs use.
var fastServer = []string{"SWITCHBOARD_GATEWAY_MESSAGE_RATE=100000", "SWITCHBOARD_GATEWAY_MESSAGE_BURST=100000"}

func TestChatOpenLoopDeliversEverything(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	s := &Chat{Pairs: 50, Rate: 200, Duration: 2 * time.Second, Size: 64, Drain: 10 * time.Second}
	rep := run(t, context.Background(), srv.config(), s)

	wantNoErrors(t, rep)
	wantFigure(t, rep, "connections up", 100)
	wantFigure(t, rep, "sends scheduled", 400)
	wantFigure(t, rep, "sent", 400)
	wantFigure(t, rep, "acked", 400)
	wantFigure(t, rep, "delivered", 400)
	wantFigure(t, rep, "missing after drain (not delivered)", 0)
	wantFigure(t, rep, "unacked after drain", 0)
	wantFigure(t, rep, "duplicate deliveries", 0)
	wantFigure(t, rep, "misrouted deliveries", 0)
	wantFigure(t, rep, "unexpected frames", 0)
	wantFigure(t, rep, "copies of own messages", 400) // the drain waits for them too
	if got := figure(t, rep, "send rate achieved"); got < 180 || got > 220 {
		t.Errorf("send rate achieved %.1f, want about 200", got)
	}
	wantSaneLatency(t, rep, "send→ack", 400, 5*time.Second)
	wantSaneLatency(t, rep, "send→receive", 400, 5*time.Second)
	if rep.CPU == nil || rep.CPU.ServerSeconds < 0 || rep.CPU.GeneratorSeconds <= 0 {
		t.Errorf("cpu: %+v, want generator and server figures", rep.CPU)
	}

	// The JSON report carries the parameters, environment and percentiles.
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Params      map[string]any `json:"params"`
		Environment Environment    `json:"environment"`
		Latencies   []Latency      `json:"latencies"`
	}
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Params["pairs"] != float64(50) || back.Environment.CPUs < 1 || back.Environment.GoVersion == "" ||
		len(back.Latencies) == 0 || len(back.Latencies[0].Percentiles) != len(reportPercentiles) {
		t.Errorf("JSON report incomplete: %s", buf.String())
	}
}

func TestChatPoissonSchedule(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	s := &Chat{Pairs: 10, Rate: 300, Duration: time.Second, Size: 10, Poisson: true, Seed: 7}
	rep := run(t, context.Background(), srv.config(), s)
	wantNoErrors(t, rep)
	wantFigure(t, rep, "sent", 300)
	wantFigure(t, rep, "delivered", 300)
	wantFigure(t, rep, "missing after drain (not delivered)", 0)
}

func TestChatMaxFindsARate(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	s := &Chat{Pairs: 20, Max: true, Window: 4, Duration: time.Second, Size: 100}
	rep := run(t, context.Background(), srv.config(), s)
	wantNoErrors(t, rep)
	sent, delivered := figure(t, rep, "sent"), figure(t, rep, "delivered")
	if delivered < 100 || delivered != sent {
		t.Errorf("sent %v, delivered %v: want equal and at least 100", sent, delivered)
	}
	wantFigure(t, rep, "missing after drain (not delivered)", 0)
	if got := figure(t, rep, "delivery rate during load"); got < 100 {
		t.Errorf("delivery rate %v msg/s", got)
	}
	wantSaneLatency(t, rep, "send→receive", int64(delivered), 10*time.Second)
}

// Against a server with its default limit (100 msg/s, burst 200), one
// sender at 1,000 msg/s gets rate_limited error frames: they are counted
// by code, the refused sends are failed (not missing), the rest arrive.
func TestChatCountsErrorFrames(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := &Chat{Pairs: 1, Rate: 1000, Duration: time.Second, Size: 10}
	rep := run(t, context.Background(), srv.config(), s)
	limited := rep.Errors["error frame rate_limited"]
	failed := figure(t, rep, "failed (error frame or write error)")
	if limited < 100 || float64(limited) != failed {
		t.Errorf("rate_limited %d, failed %v: want equal and at least 100", limited, failed)
	}
	wantFigure(t, rep, "missing after drain (not delivered)", 0)
	if d := figure(t, rep, "delivered"); d+failed != 1000 {
		t.Errorf("delivered %v + failed %v != 1000 sent", d, failed)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "rate_limited") {
		t.Errorf("no note explaining rate_limited: %q", rep.Notes)
	}
}

func TestChatInterruptStopsPromptlyWithReport(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Chat{Pairs: 10, Rate: 100, Duration: time.Minute, Size: 10, Drain: time.Minute}
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	rep, err := Run(ctx, srv.config(), s)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("interrupted run took %v", took)
	}
	if !rep.Interrupted {
		t.Error("report not marked interrupted")
	}
	if sent := figure(t, rep, "sent"); sent < 10 || sent > 1000 {
		t.Errorf("sent %v before the interrupt, want about 100", sent)
	}
	var b strings.Builder
	rep.WriteText(&b)
	if !strings.Contains(b.String(), "INTERRUPTED") {
		t.Errorf("summary does not say interrupted:\n%s", b.String())
	}
}

func TestIdleHoldsConnections(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	cfg := srv.config()
	cfg.SourceIPs = "127.0.0.2-127.0.0.9"
	s := &Idle{Conns: 50, Hold: 500 * time.Millisecond}
	rep := run(t, context.Background(), cfg, s)
	wantNoErrors(t, rep)
	wantFigure(t, rep, "connections up", 50)
	wantFigure(t, rep, "dropped during hold", 0)
	wantFigure(t, rep, "server connections after connect", 50)
	if rss := figure(t, rep, "server RSS after connect"); rss <= 0 {
		t.Errorf("server RSS %v MiB", rss)
	}
	figure(t, rep, "server RSS per connection")
	figure(t, rep, "kernel TCP memory per connection")
	if after := figure(t, rep, "kernel TCP sockets after connect"); after < 100 {
		t.Errorf("kernel TCP sockets after connect %v, want at least both ends of 50", after)
	}
	wantSaneLatency(t, rep, "connect+upgrade", 50, 5*time.Second)
	wantSaneLatency(t, rep, "first sync", 50, 5*time.Second)
}

func TestIdleSpreadsOverWorkerProcesses(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	cfg := srv.config()
	cfg.WorkerCommand = []string{switchboardBinary(t), "loadtest", "idle-worker"}
	s := &Idle{Conns: 50, Hold: 200 * time.Millisecond, ConnsPerProcess: 20}
	rep := run(t, context.Background(), cfg, s)
	wantNoErrors(t, rep)
	if rep.Environment.Processes != 3 {
		t.Errorf("%d processes, want 3", rep.Environment.Processes)
	}
	wantFigure(t, rep, "connections up", 50)
	wantFigure(t, rep, "server connections after connect", 50)
	wantFigure(t, rep, "dropped during hold", 0)
	wantSaneLatency(t, rep, "connect+upgrade", 50, 5*time.Second)
	if rep.CPU == nil || rep.CPU.GeneratorSeconds <= 0 {
		t.Errorf("cpu %+v: want the workers' CPU", rep.CPU)
	}
}

func TestConnectUpgrades(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := &Connect{Conns: 200, Concurrency: 8}
	rep := run(t, context.Background(), srv.config(), s)
	wantNoErrors(t, rep)
	wantFigure(t, rep, "upgrades succeeded", 200)
	wantFigure(t, rep, "upgrades failed", 0)
	if rate := figure(t, rep, "upgrade rate"); rate <= 0 {
		t.Errorf("upgrade rate %v", rate)
	}
	wantSaneLatency(t, rep, "tcp connect", 200, 5*time.Second)
	wantSaneLatency(t, rep, "connect+upgrade", 200, 5*time.Second)
}

// A token signed with another secret is refused: failures are counted by
// kind, not hidden.
func TestConnectCountsRefusedUpgrades(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	other := startServer(t)
	cfg := srv.config()
	cfg.DataDir = other.DataDir // the wrong secret
	rep := run(t, context.Background(), cfg, &Connect{Conns: 20, Concurrency: 4})
	wantFigure(t, rep, "upgrades succeeded", 0)
	if got := rep.Errors["upgrade: http 401"]; got != 20 {
		t.Errorf("errors %v, want upgrade: http 401 × 20", rep.Errors)
	}
}

// TestReconnectStorm: every client drops at once and all come back and
// sync; the server sees the same number of connections afterwards; the
// timeline shows the dip.
func TestReconnectStorm(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, graceful := range []bool{false, true} {
		s := &Reconnect{Conns: 200, Hold: 100 * time.Millisecond, Graceful: graceful}
		rep := run(t, context.Background(), srv.config(), s)
		wantNoErrors(t, rep)
		wantFigure(t, rep, "back and synced", 200)
		wantFigure(t, rep, "not back within the bound", 0)
		if all := figure(t, rep, "time until all back and synced"); all <= 0 || all > 30 {
			t.Errorf("time until all back %v s", all)
		}
		wantSaneLatency(t, rep, "drop→synced", 200, 30*time.Second)
		if len(rep.Timeline) == 0 || rep.Timeline[len(rep.Timeline)-1].Conns != 200 {
			t.Errorf("timeline %+v: want 200 connections at the end", rep.Timeline)
		}
	}
}

// TestReconnectJitter: with jitter the clients come back spread out (the
// last one after most of the jitter).
func TestReconnectJitter(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := &Reconnect{Conns: 50, Hold: 50 * time.Millisecond, Jitter: time.Second, Seed: 7}
	rep := run(t, context.Background(), srv.config(), s)
	wantFigure(t, rep, "back and synced", 50)
	if all := figure(t, rep, "time until all back and synced"); all < 0.5 {
		t.Errorf("with 1 s of jitter all were back in %v s", all)
	}
}

// TestChatReceiptsAndSizes: recipients send read receipts, every one comes
// back to its sender; bodies follow the size distribution; the timeline
// has a sample per second with latencies.
func TestChatReceiptsAndSizes(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	s := &Chat{Pairs: 20, Rate: 200, Duration: 2 * time.Second, SizeDist: "uniform:10-3000", Receipts: true, Drain: 10 * time.Second}
	rep := run(t, context.Background(), srv.config(), s)
	wantNoErrors(t, rep)
	wantFigure(t, rep, "delivered", 400)
	wantFigure(t, rep, "read receipts back at the senders", 400)
	wantFigure(t, rep, "read receipts missing after drain", 0)
	wantSaneLatency(t, rep, "send→read receipt", 400, 5*time.Second)
	if mean := figure(t, rep, "mean body size"); mean < 1000 || mean > 2000 {
		t.Errorf("mean body size %v, want about 1500", mean)
	}
	if len(rep.Timeline) < 2 {
		t.Fatalf("timeline %+v", rep.Timeline)
	}
	var withLatency int
	for _, sm := range rep.Timeline {
		if sm.E2EP50Ms > 0 && sm.RecvPerSec > 0 {
			withLatency++
		}
	}
	if withLatency == 0 {
		t.Errorf("no second of the timeline has deliveries and latencies: %+v", rep.Timeline)
	}
}

// TestDayInTheLife: habits become a peak-hour chat load: 2,000 DAU, 10%
// online, 86.4 messages a day, peak factor 5: 200 connections at
// 2,000 × 86.4 / 86,400 × 5 = 10 msg/s, all delivered and read.
func TestDayInTheLife(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	s := &Day{DAU: 2000, OnlineShare: 0.1, MsgsPerDay: 86.4, PeakFactor: 5, Duration: 3 * time.Second, Drain: 10 * time.Second}
	rep := run(t, context.Background(), srv.config(), s)
	wantNoErrors(t, rep)
	wantFigure(t, rep, "users online at the peak", 200)
	wantFigure(t, rep, "peak message rate", 10)
	wantFigure(t, rep, "connections up", 200)
	sent := figure(t, rep, "sent")
	if sent < 10 || sent > 60 { // Poisson: about 30
		t.Errorf("sent %v, want about 30", sent)
	}
	wantFigure(t, rep, "delivered", sent)
	wantFigure(t, rep, "read receipts back at the senders", sent)
	if (&Day{DAU: 10, OnlineShare: 0.1, MsgsPerDay: 1, PeakFactor: 1, Duration: time.Second}).Validate() == nil {
		t.Error("one user online accepted")
	}
}

// TestIdleAnswersPingsWhileOpening: connections are read (pings answered)
// from the moment they are up, not once all are: with a server idle
// timeout shorter than the opening takes, none is closed for idleness.
// (The server sweeps once a second, so its idle timeout must exceed the
// ping interval by more than that.)
func TestIdleAnswersPingsWhileOpening(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "SWITCHBOARD_GATEWAY_PING_INTERVAL=500ms", "SWITCHBOARD_GATEWAY_IDLE_TIMEOUT=2s")
	cfg := srv.config()
	cfg.Concurrency = 1
	s := &Idle{Conns: 4000, Hold: 2500 * time.Millisecond}
	rep := run(t, context.Background(), cfg, s)
	if took := figure(t, rep, "time to connect all"); took < 2.5 {
		t.Logf("opening took only %.2f s, less than the idle timeout: the test proves little on this box", took)
	}
	wantFigure(t, rep, "connections up", 4000)
	wantFigure(t, rep, "dropped during hold", 0)
	wantNoErrors(t, rep)
}
