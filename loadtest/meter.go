package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Sample is one interval of a run (a second by default), as the status
// line shows it and the HTML report plots it. Rates are per second over
// the interval; a latency or server figure that was not measured is -1
// (left out of the plots).
type Sample struct {
	T           float64 `json:"t"` // seconds since the run started, at the interval's end
	Conns       int64   `json:"conns"`
	ConnsTarget int64   `json:"conns_target"`
	SentPerSec  float64 `json:"sent_per_s"`
	AckedPerSec float64 `json:"acked_per_s"`
	RecvPerSec  float64 `json:"received_per_s"`
	// ErrorsPerSec counts every failure the scenario counts (Report.Errors).
	ErrorsPerSec float64 `json:"errors_per_s"`
	E2EP50Ms     float64 `json:"e2e_p50_ms"`
	E2EP99Ms     float64 `json:"e2e_p99_ms"`
	E2EMaxMs     float64 `json:"e2e_max_ms"`
	AckP50Ms     float64 `json:"ack_p50_ms"`
	AckP99Ms     float64 `json:"ack_p99_ms"`
	// ServerCPUPercent is of one CPU; ServerRSSMB in MiB.
	ServerCPUPercent    float64 `json:"server_cpu_percent"`
	ServerRSSMB         float64 `json:"server_rss_mb"`
	GeneratorCPUPercent float64 `json:"generator_cpu_percent"`
}

// Meter is the live view of a run: the counts a scenario keeps, sampled
// every interval into Report.Timeline and shown on the status line. A
// scenario fills in what it measures before Start (nil: not measured);
// Start calls them from its own goroutine, so they must be safe for
// concurrent use (an atomic's Load, typically).
type Meter struct {
	ConnsTarget int64
	Conns       func() int64 // connections up
	// Sent, Acked and Received are cumulative counts of messages.
	Sent, Acked, Received func() int64
	// Errors is the cumulative count of failures.
	Errors func() int64
	// ErrorKinds, if set, counts the failures by kind (Report.Errors'
	// keys), for the status line's most frequent ones.
	ErrorKinds func() map[string]int64
	// E2E and Ack hold the latencies of the current interval; the
	// scenario records into them besides its own histograms.
	E2E, Ack *Window
	// WorkerCPU is the cumulative CPU seconds of the scenario's worker
	// processes (from their progress lines), added to this process's own
	// for the generator's CPU. Nil: no workers.
	WorkerCPU func() float64

	stop chan struct{}
	done chan struct{}
}

// Window is a latency histogram that the meter empties every interval.
// Safe for concurrent use.
type Window struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewWindow returns an empty window.
func NewWindow() *Window {
	return &Window{h: hdrhistogram.New(histMinMicros, histMaxMicros, histDigits)}
}

// Record adds a latency in nanoseconds.
func (w *Window) Record(ns int64) {
	us := min(max(ns/1000, histMinMicros), histMaxMicros)
	w.mu.Lock()
	w.h.RecordValue(us)
	w.mu.Unlock()
}

// take returns p50, p99 and max in ms of what was recorded since the last
// take (-1 for none), and empties the window.
func (w *Window) take() (p50, p99, maxMs float64) {
	if w == nil {
		return -1, -1, -1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h.TotalCount() == 0 {
		return -1, -1, -1
	}
	p50 = float64(w.h.ValueAtPercentile(50)) / 1000
	p99 = float64(w.h.ValueAtPercentile(99)) / 1000
	maxMs = float64(w.h.Max()) / 1000
	w.h.Reset()
	return p50, p99, maxMs
}

// meterEvery is the meter's interval.
const meterEvery = time.Second

// Start samples the meter every second into r.Timeline until the
// returned function is called (which takes a last sample and returns once
// the sampler is done), and writes a status line to env's status writer:
// rewritten in place on a terminal, one line every 5 s otherwise.
func (m *Meter) Start(ctx context.Context, env *Env, r *Report) (stop func()) {
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	start := time.Now()
	if !r.Started.IsZero() {
		start = r.Started
	}
	go m.run(ctx, env, r, start)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(m.stop)
			<-m.done
		})
	}
}

