package loadtest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// chatWorkerConfig is srv's config with the real binary as chat worker.
func chatWorkerConfig(t *testing.T, srv *testServer) Config {
	cfg := srv.config()
	cfg.ChatWorkerCommand = []string{switchboardBinary(t), "loadtest", "chat-worker"}
	return cfg
}

// exactChatFigures are the figures of a chat report that do not depend on
// timing: a run over several processes must report them as one process
// does.
var exactChatFigures = []string{
	"connections", "connections up", "sends scheduled", "sends not reached (interrupted)", "copies of own messages",
	"sends skipped (connection down)", "sent", "acked", "delivered", "failed (error frame or write error)",
	"missing after drain (not delivered)", "unacked after drain", "duplicate deliveries", "duplicate acks",
	"misrouted deliveries", "unexpected frames", "target rate",
}

func figureNames(r *Report) []string {
	var names []string
	for _, f := range r.Figures {
		names = append(names, f.Name)
	}
	return names
}

// TestChatSpreadsOverWorkerProcesses: 60 pairs over 3 worker processes
// deliver every scheduled send, and the report has the figures, values
// and latency counts that one process reports for the same run, with a
// timeline fed by the workers' progress lines.
func TestChatSpreadsOverWorkerProcesses(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	cfg := chatWorkerConfig(t, srv)
	multi := run(t, context.Background(), cfg, &Chat{Pairs: 60, Rate: 300, Duration: 2 * time.Second, Size: 64, Processes: 3})
	one := run(t, context.Background(), cfg, &Chat{Pairs: 60, Rate: 300, Duration: 2 * time.Second, Size: 64})

	wantNoErrors(t, multi)
	if multi.Environment.Processes != 3 || multi.Params["processes"] != 3 || one.Environment.Processes != 1 {
		t.Errorf("processes: env %d, params %v; one process: %d", multi.Environment.Processes, multi.Params["processes"], one.Environment.Processes)
	}
	wantFigure(t, multi, "connections up", 120)
	wantFigure(t, multi, "sends scheduled", 600)
	wantFigure(t, multi, "sent", 600)
	wantFigure(t, multi, "acked", 600)
	wantFigure(t, multi, "delivered", 600)
	wantFigure(t, multi, "missing after drain (not delivered)", 0)
	wantFigure(t, multi, "misrouted deliveries", 0)
	wantFigure(t, multi, "unexpected frames", 0)
	if got := figure(t, multi, "send rate achieved"); got < 270 || got > 330 {
		t.Errorf("send rate achieved %.1f, want about 300: the workers' rates add up", got)
	}
	// Spread over the duration, not sent in a burst.
	if lo, hi := figure(t, multi, "deliveries per second: min"), figure(t, multi, "deliveries per second: max"); lo < 250 || hi > 350 {
		t.Errorf("deliveries per second from %v to %v, want about 300 each second", lo, hi)
	}
	for _, name := range exactChatFigures {
		if a, b := figure(t, one, name), figure(t, multi, name); a != b {
			t.Errorf("%s: one process %v, three %v", name, a, b)
		}
	}
	if a, b := figureNames(one), figureNames(multi); !slices.Equal(a, b) {
		t.Errorf("figures differ:\none process %q\nthree       %q", a, b)
	}
	for _, name := range []string{"send→ack", "send→receive", "generator lag"} {
		wantSaneLatency(t, multi, name, 600, 5*time.Second)
	}
	if len(multi.Series) != 1 || sum(multi.Series[0].PerSecond) != 600 {
		t.Errorf("series %+v: want 600 deliveries over the seconds", multi.Series)
	}
	if c := multi.CPU; c == nil || c.GeneratorSeconds <= 0 || c.ServerSeconds <= 0 {
		t.Errorf("cpu %+v: want the workers' and the server's", c)
	}
	// The timeline comes from the workers' progress lines.
	if len(multi.Timeline) < 2 || multi.Timeline[len(multi.Timeline)-1].Conns != 120 {
		t.Fatalf("timeline %+v: want samples ending with 120 connections", multi.Timeline)
	}
	var recv float64
	withLatency := 0
	for _, sm := range multi.Timeline {
		recv += sm.RecvPerSec
		if sm.E2EP50Ms > 0 && sm.AckP50Ms > 0 {
			withLatency++
		}
	}
	if withLatency == 0 || recv < 300 {
		t.Errorf("timeline %+v: want deliveries (%.0f/s summed) and latencies", multi.Timeline, recv)
	}
	// The timeline's generator CPU is the workers' too. It covers less
	// than the run's figure, which has each worker's whole life (start,
	// connecting) and which a loaded box stretches; the controller alone
	// uses a few percent of it, so a quarter shows the workers' are in.
	var genCPU, prev float64
	for _, sm := range multi.Timeline {
		genCPU += sm.GeneratorCPUPercent / 100 * (sm.T - prev)
		prev = sm.T
	}
	if genCPU < multi.CPU.GeneratorSeconds/4 {
		t.Errorf("timeline's generator CPU %.2f s, the run's %.2f s: the workers' is missing", genCPU, multi.CPU.GeneratorSeconds)
	}
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// TestChatWorkersReceiptsAndSizes: read receipts come back across
// workers, each sender's body sizes are the ones one process would draw
// (so the mean is exactly the same), and a Poisson day over two processes
// delivers and reads everything it sends.
func TestChatWorkersReceiptsAndSizes(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	cfg := chatWorkerConfig(t, srv)
	s := &Chat{Pairs: 20, Rate: 200, Duration: 2 * time.Second, SizeDist: "uniform:10-3000", Receipts: true, Processes: 2}
	rep := run(t, context.Background(), cfg, s)
	wantNoErrors(t, rep)
	wantFigure(t, rep, "delivered", 400)
	wantFigure(t, rep, "read receipts back at the senders", 400)
	wantFigure(t, rep, "read receipts missing after drain", 0)
	wantSaneLatency(t, rep, "send→read receipt", 400, 5*time.Second)
	var total, n float64
	for i := range s.Pairs {
		for _, size := range s.senderSizes(i) {
			total += float64(size)
			n++
		}
	}
	wantFigure(t, rep, "mean body size", total/n)

	day := &Day{DAU: 2000, OnlineShare: 0.1, MsgsPerDay: 86.4, PeakFactor: 5, Duration: 3 * time.Second, Processes: 2}
	rep = run(t, context.Background(), cfg, day)
	wantNoErrors(t, rep)
	if rep.Environment.Processes != 2 {
		t.Errorf("day: %d processes, want 2", rep.Environment.Processes)
	}
	wantFigure(t, rep, "connections up", 200)
	sent := figure(t, rep, "sent")
	if sent < 10 || sent > 60 { // Poisson at 10/s for 3 s: about 30
		t.Errorf("day: sent %v, want about 30", sent)
	}
	wantFigure(t, rep, "delivered", sent)
	wantFigure(t, rep, "read receipts back at the senders", sent)
}

// TestChatWorkersInterrupted: canceling the context stops the workers
// (their stdin closes) and the controller still reports what they did,
// marked interrupted, promptly.
func TestChatWorkersInterrupted(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Chat{Pairs: 10, Rate: 100, Duration: time.Minute, Size: 10, Drain: time.Minute, Processes: 2}
	time.AfterFunc(2*time.Second, cancel)
	start := time.Now()
	rep, err := Run(ctx, chatWorkerConfig(t, srv), s)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("interrupted run took %v", took)
	}
	if !rep.Interrupted {
		t.Error("report not marked interrupted")
	}
	if sent := figure(t, rep, "sent"); sent < 10 || sent > 1000 {
		t.Errorf("sent %v before the interrupt, want about 100", sent)
	}
	if d, sent := figure(t, rep, "delivered"), figure(t, rep, "sent"); d < sent-20 {
		t.Errorf("delivered %v of %v", d, sent)
	}
}

