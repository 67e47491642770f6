package loadtest

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Chat over several processes. A controller (Chat.Run with more than one
// process) starts chat workers (Config.ChatWorkerCommand, RunChatWorker)
// and speaks JSON lines with each:
//
//	controller → worker (stdin)
//	  chatSpec                                the config, run id, the worker's Chat and part
//	  {"event":"go","start_unix_nano":T}      start the load at T (wall clock)
//	  EOF                                     stop now (Ctrl-C, or the run was abandoned)
//	worker → controller (stdout)
//	  {"event":"progress",...}                every second: cumulative counts, and the
//	                                          e2e and ack histograms of that second
//	  {"event":"ready",...}                   connections up (or failed), readers running
//	  {"event":"done","totals":{...}}         after the drain (or the stop): chatTotals
//
// The controller waits for every "ready" (bounded by setupBound), sends
// every worker the same start time, feeds the progress lines to its Meter
// (counts summed, histograms merged into its windows) and merges the
// "done" totals exactly (mergeChatTotals). A worker that exits early,
// stays silent for workerSilence or overruns its bound is killed and
// counted as an error.

// Bounds of the controller's waits.
const (
	// goAfter is how far ahead of now the common start time is set.
	goAfter = 500 * time.Millisecond
	// workerSilence is how long a worker may write no line (it writes one
	// a second) before it is taken for hung and killed.
	workerSilence = 30 * time.Second
	// doneMargin is how long after start+Duration+Drain a worker may take
	// to write its "done" line.
	doneMargin = 60 * time.Second
	// stopGrace is how long workers get to write "done" once stopped.
	stopGrace = 30 * time.Second
	// workerExit is how long workers get to exit once their stdin closes.
	workerExit = 10 * time.Second
	// progressLead is how long before each meter sample the workers write
	// their progress lines.
	progressLead = 250 * time.Millisecond
)

// chatSpec is the first line a chat worker reads: everything it needs to
// run its share.
type chatSpec struct {
	Config Config `json:"config"`
	RunID  string `json:"run_id"`
	// Chat is the worker's share: Pairs, Rate (Rate × pairs share) and
	// Processes (1) are its own, the rest is the run's.
	Chat Chat     `json:"chat"`
	Part chatPart `json:"part"`
	// GoWithin bounds the worker's wait for "go" after it starts.
	GoWithin time.Duration `json:"go_within_ns"`
	// TickUnixNano is when progress lines are due, plus whole seconds
	// (wall clock): progressLead before each of the controller's meter
	// samples, so that every sample gets one fresh line of each worker.
	TickUnixNano int64 `json:"tick_unix_nano"`
}

// chatGo is the controller's second line: when to start the load.
type chatGo struct {
	Event         string `json:"event"` // "go"
	StartUnixNano int64  `json:"start_unix_nano"`
}

// chatLine is a line from a chat worker.
type chatLine struct {
	Event string `json:"event"` // "progress", "ready" or "done"
	// Cumulative counts ("progress", "ready").
	Up       int64 `json:"up"`
	Sent     int64 `json:"sent"`
	Acked    int64 `json:"acked"`
	Received int64 `json:"received"`
	Errors   int64 `json:"errors"`
	// CPU is the worker's CPU seconds so far ("progress").
	CPU float64 `json:"cpu,omitempty"`
	// E2E and Ack are the latencies of the interval since the last
	// progress line ("progress"; nil: none).
	E2E *HDR `json:"e2e,omitempty"`
	Ack *HDR `json:"ack,omitempty"`
	// Failures counts failed connection opens by kind ("ready").
	Failures map[string]int64 `json:"failures,omitempty"`
	// Totals are the worker's raw totals ("done").
	Totals *chatTotals `json:"totals,omitempty"`
}

// sends is how many sends a whole run may make.
func (s *Chat) sends() uint64 {
	if s.Max {
		return uint64(s.MaxSends)
	}
	return uint64(math.Ceil(s.Rate * s.Duration.Seconds()))
}

// split divides s between procs workers: disjoint pairs, the rate in
// proportion, the sends likewise (summing to the run's), a schedule phase
// each so that even schedules interleave, and the worker's index, which
// picks its Poisson stream.
func (s *Chat) split(procs int) []chatSpec {
	P, n := uint64(s.Pairs), s.sends()
	upTo := func(pair int) uint64 { // n × pair / P without overflow
		hi, lo := bits.Mul64(n, uint64(pair))
		q, _ := bits.Div64(hi, lo, P)
		return q
	}
	specs := make([]chatSpec, procs)
	for p := range procs {
		from, to := s.Pairs*p/procs, s.Pairs*(p+1)/procs
		c := *s
		c.Pairs, c.Processes, c.part = to-from, 1, nil
		c.Rate = s.Rate * float64(to-from) / float64(s.Pairs)
		specs[p] = chatSpec{Chat: c, Part: chatPart{Worker: p, Offset: from, Sends: upTo(to) - upTo(from), Phase: float64(p) / float64(procs)}}
	}
	return specs
}

// setupBound bounds opening conns connections with cfg: each takes at most
// two DialTimeouts (connect and upgrade, then the first sync), Concurrency
// at a time, plus a margin for the bookkeeping.
func setupBound(cfg Config, conns int) time.Duration {
	rounds := (conns + cfg.Concurrency - 1) / cfg.Concurrency
	return time.Duration(rounds)*2*cfg.DialTimeout + 30*time.Second
}

// RunChatWorker is a chat worker process's main: it reads a chat spec (one
// JSON line) from in, opens its pairs' connections, writes "ready", waits
// for "go" and starts its load at the time it names, writes "progress"
// every second and "done" with its totals at the end. It stops early when
// in reaches EOF or ctx is canceled, and still writes "done".
func RunChatWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	var spec chatSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("chat worker: read spec: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	goLine := make(chan chatGo, 1)
	go func() {
		var g chatGo
		if dec.Decode(&g) == nil && g.Event == "go" {
			goLine <- g
		}
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in))
		cancel()
	}()
	env, err := workerEnv(spec.Config, spec.RunID)
	if err != nil {
		return err
	}
	s, part := spec.Chat, spec.Part
	s.part = &part
	if err := s.Validate(); err != nil {
		return err
	}
	if uint64(2*s.Pairs)+100 > env.fileLimit {
		return fmt.Errorf("chat worker: %d connections, over this process's open-file limit %d", 2*s.Pairs, env.fileLimit)
	}
	// Carry on the spread over source addresses where the previous
	// workers' connections end.
	env.dialer.next.Store(uint64(2 * part.Offset))

	cr := newChatRun(ctx, &s)
	cr.meter.E2E, cr.meter.Ack = NewWindow(), NewWindow()
	st := newDialStats()
	var mu sync.Mutex // one line at a time
	enc := json.NewEncoder(out)
	send := func(m chatLine) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(m)
	}
	counts := func(event string) chatLine {
		return chatLine{Event: event, Up: st.up.Load(), Sent: cr.sent.Load(), Acked: cr.acked.Load(),
			Received: cr.delivered.Load(), Errors: cr.errs.total() + st.fails.total()}
	}
	progress := func() {
		m := counts("progress")
		m.E2E, m.Ack = takeHDR(cr.meter.E2E), takeHDR(cr.meter.Ack)
		m.CPU = ownCPU().total()
		send(m)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		// The first line at the next due time, then every second.
		first := time.Duration(spec.TickUnixNano-time.Now().UnixNano()) % meterEvery
		if first < 0 {
			first += meterEvery
		}
		t := time.NewTimer(first)
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
			return
		}
		progress()
		every(stop, meterEvery, progress)
	}()
	// The last progress line carries the last partial second.
	endProgress := sync.OnceFunc(func() {
		close(stop)
		<-stopped
		progress()
	})
	defer endProgress()

	ok := cr.connect(env, st)
	if ok {
		cr.prepare()
	}
	ready := counts("ready")
	ready.Failures = st.fails.snapshot()
	if err := send(ready); err != nil {
		cr.close()
		return err
	}
	t := chatTotals{}
	if ok {
		timer := time.NewTimer(spec.GoWithin)
		select {
		case g := <-goLine:
			base := time.Now().Add(time.Until(time.Unix(0, g.StartUnixNano)))
			cpu := ownCPU()
			ld := cr.load(base)
			end := ownCPU()
			endProgress()
			cr.close()
			t = cr.totals(ld)
			t.CPUUser, t.CPUSys = end.User-cpu.User, end.Sys-cpu.Sys
		case <-ctx.Done():
		case <-timer.C:
			err = fmt.Errorf("chat worker: no go line within %v", spec.GoWithin)
		}
		timer.Stop()
	}
	endProgress()
	cr.close()
	if t.Errors == nil {
		t.Errors = cr.errs.snapshot()
	}
	return errors.Join(err, send(chatLine{Event: "done", Totals: &t}))
}

