package plan

import (
	"fmt"
	"math"
)

// Plan is the outcome of Compute: the inputs with the reason for each,
// the peak load they imply, and for each tier the count needed with every
// step that led to it. It is plain data: JSON marshals it whole and
// unmarshals it back to an equal Plan.
type Plan struct {
	// Label names the plan in a comparison ("design", "measured").
	Label  string  `json:"label,omitempty"`
	Inputs []Input `json:"inputs"`
	// Load is the peak load every tier is sized for.
	Load  []Step `json:"load"`
	Tiers []Tier `json:"tiers"`
	// Warnings are what a reader must not miss: extrapolations, figures
	// taken as given.
	Warnings []string `json:"warnings,omitempty"`
}

// Input is one input as the plan used it.
type Input struct {
	Key   string  `json:"key"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	Basis string  `json:"basis"`
}

// Tier is one kind of machine or resource to provision.
type Tier struct {
	Name string `json:"name"`
	// Count is what to provision, in Unit; it is the value of the last
	// step.
	Count float64 `json:"count"`
	Unit  string  `json:"unit"`
	Steps []Step  `json:"steps"`
}

// Step is one derived quantity: Key = Formula = Value. A formula names
// inputs and earlier steps by their keys; ⌈x⌉ rounds up to a whole count
// and ⌊x⌋ down.
type Step struct {
	Key     string  `json:"key"`
	Formula string  `json:"formula"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit,omitempty"`
	// Note explains a choice in the formula.
	Note string `json:"note,omitempty"`
}

// Value returns the value of the step named key, in the load or any tier.
func (p *Plan) Value(key string) (float64, bool) {
	for _, s := range p.Load {
		if s.Key == key {
			return s.Value, true
		}
	}
	for _, t := range p.Tiers {
		for _, s := range t.Steps {
			if s.Key == key {
				return s.Value, true
			}
		}
	}
	return 0, false
}

// Tier returns the tier named name.
func (p *Plan) Tier(name string) (Tier, bool) {
	for _, t := range p.Tiers {
		if t.Name == name {
			return t, true
		}
	}
	return Tier{}, false
}

// Tier names, in the order Compute lists them.
const (
	TierGateways        = "gateways"
	TierWorkers         = "workers"
	TierKafkaPartitions = "kafka partitions"
	TierKafkaBrokers    = "kafka brokers"
	TierCassandra       = "cassandra nodes"
	TierMedia           = "object storage (media)"
	TierRedis           = "redis nodes"
	TierNetwork         = "network at the peak"
)

// Units of scale used in formulas.
const (
	secondsPerDay = 86_400
	kibPerGiB     = 1 << 20
	bytesPerGiB   = 1 << 30
	bytesPerKiB   = 1 << 10
)

// steps records derived quantities in order.
type steps []Step

func (ss *steps) add(key, formula string, v float64, unit string) float64 {
	*ss = append(*ss, Step{Key: key, Formula: formula, Value: v, Unit: unit})
	return v
}

// note sets the note of the last step added.
func (ss steps) note(s string) { ss[len(ss)-1].Note = s }

// count rounds a number of machines up. A quotient that float arithmetic
// left a hair above a whole number (1,600.0000000000002) is that number.
func count(x float64) float64 {
	r := math.Round(x)
	if math.Abs(x-r) <= 1e-9*math.Max(1, math.Abs(x)) {
		return r
	}
	return math.Ceil(x)
}