// TestChatWorkerDeathIsAnError: workers killed in the middle of the load
// are reported as errors, promptly, not waited for until the run's bound.
func TestChatWorkerDeathIsAnError(t *testing.T) {
	t.Parallel()
	srv := startServer(t, fastServer...)
	cfg := srv.config()
	// The worker, killed 2 s after it starts.
	cfg.ChatWorkerCommand = []string{"sh", "-c", `exec 3<&0; "$0" loadtest chat-worker <&3 & pid=$!; sleep 2; kill -9 $pid`, switchboardBinary(t)}
	s := &Chat{Pairs: 10, Rate: 100, Duration: 20 * time.Second, Size: 10, Processes: 2}
	start := time.Now()
	rep, err := Run(context.Background(), cfg, s)
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("run with dead workers took %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), "exited before") {
		t.Errorf("err %v, want workers that exited", err)
	}
	if rep == nil || rep.Errors["chat worker exited"] != 2 {
		t.Fatalf("report errors %v, want chat worker exited × 2", rep.Errors)
	}
	wantFigure(t, rep, "connections up", 20)
}

// TestChatProcesses: how many processes a run needs, and how it is split.
func TestChatProcesses(t *testing.T) {
	env := &Env{fileLimit: 20000, cfg: Config{ChatWorkerCommand: []string{"worker"}}}
	for _, c := range []struct {
		pairs, procs, want int
	}{
		{9000, 0, 1}, {9950, 0, 1}, {9951, 0, 2}, {12000, 0, 2}, {30000, 0, 4}, {60, 3, 3}, {12000, 2, 2},
		{12000, 1, 0}, {30000, 1, 0}, {30000, 2, 0},
	} {
		got, err := (&Chat{Pairs: c.pairs, Processes: c.procs}).processes(env)
		if got != c.want || (err != nil) != (c.want == 0) {
			t.Errorf("%d pairs, --processes %d: %d processes, %v; want %d", c.pairs, c.procs, got, err, c.want)
		}
	}
	if _, err := (&Chat{Pairs: 12000}).processes(&Env{fileLimit: 20000}); err == nil {
		t.Error("2 processes without a worker command accepted")
	}

	s := &Chat{Pairs: 7, Rate: 1000, Duration: time.Second, Seed: 3, Poisson: true}
	specs := s.split(3)
	var pairs int
	var sends uint64
	var rate float64
	for i, sp := range specs {
		if sp.Part.Worker != i || sp.Part.Offset != pairs || sp.Chat.Processes != 1 || sp.Chat.Seed != 3 || !sp.Chat.Poisson {
			t.Errorf("worker %d: %+v", i, sp)
		}
		if want := float64(i) / 3; sp.Part.Phase != want {
			t.Errorf("worker %d: phase %v, want %v", i, sp.Part.Phase, want)
		}
		pairs += sp.Chat.Pairs
		sends += sp.Part.Sends
		rate += sp.Chat.Rate
	}
	if pairs != 7 || sends != 1000 || rate < 999.999 || rate > 1000.001 {
		t.Errorf("shares add up to %d pairs, %d sends, %v msg/s; want 7, 1000, 1000", pairs, sends, rate)
	}
}