// takeHDR returns what w recorded since the last take (nil: nothing) and
// empties it.
func takeHDR(w *Window) *HDR {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h.TotalCount() == 0 {
		return nil
	}
	h := hdrOf(w.h.Export())
	w.h.Reset()
	return h
}

// mergeHDR adds a worker's interval histogram to w.
func mergeHDR(w *Window, h *HDR) error {
	if h == nil {
		return nil
	}
	s, err := h.snapshot()
	if err != nil {
		return err
	}
	o := hdrhistogram.Import(s)
	w.mu.Lock()
	w.h.Merge(o)
	w.mu.Unlock()
	return nil
}

// runProcesses is Run as the controller of procs chat workers.
func (s *Chat) runProcesses(ctx context.Context, env *Env, r *Report, procs int) error {
	P := s.Pairs
	m := Meter{ConnsTarget: int64(2 * P), E2E: NewWindow(), Ack: NewWindow()}
	env.log.Info("chat: connecting", "conns", 2*P, "processes", procs)
	setupStart := time.Now()
	setup := setupBound(env.cfg, 2*((P+procs-1)/procs))
	cw := newChatWorkers(env, procs)
	defer cw.stop()
	defer func() { r.addErrors(cw.fails.snapshot()) }()
	m.Conns = cw.sum(func(w *chatWorker) *atomic.Int64 { return &w.up })
	m.Sent = cw.sum(func(w *chatWorker) *atomic.Int64 { return &w.sent })
	m.Acked = cw.sum(func(w *chatWorker) *atomic.Int64 { return &w.acked })
	m.Received = cw.sum(func(w *chatWorker) *atomic.Int64 { return &w.received })
	werrs := cw.sum(func(w *chatWorker) *atomic.Int64 { return &w.errs })
	m.Errors = func() int64 { return werrs() + cw.fails.total() }
	wcpu := cw.sum(func(w *chatWorker) *atomic.Int64 { return &w.cpu })
	m.WorkerCPU = func() float64 { return float64(wcpu()) / 1e6 }
	// The meter samples every second from now: the workers' progress
	// lines are due just before.
	tick := time.Now().Add(meterEvery - progressLead)
	stopMeter := m.Start(ctx, env, r)
	defer stopMeter()
	if err := cw.start(env, s, setup+30*time.Second, tick, m.E2E, m.Ack); err != nil {
		return err
	}
	stopInputs := context.AfterFunc(ctx, cw.closeInputs)
	defer stopInputs()

	readies, err := cw.await(ctx, "ready", setupStart.Add(setup), true)
	var up int64
	for _, l := range readies {
		if l != nil {
			up += l.Up
			r.addErrors(l.Failures)
		}
	}
	r.Add("connections", float64(2*P), "")
	r.Add("connections up", float64(up), "")
	r.Add("setup time", time.Since(setupStart).Seconds(), "s")
	switch {
	case err != nil:
		return err
	case ctx.Err() != nil:
		return nil
	case up < int64(2*P):
		return fmt.Errorf("chat: %d of %d connections failed", int64(2*P)-up, 2*P)
	}

	cpu := env.StartCPU(ctx)
	start := time.Now().Add(goAfter)
	cw.sendGo(start)
	env.log.Info("chat: load", "mode", r.Params["mode"], "pairs", P, "duration", s.Duration, "processes", procs)
	dones, err := cw.await(ctx, "done", start.Add(s.Duration+s.Drain+doneMargin), false)
	var ts []*chatTotals
	for _, l := range dones {
		if l != nil && l.Totals != nil {
			ts = append(ts, l.Totals)
		}
	}
	t, merr := mergeChatTotals(ts)
	// The workers are not waited for yet, so getrusage does not count them.
	cpu.AddGenerator(t.CPUUser, t.CPUSys)
	r.CPU = cpu.Stop(ctx)
	stopMeter()
	t.report(r, s)
	return errors.Join(err, merr)
}