func (m *Meter) run(ctx context.Context, env *Env, r *Report, start time.Time) {
	defer close(m.done)
	load := func(f func() int64) int64 {
		if f == nil {
			return 0
		}
		return f()
	}
	errs := func() int64 { return load(m.Errors) }
	status := env.cfg.Status
	tty := isTerminal(status)
	lastLine := time.Time{}
	prevAt := time.Now()
	prevSent, prevAcked, prevRecv, prevErrs := load(m.Sent), load(m.Acked), load(m.Received), errs()
	prevServer := env.probe.sample(ctx)
	genCPU := func() float64 {
		c := ownCPU().total() // not reaped children: a worker's whole life would land in one second
		if m.WorkerCPU != nil {
			c += m.WorkerCPU()
		}
		return c
	}
	prevGen := genCPU()
	t := time.NewTicker(meterEvery)
	defer t.Stop()
	for last := false; !last; {
		select {
		case <-t.C:
		case <-m.stop:
			last = true
		}
		now := time.Now()
		dt := now.Sub(prevAt).Seconds()
		if dt <= 0 {
			continue
		}
		sent, acked, recv, e := load(m.Sent), load(m.Acked), load(m.Received), errs()
		s := Sample{
			T: now.Sub(start).Seconds(), Conns: load(m.Conns), ConnsTarget: m.ConnsTarget,
			SentPerSec: float64(sent-prevSent) / dt, AckedPerSec: float64(acked-prevAcked) / dt,
			RecvPerSec: float64(recv-prevRecv) / dt, ErrorsPerSec: float64(e-prevErrs) / dt,
			ServerCPUPercent: -1, ServerRSSMB: -1,
		}
		s.E2EP50Ms, s.E2EP99Ms, s.E2EMaxMs = m.E2E.take()
		s.AckP50Ms, s.AckP99Ms, _ = m.Ack.take()
		srv := env.probe.sample(ctx)
		if srv.CPUSeconds >= 0 && prevServer.CPUSeconds >= 0 {
			s.ServerCPUPercent = 100 * (srv.CPUSeconds - prevServer.CPUSeconds) / dt
		}
		if srv.RSSBytes >= 0 {
			s.ServerRSSMB = float64(srv.RSSBytes) / (1 << 20)
		}
		gen := genCPU()
		s.GeneratorCPUPercent = 100 * (gen - prevGen) / dt
		r.Timeline = append(r.Timeline, s)
		prevAt, prevSent, prevAcked, prevRecv, prevErrs, prevServer, prevGen = now, sent, acked, recv, e, srv, gen

		if status != nil && (tty || now.Sub(lastLine) >= 5*time.Second || last) {
			line := m.statusLine(s, m.Sent != nil, m.Errors != nil)
			if tty {
				fmt.Fprintf(status, "\r\x1b[K%s", line)
				if last {
					io.WriteString(status, "\n")
				}
			} else {
				fmt.Fprintln(status, line)
			}
			lastLine = now
		}
	}
}

// statusLine is one line of a run's state: connections up of the target,
// message rates, the interval's latency percentiles, errors.
func (m *Meter) statusLine(s Sample, msgs, errs bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%5.0fs] conns %d", s.T, s.Conns)
	if s.ConnsTarget > 0 {
		fmt.Fprintf(&b, "/%d", s.ConnsTarget)
	}
	if msgs {
		fmt.Fprintf(&b, "  sent %.0f/s  recv %.0f/s", s.SentPerSec, s.RecvPerSec)
		if s.E2EP50Ms >= 0 {
			fmt.Fprintf(&b, "  e2e p50 %.2f p99 %.2f ms", s.E2EP50Ms, s.E2EP99Ms)
		}
	}
	if errs {
		fmt.Fprintf(&b, "  errors %.0f/s", s.ErrorsPerSec)
		if m.ErrorKinds != nil {
			b.WriteString(topKinds(m.ErrorKinds(), 2))
		}
	}
	if s.ServerCPUPercent >= 0 {
		fmt.Fprintf(&b, "  server %.0f%% CPU", s.ServerCPUPercent)
	}
	if s.ServerRSSMB >= 0 {
		fmt.Fprintf(&b, " %.0f MiB", s.ServerRSSMB)
	}
	return b.String()
}

// topKinds formats the n most frequent kinds of counts, as
// " (kind 12, other 3, …)"; "" for none.
func topKinds(counts map[string]int64, n int) string {
	if len(counts) == 0 {
		return ""
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	b.WriteString(" (")
	for i, k := range kinds[:min(n, len(kinds))] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, counts[k])
	}
	if len(kinds) > n {
		b.WriteString(", …")
	}
	b.WriteString(")")
	return b.String()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
