package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard/switchboard/protocol"
)

// metrics are the gateway's Prometheus collectors. Label values are bound
// once, here; no user id is ever a label.
type metrics struct {
	open              func() int64
	accepted          prometheus.Counter
	framesIn          prometheus.Counter
	framesOut         prometheus.Counter
	sends             prometheus.Counter
	receipts          prometheus.Counter
	syncs             prometheus.Counter
	handshakeTimeouts prometheus.Counter
	hubFull           prometheus.Counter
	deliveries        prometheus.Counter
	gapFills          prometheus.Counter
	heldBack          prometheus.Counter
	typingDropped     prometheus.Counter
	fenced            prometheus.Counter
	ackSeconds        prometheus.Histogram

	upgradeVec *prometheus.CounterVec
	upgradeBy  map[string]prometheus.Counter
	errorVec   *prometheus.CounterVec
	errorBy    map[string]prometheus.Counter
	closeVec   *prometheus.CounterVec
	closeBy    map[uint16]prometheus.Counter
	closeOther prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "tcp_accepted_total", Help: "TCP connections accepted."}),
		framesIn: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "frames_in_total", Help: "WebSocket frames received."}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "frames_out_total", Help: "WebSocket frames written by deliveries, replies and syncs."}),
		sends: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "send_frames_total", Help: "send frames received."}),
		receipts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "receipt_frames_total", Help: "receipt frames received."}),
		syncs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "sync_frames_total", Help: "sync frames received."}),
		handshakeTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "handshake_timeouts_total", Help: "Connections closed for not completing the upgrade in time."}),
		hubFull: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "hub_queue_full_total", Help: "Hub jobs (registrations, inbox reads) not queued at once because the job queue was full: upgrades are refused with 1013, reads are retried."}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "live_deliveries_total", Help: "Inbox entries (msg, receipt) written live to a connection, without a sync."}),
		gapFills: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "gap_fills_total", Help: "Live deliveries that found a seq gap and read it from the store."}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "fenced_deliveries_total", Help: "Deliveries dropped because a sequencer of a later epoch had delivered to this node: a deposed sequencer's."}),
		typingDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "typing_dropped_total", Help: "Typing frames dropped for coming faster than typing_interval."}),
		heldBack: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "held_back_total", Help: "Times a connection's outbound buffer was full, so inbox entries were left in the store, to be read once it drains."}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "ack_latency_seconds", Help: "From a send frame's arrival to its ack being queued (durable store included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		upgradeVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "upgrades_total", Help: "WebSocket upgrade attempts by result."}, []string{"result"}),
		errorVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "error_frames_total", Help: "Error frames sent, by code."}, []string{"code"}),
		closeVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "gateway",
			Name: "closes_total", Help: "WebSocket close frames sent, by close code."}, []string{"code"}),
	}
	m.upgradeBy = map[string]prometheus.Counter{}
	for _, r := range []string{"ok", "unauthorized", "forbidden", "not_found", "unavailable", "bad_request", "too_large", "other"} {
		m.upgradeBy[r] = m.upgradeVec.WithLabelValues(r)
	}
	m.errorBy = map[string]prometheus.Counter{}
	for _, c := range []string{protocol.CodeBadRequest, protocol.CodeUnknownType, protocol.CodeRateLimited,
		protocol.CodeOverloaded, protocol.CodeInternal, protocol.CodeShuttingDown, protocol.CodeNotFound,
		protocol.CodeNotMember, protocol.CodeNotAdmin, protocol.CodeGroupFull, protocol.CodeTooManyDevices,
		protocol.CodeTooManySubscriptions, "other"} {
		m.errorBy[c] = m.errorVec.WithLabelValues(c)
	}
	m.closeBy = map[uint16]prometheus.Counter{}
	for _, c := range []uint16{0, CloseNormal, CloseGoingAway, CloseProtocolError, CloseUnsupported, CloseInvalidPayload,
		ClosePolicy, CloseTooBig, CloseInternal, CloseRestart, CloseTryAgain, CloseSlowConsumer, CloseIdle, CloseTooManyDevices} {
		m.closeBy[c] = m.closeVec.WithLabelValues(strconv.Itoa(int(c)))
	}
	m.closeOther = m.closeVec.WithLabelValues("other")
	if reg != nil {
		reg.MustRegister(m.accepted, m.framesIn, m.framesOut, m.sends, m.receipts, m.syncs, m.handshakeTimeouts, m.hubFull, m.deliveries, m.gapFills, m.heldBack, m.typingDropped, m.fenced,
			m.ackSeconds, m.upgradeVec, m.errorVec, m.closeVec,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "switchboard", Subsystem: "gateway",
				Name: "connections", Help: "Open WebSocket connections."},
				func() float64 { return float64(m.open()) }))
	}
	return m
}

// The label values below are bound once in newMetrics; a value outside
// them (a bug, or a peer's close code echoed back) counts as "other".

func (m *metrics) upgrades(result string) prometheus.Counter {
	if c, ok := m.upgradeBy[result]; ok {
		return c
	}
	return m.upgradeBy["other"]
}

func (m *metrics) errorFrames(code string) prometheus.Counter {
	if c, ok := m.errorBy[code]; ok {
		return c
	}
	return m.errorBy["other"]
}

func (m *metrics) closes(code uint16) prometheus.Counter {
	if c, ok := m.closeBy[code]; ok {
		return c
	}
	return m.closeOther
}