// mergeChatTotals merges workers' totals exactly: counts summed, the load
// and drain durations maxed (the workers started together), per-second
// deliveries summed second by second, latencies merged through their
// histograms, errors summed by kind, CPU added.
func mergeChatTotals(ts []*chatTotals) (chatTotals, error) {
	m := chatTotals{Errors: map[string]int64{}}
	var ack, recv, rcpt, lag []Latency
	for _, t := range ts {
		for _, f := range []struct{ dst, src *int64 }{
			{&m.Scheduled, &t.Scheduled}, {&m.Attempted, &t.Attempted}, {&m.Skipped, &t.Skipped},
			{&m.Sent, &t.Sent}, {&m.Acked, &t.Acked}, {&m.Delivered, &t.Delivered}, {&m.Failed, &t.Failed},
			{&m.Missing, &t.Missing}, {&m.Unacked, &t.Unacked}, {&m.DupDeliveries, &t.DupDeliveries},
			{&m.DupAcks, &t.DupAcks}, {&m.Misrouted, &t.Misrouted}, {&m.Stray, &t.Stray}, {&m.Copies, &t.Copies},
			{&m.Receipted, &t.Receipted}, {&m.EarlyReceipts, &t.EarlyReceipts}, {&m.DeliveredInLoad, &t.DeliveredInLoad},
			{&m.BodyBytes, &t.BodyBytes}, {&m.BodyFrames, &t.BodyFrames},
		} {
			*f.dst += *f.src
		}
		m.LoadEnd, m.Drained = max(m.LoadEnd, t.LoadEnd), max(m.Drained, t.Drained)
		m.Exhausted = m.Exhausted || t.Exhausted
		if n := len(t.PerSec); n > len(m.PerSec) {
			m.PerSec = append(m.PerSec, make([]int64, n-len(m.PerSec))...)
		}
		for i, v := range t.PerSec {
			m.PerSec[i] += v
		}
		for k, v := range t.Errors {
			m.Errors[k] += v
		}
		m.CPUUser += t.CPUUser
		m.CPUSys += t.CPUSys
		ack, recv, rcpt, lag = append(ack, t.Ack), append(recv, t.Recv), append(rcpt, t.Rcpt), append(lag, t.Lag)
	}
	var errs [4]error
	m.Ack, errs[0] = MergeLatencies(latAck, ack...)
	m.Recv, errs[1] = MergeLatencies(latRecv, recv...)
	m.Rcpt, errs[2] = MergeLatencies(latRcpt, rcpt...)
	m.Lag, errs[3] = MergeLatencies(latLag, lag...)
	return m, errors.Join(errs[:]...)
}