// TestMergeChatTotals: workers' totals merge exactly (counts summed,
// durations maxed, seconds summed, histograms merged, errors and CPU
// added) and report the figures and latencies that one process with all
// their sends reports.
func TestMergeChatTotals(t *testing.T) {
	hists := func(from, to int64) (ack, recv, rcpt, lag *histogram) {
		ack, recv, rcpt, lag = newHistogram(), newHistogram(), newHistogram(), newHistogram()
		for i := from; i < to; i++ {
			ack.record(i * 1_000_000)
			recv.record(i * 2_000_000)
			rcpt.record(i * 3_000_000)
			lag.record(i * 1000)
		}
		return ack, recv, rcpt, lag
	}
	// Every count field gets a distinct value, so that one left out of
	// the merge shows.
	counts := func(t *chatTotals, scale int64) {
		v := reflect.ValueOf(t).Elem()
		for i := range v.NumField() {
			if f := v.Field(i); f.Type() == reflect.TypeFor[int64]() {
				f.SetInt(scale * int64(i+1))
			}
		}
	}
	a, b, want := &chatTotals{}, &chatTotals{}, &chatTotals{}
	counts(a, 1)
	counts(b, 10)
	counts(want, 11)
	a.LoadEnd, a.Drained, a.CPUUser, a.CPUSys = 2*time.Second, 30*time.Millisecond, 0.5, 0.25
	b.LoadEnd, b.Drained, b.CPUUser, b.CPUSys = 1900*time.Millisecond, 50*time.Millisecond, 1, 0.5
	want.LoadEnd, want.Drained, want.CPUUser, want.CPUSys = 2*time.Second, 50*time.Millisecond, 1.5, 0.75
	a.PerSec, b.PerSec, want.PerSec = []int64{1, 2, 3, 0}, []int64{10, 20}, []int64{11, 22, 3, 0}
	a.Errors, b.Errors, want.Errors = map[string]int64{"x": 1}, map[string]int64{"x": 2, "y": 5}, map[string]int64{"x": 3, "y": 5}
	b.Exhausted, want.Exhausted = true, true
	for _, x := range []struct {
		t        *chatTotals
		from, to int64
	}{{a, 1, 101}, {b, 500, 1400}, {want, 1, 101}, {want, 500, 1400}} {
		ack, recv, rcpt, lag := hists(x.from, x.to)
		for _, y := range []struct {
			dst  *Latency
			h    *histogram
			name string
		}{{&x.t.Ack, ack, latAck}, {&x.t.Recv, recv, latRecv}, {&x.t.Rcpt, rcpt, latRcpt}, {&x.t.Lag, lag, latLag}} {
			if y.dst.HDR != nil { // want: both ranges in one histogram
				s, err := y.dst.HDR.snapshot()
				if err != nil {
					t.Fatal(err)
				}
				y.h.mergeSnapshot(s, 0)
			}
			*y.dst = y.h.latency(y.name)
		}
	}
	got, err := mergeChatTotals([]*chatTotals{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, *want) {
		t.Fatalf("merged\n%+v\nwant\n%+v", got, *want)
	}
	if avg := (a.Recv.P50Ms + b.Recv.P50Ms) / 2; got.Recv.P50Ms == avg {
		t.Errorf("merged p50 %v is the average of the p50s", got.Recv.P50Ms)
	}

	// The same figures as one process with those totals.
	s := &Chat{Pairs: 10, Rate: 100, Duration: 2 * time.Second, SizeDist: "uniform:10-20", Receipts: true}
	r1, r2 := &Report{Errors: map[string]int64{}}, &Report{Errors: map[string]int64{}}
	got.report(r1, s)
	want.report(r2, s)
	if !reflect.DeepEqual(r1, r2) {
		t.Errorf("reports differ:\n%+v\n%+v", r1, r2)
	}
	wantFigure(t, r1, "sent", float64(want.Sent))
	wantFigure(t, r1, "drain used", 0.05)
	if r1.Errors["y"] != 5 || len(r1.Latencies) != 4 || r1.Latencies[1].Count != 1000 {
		t.Errorf("report errors %v, latencies %+v", r1.Errors, r1.Latencies)
	}
}
