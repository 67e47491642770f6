package chat

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Service's Prometheus collectors.
type Metrics struct {
	messages       prometheus.Counter
	duplicates     prometheus.Counter
	overloaded     prometheus.Counter
	commitSeconds  prometheus.Histogram
	batchRequests  prometheus.Histogram
	warmReads      prometheus.Counter
	warmSeconds    prometheus.Histogram
	forwarded      prometheus.Counter
	forwardDups    prometheus.Counter
	forwardRecords prometheus.Counter
	forwardsFenced prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (nil:
// not registered; they still count, at the cost of an atomic add).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "messages_acked_total",
			Help: "Messages stored durably and acknowledged to their sender (the sent tick).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "messages_duplicate_total",
			Help: "Sends whose client id was already stored: answered with the original msg_id, not stored again.",
		}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "requests_overloaded_total",
			Help: "Requests refused because the commit queue was full.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Name: "store_commit_seconds",
			Help:    "Time to apply one batch durably to the store (fsync included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		batchRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Name: "store_batch_requests",
			Help:    "Requests committed per store batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		warmReads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "store_warm_reads_total",
			Help: "Store reads made in parallel before building a batch, for what its requests would miss in the caches (cold users).",
		}),
		warmSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Name: "store_warm_seconds",
			Help:    "Time to read in parallel what a batch's requests would miss in the caches; observed for batches that had any.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "forwards_applied_total",
			Help: "Forwards (entries another partition's sequencer sent for users this one owns) applied.",
		}),
		forwardRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "forward_records_total",
			Help: "Command-log records a relay appended to other partitions (each holds one or more forwards, more when the relay fell behind).",
		}),
		forwardsFenced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "forwards_fenced_total",
			Help: "Forward records dropped because they came from a deposed sequencer of their source partition (a smaller epoch than its successor's).",
		}),
		forwardDups: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Name: "forwards_duplicate_total",
			Help: "Forwards received again (a relay's resend after a failure or a takeover) and dropped.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.duplicates, m.overloaded, m.commitSeconds, m.batchRequests, m.warmReads, m.warmSeconds,
			m.forwarded, m.forwardDups, m.forwardRecords, m.forwardsFenced)
	}
	return m
}