// chatWorkers are the chat worker processes of a controller.
type chatWorkers struct {
	log     *slog.Logger
	workers []*chatWorker
	// events gets each worker's first "ready" and "done" and the end of
	// its stdout: at most three per worker, so readers never block.
	events chan chatEvent
	// fails counts workers that ended before their line, by kind.
	fails counts
}

type chatWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	read  chan struct{} // closed when its stdout has ended
	// Counts from its last line, its CPU (µs) from its last progress line;
	// last is when its last line came (unix nanos).
	up, sent, acked, received, errs, cpu, last atomic.Int64
	// Used by the controller's goroutine only.
	exited bool
	killed string // why the controller killed it
}

// chatEvent is a worker's "ready" or "done" line, or (line nil) the end
// of its stdout.
type chatEvent struct {
	w    int
	line *chatLine
}

// newChatWorkers returns procs workers, not started yet: their counts
// (zero) can be read at once.
func newChatWorkers(env *Env, procs int) *chatWorkers {
	cw := &chatWorkers{log: env.log, events: make(chan chatEvent, 3*procs), workers: make([]*chatWorker, procs)}
	for i := range cw.workers {
		cw.workers[i] = &chatWorker{read: make(chan struct{})}
	}
	return cw
}

// start starts the workers' processes, each with its share of s; on an
// error, stop stops the ones started. Progress lines are due at tick plus
// whole seconds.
func (cw *chatWorkers) start(env *Env, s *Chat, goWithin time.Duration, tick time.Time, e2e, ack *Window) error {
	argv := env.cfg.ChatWorkerCommand
	for i, spec := range s.split(len(cw.workers)) {
		spec.Config, spec.RunID, spec.GoWithin, spec.TickUnixNano = env.cfg, env.runID, goWithin, tick.UnixNano()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("chat: start worker: %w", err)
		}
		w := cw.workers[i]
		w.cmd, w.stdin = cmd, stdin
		w.last.Store(time.Now().UnixNano())
		go cw.readLines(i, w, stdout, e2e, ack)
		if err := json.NewEncoder(stdin).Encode(spec); err != nil {
			return fmt.Errorf("chat: start worker: %w", err)
		}
	}
	return nil
}

