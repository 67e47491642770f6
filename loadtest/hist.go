package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms record microseconds from 1 µs to 100 s with 3 significant
// digits (0.1% resolution); a value above the range is recorded as 100 s
// and counted in Latency.Clamped.
const (
	histMinMicros = 1
	histMaxMicros = 100_000_000
	histDigits    = 3
)

// histogram is an HDR histogram of durations. Safe for concurrent use;
// recorders on a hot path keep one per shard (see histShards).
type histogram struct {
	mu      sync.Mutex
	h       *hdrhistogram.Histogram
	clamped int64
}

func newHistogram() *histogram {
	return &histogram{h: hdrhistogram.New(histMinMicros, histMaxMicros, histDigits)}
}

// record adds a duration given in nanoseconds.
func (h *histogram) record(ns int64) {
	us := max(ns/1000, histMinMicros)
	h.mu.Lock()
	if us > histMaxMicros {
		us = histMaxMicros
		h.clamped++
	}
	h.h.RecordValue(us)
	h.mu.Unlock()
}

func (h *histogram) merge(o *histogram) {
	o.mu.Lock()
	c := o.h.Export()
	clamped := o.clamped
	o.mu.Unlock()
	h.mergeSnapshot(c, clamped)
}

func (h *histogram) mergeSnapshot(s *hdrhistogram.Snapshot, clamped int64) {
	if s == nil {
		return
	}
	o := hdrhistogram.Import(s)
	h.mu.Lock()
	h.h.Merge(o)
	h.clamped += clamped
	h.mu.Unlock()
}

func (h *histogram) export() (*hdrhistogram.Snapshot, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.Export(), h.clamped
}

func (h *histogram) count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// histShards spreads recording over several histograms so that readers on
// different goroutines rarely share a lock.
type histShards []*histogram

func newHistShards(n int) histShards {
	s := make(histShards, n)
	for i := range s {
		s[i] = newHistogram()
	}
	return s
}

func (s histShards) record(shard int, ns int64) { s[shard%len(s)].record(ns) }

func (s histShards) merged() *histogram {
	h := newHistogram()
	for _, x := range s {
		h.merge(x)
	}
	return h
}

// reportPercentiles are the percentiles every Latency lists.
var reportPercentiles = []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100}

// Latency summarizes one histogram in milliseconds.
type Latency struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
	// Clamped counts values above 100 s, recorded as 100 s.
	Clamped     int64        `json:"clamped,omitempty"`
	MinMs       float64      `json:"min_ms"`
	MeanMs      float64      `json:"mean_ms"`
	P50Ms       float64      `json:"p50_ms"`
	P90Ms       float64      `json:"p90_ms"`
	P99Ms       float64      `json:"p99_ms"`
	P999Ms      float64      `json:"p99_9_ms"`
	MaxMs       float64      `json:"max_ms"`
	Percentiles []Percentile `json:"percentiles"`
}

// Percentile is one point of a latency distribution.
type Percentile struct {
	P  float64 `json:"p"`
	Ms float64 `json:"ms"`
}

func (h *histogram) latency(name string) Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	l := Latency{Name: name, Count: h.h.TotalCount(), Clamped: h.clamped}
	if l.Count == 0 {
		return l
	}
	l.MinMs, l.MeanMs, l.MaxMs = ms(h.h.Min()), h.h.Mean()/1000, ms(h.h.Max())
	l.P50Ms = ms(h.h.ValueAtPercentile(50))
	l.P90Ms = ms(h.h.ValueAtPercentile(90))
	l.P99Ms = ms(h.h.ValueAtPercentile(99))
	l.P999Ms = ms(h.h.ValueAtPercentile(99.9))
	for _, p := range reportPercentiles {
		l.Percentiles = append(l.Percentiles, Percentile{p, ms(h.h.ValueAtPercentile(p))})
	}
	return l
}

// since returns nanoseconds from base on the monotonic clock.
func since(base time.Time) int64 { return int64(time.Since(base)) }