// Compute validates in and derives the plan. It is a pure function of in,
// safe to call from any goroutine.
func Compute(in Inputs) (*Plan, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{}
	for _, f := range fields {
		v := *f.get(&in)
		basis := in.Basis[f.Key]
		switch {
		case basis != "":
		case v == f.Default:
			basis = f.Basis
		default:
			basis = "given"
		}
		p.Inputs = append(p.Inputs, Input{Key: f.Key, Value: v, Unit: f.Unit, Basis: basis})
	}

	// Peak load.
	var load steps
	peakConns := load.add("peak_conns", "dau × online_share", in.DAU*in.OnlineShare, "conns")
	avgMsgs := load.add("avg_msgs_per_s", "dau × msgs_per_user ÷ 86,400", in.DAU*in.MsgsPerUser/secondsPerDay, "msg/s")
	peakMsgs := load.add("peak_msgs_per_s", "avg_msgs_per_s × peak_factor", avgMsgs*in.PeakFactor, "msg/s")
	peakDeliveries := load.add("peak_deliveries_per_s", "peak_msgs_per_s × deliveries_per_msg", peakMsgs*in.DeliveriesPerMsg, "deliveries/s")
	reconnects := load.add("reconnects_per_s", "peak_conns ÷ reconnect_seconds", peakConns/in.ReconnectSeconds, "upgrades/s")
	p.Load = load

	// Gateways: connections per box bounded by memory and by CPU (the
	// messages its connections carry), or given; then the reconnect storm.
	var gw steps
	memPerConn := gw.add("mem_per_conn_kib", "rss_per_conn_kib + kernel_per_conn_kib", in.RSSPerConnKiB+in.KernelPerConnKiB, "KiB")
	byMemory := gw.add("conns_per_box_by_memory", "⌊box_memory_gib × 1,048,576 × memory_usable ÷ mem_per_conn_kib⌋",
		math.Floor(in.BoxMemoryGiB*kibPerGiB*in.MemoryUsable/memPerConn), "conns")
	delivPerConn := gw.add("deliveries_per_conn_per_s", "peak_deliveries_per_s ÷ peak_conns", peakDeliveries/peakConns, "deliveries/s")
	perConn := gw.add("load_per_conn_per_s", "deliveries_per_conn_per_s + 1 ÷ ping_seconds", delivPerConn+1/in.PingSeconds, "msg/s")
	gw.note("a ping and its pong counted as a whole message: conservative")
	byCPU := gw.add("conns_per_box_by_cpu", "⌊box_cores × msgs_per_core × utilization ÷ load_per_conn_per_s⌋",
		math.Floor(in.BoxCores*in.MsgsPerCore*in.Utilization/perConn), "conns")
	gw.note("the measured rate includes the store's work, which the distributed design moves to workers: conservative")
	var perBox float64
	if in.ConnsPerBox > 0 {
		perBox = gw.add("conns_per_box_planned", "conns_per_box", in.ConnsPerBox, "conns")
		gw.note("given")
		p.Warnings = append(p.Warnings, fmt.Sprintf("gateways: %s connections per box taken as given, not derived from memory or CPU", formatNumber(in.ConnsPerBox)))
	} else {
		perBox = gw.add("conns_per_box_planned", "min(conns_per_box_by_memory, conns_per_box_by_cpu)", math.Min(byMemory, byCPU), "conns")
		if perBox > in.TestedConns {
			p.Warnings = append(p.Warnings, fmt.Sprintf("gateways: %s connections per box is %.0f× the %s the per-connection memory was measured at; extrapolated, not tested",
				formatNumber(perBox), perBox/in.TestedConns, formatNumber(in.TestedConns)))
		}
	}
	if perBox < 1 {
		return nil, fmt.Errorf("plan: %w: a gateway box holds no connection: %s by memory, %s by CPU",
			ErrInvalidInput, formatNumber(byMemory), formatNumber(byCPU))
	}
	byConns := gw.add("gateways_by_conns", "⌈peak_conns ÷ conns_per_box_planned⌉", count(peakConns/perBox), "boxes")
	byStorm := gw.add("gateways_by_reconnects", "⌈reconnects_per_s ÷ (box_cores × upgrades_per_core × utilization)⌉",
		count(reconnects/(in.BoxCores*in.UpgradesPerCore*in.Utilization)), "boxes")
	gateways := gw.add("gateways", "max(gateways_by_conns, gateways_by_reconnects, 2)", max(byConns, byStorm, 2), "boxes")
	gw.note("two at least, for redundancy")
	perGateway := gw.add("conns_per_gateway", "peak_conns ÷ gateways", peakConns/gateways, "conns")
	gw.add("gateway_conn_memory_gib", "conns_per_gateway × mem_per_conn_kib ÷ 1,048,576", perGateway*memPerConn/kibPerGiB, "GiB")
	p.addTier(TierGateways, "boxes", gw, "gateways")

	// Workers consume the messages topic, write Cassandra, publish deliveries.
	var wk steps
	workerCores := wk.add("worker_cores", "peak_deliveries_per_s ÷ (worker_msgs_per_core × utilization)", peakDeliveries/(in.WorkerMsgsPerCore*in.Utilization), "cores")
	workers := wk.add("workers", "max(⌈worker_cores ÷ box_cores⌉, 2)", max(count(workerCores/in.BoxCores), 2), "boxes")
	wk.note("two at least, for redundancy")
	p.addTier(TierWorkers, "boxes", wk, "workers")

	// Kafka: a messages topic (gateways → workers) and a deliveries topic
	// (workers → the recipient's gateway, a partition per gateway at least).
	var kp steps
	record := kp.add("record_bytes", "msg_bytes + envelope_bytes", in.MsgBytes+in.EnvelopeBytes, "B")
	msgsMBps := kp.add("messages_topic_mbps", "peak_msgs_per_s × record_bytes ÷ 10^6", peakMsgs*record/1e6, "MB/s")
	delivMBps := kp.add("deliveries_topic_mbps", "peak_deliveries_per_s × record_bytes ÷ 10^6", peakDeliveries*record/1e6, "MB/s")
	perPartition := in.KafkaPartitionMBps * in.Utilization
	msgParts := kp.add("messages_partitions", "max(⌈messages_topic_mbps ÷ (kafka_partition_mbps × utilization)⌉, workers × box_cores)",
		max(count(msgsMBps/perPartition), workers*in.BoxCores), "partitions")
	kp.note("a consumer per worker core")
	delivParts := kp.add("deliveries_partitions", "max(⌈deliveries_topic_mbps ÷ (kafka_partition_mbps × utilization)⌉, gateways)",
		max(count(delivMBps/perPartition), gateways), "partitions")
	kp.note("each gateway consumes its own partition of deliveries, as issue #6 lays out")
	partitions := kp.add("kafka_partitions", "messages_partitions + deliveries_partitions", msgParts+delivParts, "partitions")
	p.addTier(TierKafkaPartitions, "partitions", kp, "kafka_partitions")

	var kb steps
	writeMBps := kb.add("kafka_write_mbps", "(messages_topic_mbps + deliveries_topic_mbps) × kafka_replication", (msgsMBps+delivMBps)*in.KafkaReplication, "MB/s")
	storedTB := kb.add("kafka_stored_tb", "avg_msgs_per_s × (1 + deliveries_per_msg) × record_bytes × 3,600 × kafka_retention_hours × kafka_replication ÷ 10^12",
		avgMsgs*(1+in.DeliveriesPerMsg)*record*3600*in.KafkaRetentionHours*in.KafkaReplication/1e12, "TB")
	byThroughput := kb.add("brokers_by_throughput", "⌈kafka_write_mbps ÷ (kafka_broker_mbps × utilization)⌉", count(writeMBps/(in.KafkaBrokerMBps*in.Utilization)), "brokers")
	byParts := kb.add("brokers_by_partitions", "⌈kafka_partitions × kafka_replication ÷ kafka_partitions_per_broker⌉", count(partitions*in.KafkaReplication/in.KafkaPartitionsPerBroker), "brokers")
	byDisk := kb.add("brokers_by_disk", "⌈kafka_stored_tb ÷ (kafka_disk_tb × utilization)⌉", count(storedTB/(in.KafkaDiskTB*in.Utilization)), "brokers")
	kb.add("kafka_brokers", "max(brokers_by_throughput, brokers_by_partitions, brokers_by_disk, kafka_replication)",
		max(byThroughput, byParts, byDisk, in.KafkaReplication), "brokers")
	p.addTier(TierKafkaBrokers, "brokers", kb, "kafka_brokers")

	// Cassandra: each message stored once, plus an entry in each
	// recipient's inbox and in the sender's (for their other devices).
	var cs steps
	entries := cs.add("inbox_entries_per_msg", "deliveries_per_msg + 1", in.DeliveriesPerMsg+1, "entries")
	cs.note("one per recipient, and one in the sender's inbox for their other devices")
	logical := cs.add("cassandra_bytes_per_msg", "record_bytes + inbox_entries_per_msg × inbox_entry_bytes", record+entries*in.InboxEntryBytes, "B")
	perDay := cs.add("cassandra_tb_per_day", "dau × msgs_per_user × cassandra_bytes_per_msg × cassandra_overhead ÷ 10^12",
		in.DAU*in.MsgsPerUser*logical*in.CassandraOverhead/1e12, "TB/day")
	cs.note("one replica")
	perDayRF := cs.add("cassandra_tb_per_day_replicated", "cassandra_tb_per_day × cassandra_replication", perDay*in.CassandraReplication, "TB/day")
	retained := cs.add("cassandra_tb_retained", "cassandra_tb_per_day_replicated × retention_days", perDayRF*in.RetentionDays, "TB")
	nodesDisk := cs.add("cassandra_nodes_by_disk", "⌈cassandra_tb_retained ÷ (cassandra_disk_tb × cassandra_disk_usable)⌉", count(retained/(in.CassandraDiskTB*in.CassandraDiskUsable)), "nodes")
	replicaWrites := cs.add("replica_writes_per_s", "peak_msgs_per_s × (1 + inbox_entries_per_msg) × cassandra_replication", peakMsgs*(1+entries)*in.CassandraReplication, "writes/s")
	cs.note("a message row and its inbox entries, on every replica")
	nodesWrites := cs.add("cassandra_nodes_by_writes", "⌈replica_writes_per_s ÷ (cassandra_writes_per_node × utilization)⌉", count(replicaWrites/(in.CassandraWritesPerNode*in.Utilization)), "nodes")
	cs.add("cassandra_nodes", "max(cassandra_nodes_by_disk, cassandra_nodes_by_writes, cassandra_replication)", max(nodesDisk, nodesWrites, in.CassandraReplication), "nodes")
	p.addTier(TierCassandra, "nodes", cs, "cassandra_nodes")

	// Object storage for files.
	var md steps
	files := md.add("files_per_day", "dau × msgs_per_user × media_share", in.DAU*in.MsgsPerUser*in.MediaShare, "files/day")
	mediaDay := md.add("media_tb_per_day", "files_per_day × media_kib × 1,024 ÷ 10^12", files*in.MediaKiB*bytesPerKiB/1e12, "TB/day")
	md.add("media_tb_retained", "media_tb_per_day × media_retention_days", mediaDay*in.MediaRetentionDays, "TB")
	p.addTier(TierMedia, "TB", md, "media_tb_retained")

	// Redis: routes and presence.
	var rd steps
	routes := rd.add("routes_gib", "peak_conns × route_bytes ÷ 2^30", peakConns*in.RouteBytes/bytesPerGiB, "GiB")
	presence := rd.add("presence_gib", "dau × presence_bytes ÷ 2^30", in.DAU*in.PresenceBytes/bytesPerGiB, "GiB")
	redisGiB := rd.add("redis_gib", "routes_gib + presence_gib", routes+presence, "GiB")
	ops := rd.add("redis_ops_per_s", "peak_conns ÷ route_refresh_seconds + peak_deliveries_per_s + reconnects_per_s",
		peakConns/in.RouteRefreshSeconds+peakDeliveries+reconnects, "ops/s")
	rd.note("route refreshes, a lookup per delivery as if the gateways' local cache missed, a registration per reconnect")
	shardsMem := rd.add("shards_by_memory", "⌈redis_gib ÷ redis_shard_gib⌉", count(redisGiB/in.RedisShardGiB), "shards")
	shardsOps := rd.add("shards_by_ops", "⌈redis_ops_per_s ÷ (redis_ops_per_shard × utilization)⌉", count(ops/(in.RedisOpsPerShard*in.Utilization)), "shards")
	shards := rd.add("redis_shards", "max(shards_by_memory, shards_by_ops, 1)", max(shardsMem, shardsOps, 1), "shards")
	rd.add("redis_nodes", "redis_shards × (1 + redis_replicas)", shards*(1+in.RedisReplicas), "nodes")
	p.addTier(TierRedis, "nodes", rd, "redis_nodes")

	// Network: client links of the gateways, files, and the back end.
	var nw steps
	msgFrame := nw.add("msg_frame_bytes", "msg_bytes + envelope_bytes + wire_bytes", in.MsgBytes+in.EnvelopeBytes+in.WireBytes, "B")
	small := nw.add("small_frame_bytes", "envelope_bytes + wire_bytes", in.EnvelopeBytes+in.WireBytes, "B")
	keepalive := nw.add("keepalive_gbps", "peak_conns ÷ ping_seconds × wire_bytes × 8 ÷ 10^9", peakConns/in.PingSeconds*in.WireBytes*8/1e9, "Gbit/s")
	nw.note("each way: a ping in one, its pong in the other")
	clientIn := nw.add("client_in_gbps", "peak_msgs_per_s × (msg_frame_bytes + 2 × deliveries_per_msg × small_frame_bytes) × 8 ÷ 10^9 + keepalive_gbps",
		peakMsgs*(msgFrame+2*in.DeliveriesPerMsg*small)*8/1e9+keepalive, "Gbit/s")
	nw.note("a message in; per delivery, its two receipts, delivered and read, in from the recipient")
	clientOut := nw.add("client_out_gbps", "peak_msgs_per_s × (small_frame_bytes + deliveries_per_msg × (msg_frame_bytes + 2 × small_frame_bytes)) × 8 ÷ 10^9 + keepalive_gbps",
		peakMsgs*(small+in.DeliveriesPerMsg*(msgFrame+2*small))*8/1e9+keepalive, "Gbit/s")
	nw.note("an ack; per delivery, the message out and its two receipts out to the sender")
	nw.add("gateway_out_mbps", "client_out_gbps × 1,000 ÷ gateways", clientOut*1000/gateways, "Mbit/s")
	mediaIn := nw.add("media_in_gbps", "peak_msgs_per_s × media_share × media_kib × 1,024 × 8 ÷ 10^9", peakMsgs*in.MediaShare*in.MediaKiB*bytesPerKiB*8/1e9, "Gbit/s")
	mediaOut := nw.add("media_out_gbps", "media_in_gbps × deliveries_per_msg", mediaIn*in.DeliveriesPerMsg, "Gbit/s")
	nw.add("internal_gbps", "((kafka_write_mbps + messages_topic_mbps + deliveries_topic_mbps) × 8 ÷ 1,000) + peak_msgs_per_s × cassandra_bytes_per_msg × cassandra_replication × 8 ÷ 10^9",
		(writeMBps+msgsMBps+delivMBps)*8/1000+peakMsgs*logical*in.CassandraReplication*8/1e9, "Gbit/s")
	nw.add("edge_gbps", "client_in_gbps + client_out_gbps + media_in_gbps + media_out_gbps", clientIn+clientOut+mediaIn+mediaOut, "Gbit/s")
	p.addTier(TierNetwork, "Gbit/s", nw, "edge_gbps")
	return p, nil
}

// addTier appends a tier whose count is the value of its step named last.
func (p *Plan) addTier(name, unit string, ss steps, last string) {
	t := Tier{Name: name, Unit: unit, Steps: ss}
	for _, s := range ss {
		if s.Key == last {
			t.Count = s.Value
		}
	}
	p.Tiers = append(p.Tiers, t)
}