// readLines reads worker i's lines until its stdout ends: progress goes to
// the counts and the meter's windows, "ready" and "done" to events.
func (cw *chatWorkers) readLines(i int, w *chatWorker, stdout io.Reader, e2e, ack *Window) {
	defer close(w.read)
	defer func() { cw.events <- chatEvent{w: i} }()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		w.last.Store(time.Now().UnixNano())
		var m chatLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			cw.log.Warn("chat: unreadable line from a worker", "worker", i, "err", err)
			continue
		}
		switch m.Event {
		case "progress", "ready":
			w.up.Store(m.Up)
			w.sent.Store(m.Sent)
			w.acked.Store(m.Acked)
			w.received.Store(m.Received)
			w.errs.Store(m.Errors)
			if m.Event == "progress" {
				w.cpu.Store(int64(m.CPU * 1e6))
			}
			if err := errors.Join(mergeHDR(e2e, m.E2E), mergeHDR(ack, m.Ack)); err != nil {
				cw.log.Warn("chat: bad histogram from a worker", "worker", i, "err", err)
			}
		case "done":
			if t := m.Totals; t != nil {
				w.sent.Store(t.Sent)
				w.acked.Store(t.Acked)
				w.received.Store(t.Delivered)
			}
		}
		if (m.Event == "ready" || m.Event == "done") && !seen[m.Event] {
			seen[m.Event] = true
			cw.events <- chatEvent{w: i, line: &m}
		}
	}
	if err := sc.Err(); err != nil {
		cw.log.Warn("chat: reading a worker", "worker", i, "err", err)
		io.Copy(io.Discard, stdout) // never leave it blocked on a full pipe
	}
}

// sum returns a function summing one counter over the workers. Safe for
// concurrent use.
func (cw *chatWorkers) sum(counter func(*chatWorker) *atomic.Int64) func() int64 {
	return func() int64 {
		var n int64
		for _, w := range cw.workers {
			n += counter(w).Load()
		}
		return n
	}
}

