package loadtest

import (
	"encoding/json"
	"testing"
)

// TestMergeLatencies: summaries merged through their histograms give the
// percentiles of all the values together, also after a JSON round trip.
func TestMergeLatencies(t *testing.T) {
	a, b, all := newHistogram(), newHistogram(), newHistogram()
	for i := int64(1); i <= 1000; i++ {
		a.record(i * 1000 * 1000) // 1..1000 ms
		all.record(i * 1000 * 1000)
	}
	for i := int64(1); i <= 9000; i++ {
		b.record(2_000_000_000 + i*1000) // ~2 s each
		all.record(2_000_000_000 + i*1000)
	}
	var la, lb Latency
	for _, x := range []struct {
		h   *histogram
		out *Latency
	}{{a, &la}, {b, &lb}} {
		j, err := json.Marshal(x.h.latency("e2e"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, x.out); err != nil {
			t.Fatal(err)
		}
	}
	m, err := MergeLatencies("e2e", la, lb)
	if err != nil {
		t.Fatal(err)
	}
	want := all.latency("e2e")
	if m.Count != 10000 || m.P50Ms != want.P50Ms || m.P99Ms != want.P99Ms || m.P999Ms != want.P999Ms || m.MaxMs != want.MaxMs {
		t.Fatalf("merged %+v\nwant   %+v", m, want)
	}
	// The average of the two p50s (500 ms, 2 s) is not the merged p50.
	if m.P50Ms < 1900 {
		t.Fatalf("merged p50 %v ms", m.P50Ms)
	}
	if _, err := MergeLatencies("x", Latency{Name: "x", Count: 1}); err == nil {
		t.Fatal("a summary without a histogram merged")
	}
}

func TestTopKinds(t *testing.T) {
	if got := topKinds(nil, 2); got != "" {
		t.Errorf("none: %q", got)
	}
	got := topKinds(map[string]int64{"hold: close 4001": 5, "dial: timeout": 9, "upgrade: http 401": 5}, 2)
	if got != " (dial: timeout 9, hold: close 4001 5, …)" {
		t.Errorf("top kinds: %q", got)
	}
}
