package cluster

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the latency histograms of the request path: a gateway's
// Remote observes requestSeconds, a worker the two others. Together they
// say where a request's time goes: requestSeconds minus the worker's two
// is the time in Kafka (the command's append and the reply's way back).
type Metrics struct {
	requestSeconds prometheus.Histogram
	waitSeconds    prometheus.Histogram
	coreSeconds    prometheus.Histogram
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered). A nil *Metrics observes nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms … 16 s
	m := &Metrics{
		requestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Name: "cluster_request_seconds", Buckets: buckets,
			Help: "Gateway: from a request's append to the command log to its worker's reply (the sent tick's server side). Timed-out requests are not observed.",
		}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Name: "cluster_command_wait_seconds", Buckets: buckets,
			Help: "Worker: from a command's append (its record's timestamp, the gateway's clock) to the sequencer reading it.",
		}),
		coreSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "switchboard", Name: "cluster_command_seconds", Buckets: buckets,
			Help: "Worker: from the sequencer reading a command to its result, its writes durable in the store.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requestSeconds, m.waitSeconds, m.coreSeconds)
	}
	return m
}