// sendGo tells every worker to start its load at start.
func (cw *chatWorkers) sendGo(start time.Time) {
	for i, w := range cw.workers {
		if w.stdin == nil {
			continue
		}
		if err := json.NewEncoder(w.stdin).Encode(chatGo{Event: "go", StartUnixNano: start.UnixNano()}); err != nil {
			cw.log.Warn("chat: could not start a worker's load", "worker", i, "err", err) // await reports it
		}
	}
}

// closeInputs closes the workers' stdin: they stop, write "done" and exit.
// Safe for concurrent use.
func (cw *chatWorkers) closeInputs() {
	for _, w := range cw.workers {
		if w.stdin != nil {
			w.stdin.Close()
		}
	}
}

func (w *chatWorker) kill(why string) {
	if w.killed == "" {
		w.killed = why
		w.cmd.Process.Kill()
	}
}

// await collects each running worker's event line (nil for a worker that
// gave none). A worker that ends first, writes nothing for workerSilence
// or is still silent at deadline is killed if needed, counted in fails
// and reported in the error. When ctx ends, await returns at once if
// interruptible; otherwise it stops the workers and gives them stopGrace
// more to answer.
func (cw *chatWorkers) await(ctx context.Context, event string, deadline time.Time, interruptible bool) ([]*chatLine, error) {
	lines := make([]*chatLine, len(cw.workers))
	pending := map[int]bool{}
	for i, w := range cw.workers {
		if w.cmd != nil && !w.exited {
			pending[i] = true
		}
	}
	var errs []error
	give := func(i int, why string) {
		w := cw.workers[i]
		delete(pending, i)
		cw.fails.add("chat worker "+why, 1)
		errs = append(errs, fmt.Errorf("chat: worker %d (pid %d) %s before its %q line", i, w.cmd.Process.Pid, why, event))
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := ctx.Done()
	overran := false
	for len(pending) > 0 {
		select {
		case e := <-cw.events:
			w := cw.workers[e.w]
			switch {
			case e.line == nil:
				w.exited = true
				if pending[e.w] {
					give(e.w, cmp.Or(w.killed, "exited"))
				}
			case e.line.Event == event && pending[e.w]:
				lines[e.w] = e.line
				delete(pending, e.w)
			}
		case <-tick.C:
			for i := range pending {
				w := cw.workers[i]
				if silent := time.Since(time.Unix(0, w.last.Load())); silent > workerSilence && w.killed == "" {
					cw.log.Warn("chat: worker silent; killing it", "worker", i, "pid", w.cmd.Process.Pid, "silent", silent)
					w.kill("went silent and was killed")
				}
			}
		case <-timer.C:
			if overran { // killed, and still no end of stdout
				for i := range pending {
					give(i, "did not end after a kill")
				}
				break
			}
			overran = true
			for i := range pending {
				cw.log.Warn("chat: worker overran its bound; killing it", "worker", i, "event", event)
				cw.workers[i].kill("overran its bound and was killed")
			}
			timer.Reset(workerExit)
		case <-done:
			if interruptible {
				return lines, errors.Join(errs...)
			}
			done = nil
			cw.closeInputs()
			if time.Until(deadline) > stopGrace && !overran {
				timer.Reset(stopGrace)
			}
		}
	}
	return lines, errors.Join(errs...)
}

// stop closes the workers' stdin, waits workerExit for them to exit (then
// kills them) and reaps them.
func (cw *chatWorkers) stop() {
	cw.closeInputs()
	deadline := time.Now().Add(workerExit)
	for i, w := range cw.workers {
		if w.cmd == nil {
			continue
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-w.read:
		case <-t.C:
			cw.log.Warn("chat: worker did not stop; killing it", "worker", i, "pid", w.cmd.Process.Pid)
			w.kill("did not stop")
			<-w.read
		}
		t.Stop()
		if err := w.cmd.Wait(); err != nil && w.killed == "" {
			cw.log.Warn("chat: worker exited", "worker", i, "err", err)
		}
	}
}
