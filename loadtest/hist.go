package loadtest

import (
	"fmt"
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
	// HDR is the whole histogram, so that runs (or processes) can be merged
	// exactly rather than by averaging percentiles.
	HDR *HDR `json:"hdr,omitempty"`
}

// HDR is an HDR histogram of microseconds in a compact form: its range
// and precision, and the (bucket index, count) pairs of its non-empty
// buckets.
type HDR struct {
	LowestMicros  int64      `json:"lowest_us"`
	HighestMicros int64      `json:"highest_us"`
	Digits        int64      `json:"digits"`
	Counts        [][2]int64 `json:"counts"`
}

func hdrOf(s *hdrhistogram.Snapshot) *HDR {
	h := &HDR{LowestMicros: s.LowestTrackableValue, HighestMicros: s.HighestTrackableValue, Digits: s.SignificantFigures}
	for i, c := range s.Counts {
		if c != 0 {
			h.Counts = append(h.Counts, [2]int64{int64(i), c})
		}
	}
	return h
}

// snapshot rebuilds the histogram's snapshot.
func (h *HDR) snapshot() (*hdrhistogram.Snapshot, error) {
	n := len(hdrhistogram.New(h.LowestMicros, h.HighestMicros, int(h.Digits)).Export().Counts)
	s := &hdrhistogram.Snapshot{LowestTrackableValue: h.LowestMicros, HighestTrackableValue: h.HighestMicros,
		SignificantFigures: h.Digits, Counts: make([]int64, n)}
	for _, ic := range h.Counts {
		if ic[0] < 0 || ic[0] >= int64(n) || ic[1] < 0 {
			return nil, fmt.Errorf("loadtest: histogram bucket %d of %d", ic[0], n)
		}
		s.Counts[ic[0]] = ic[1]
	}
	return s, nil
}

// MergeLatencies merges latency summaries of the same measure (from
// several processes or runs) exactly, through their histograms. Every
// summary must carry one.
func MergeLatencies(name string, ls ...Latency) (Latency, error) {
	h := newHistogram()
	for _, l := range ls {
		if l.Count == 0 {
			continue
		}
		if l.HDR == nil {
			return Latency{}, fmt.Errorf("loadtest: %s has no histogram to merge", l.Name)
		}
		s, err := l.HDR.snapshot()
		if err != nil {
			return Latency{}, err
		}
		h.mergeSnapshot(s, l.Clamped)
	}
	return h.latency(name), nil
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
	l.HDR = hdrOf(h.h.Export())
	return l
}

// since returns nanoseconds from base on the monotonic clock.
func since(base time.Time) int64 { return int64(time.Since(base)) }
