package plan

import (
	"errors"
	"fmt"
	"maps"
	"math"
)

// ErrInvalidInput is wrapped by every error Validate returns.
var ErrInvalidInput = errors.New("invalid input")

// DesignConnsPerBox is the design's assumption for one gateway box: 60,000
// WebSocket connections. With every one of 100 million daily users online
// at once it gives 1,667 boxes, the design's "about 1,600".
const DesignConnsPerBox = 60_000

// Inputs are everything a plan is computed from. Each field is one key of
// the input file (YAML or JSON) and one flag of `switchboard plan` (the key
// with "-" for "_"); Fields describes each with its unit, default and the
// reason for the default. Start from Defaults: a zero is a real value for
// several inputs (no media, no replicas), so the zero value of Inputs is not
// a usable plan.
//
// All values are float64 so that one table can describe, set and print
// them; counts that must be whole (replication factors, replicas) are
// checked by Validate.
type Inputs struct {
	// Workload.
	DAU                float64 `yaml:"dau" json:"dau"`
	OnlineShare        float64 `yaml:"online_share" json:"online_share"`
	MsgsPerUser        float64 `yaml:"msgs_per_user" json:"msgs_per_user"`
	MsgBytes           float64 `yaml:"msg_bytes" json:"msg_bytes"`
	PeakFactor         float64 `yaml:"peak_factor" json:"peak_factor"`
	DeliveriesPerMsg   float64 `yaml:"deliveries_per_msg" json:"deliveries_per_msg"`
	MediaShare         float64 `yaml:"media_share" json:"media_share"`
	MediaKiB           float64 `yaml:"media_kib" json:"media_kib"`
	RetentionDays      float64 `yaml:"retention_days" json:"retention_days"`
	MediaRetentionDays float64 `yaml:"media_retention_days" json:"media_retention_days"`

	// Gateway boxes (the measured figures).
	ConnsPerBox      float64 `yaml:"conns_per_box" json:"conns_per_box"`
	BoxCores         float64 `yaml:"box_cores" json:"box_cores"`
	BoxMemoryGiB     float64 `yaml:"box_memory_gib" json:"box_memory_gib"`
	MemoryUsable     float64 `yaml:"memory_usable" json:"memory_usable"`
	RSSPerConnKiB    float64 `yaml:"rss_per_conn_kib" json:"rss_per_conn_kib"`
	KernelPerConnKiB float64 `yaml:"kernel_per_conn_kib" json:"kernel_per_conn_kib"`
	TestedConns      float64 `yaml:"tested_conns" json:"tested_conns"`
	MsgsPerCore      float64 `yaml:"msgs_per_core" json:"msgs_per_core"`
	UpgradesPerCore  float64 `yaml:"upgrades_per_core" json:"upgrades_per_core"`
	ReconnectSeconds float64 `yaml:"reconnect_seconds" json:"reconnect_seconds"`
	PingSeconds      float64 `yaml:"ping_seconds" json:"ping_seconds"`
	Utilization      float64 `yaml:"utilization" json:"utilization"`

	// Workers.
	WorkerMsgsPerCore float64 `yaml:"worker_msgs_per_core" json:"worker_msgs_per_core"`

	// Bytes on the wire and in records.
	EnvelopeBytes float64 `yaml:"envelope_bytes" json:"envelope_bytes"`
	WireBytes     float64 `yaml:"wire_bytes" json:"wire_bytes"`

	// Kafka.
	KafkaReplication         float64 `yaml:"kafka_replication" json:"kafka_replication"`
	KafkaPartitionMBps       float64 `yaml:"kafka_partition_mbps" json:"kafka_partition_mbps"`
	KafkaBrokerMBps          float64 `yaml:"kafka_broker_mbps" json:"kafka_broker_mbps"`
	KafkaPartitionsPerBroker float64 `yaml:"kafka_partitions_per_broker" json:"kafka_partitions_per_broker"`
	KafkaRetentionHours      float64 `yaml:"kafka_retention_hours" json:"kafka_retention_hours"`
	KafkaDiskTB              float64 `yaml:"kafka_disk_tb" json:"kafka_disk_tb"`

	// Cassandra.
	CassandraReplication   float64 `yaml:"cassandra_replication" json:"cassandra_replication"`
	CassandraWritesPerNode float64 `yaml:"cassandra_writes_per_node" json:"cassandra_writes_per_node"`
	CassandraDiskTB        float64 `yaml:"cassandra_disk_tb" json:"cassandra_disk_tb"`
	CassandraDiskUsable    float64 `yaml:"cassandra_disk_usable" json:"cassandra_disk_usable"`
	CassandraOverhead      float64 `yaml:"cassandra_overhead" json:"cassandra_overhead"`
	InboxEntryBytes        float64 `yaml:"inbox_entry_bytes" json:"inbox_entry_bytes"`

	// Redis.
	RouteBytes          float64 `yaml:"route_bytes" json:"route_bytes"`
	PresenceBytes       float64 `yaml:"presence_bytes" json:"presence_bytes"`
	RouteRefreshSeconds float64 `yaml:"route_refresh_seconds" json:"route_refresh_seconds"`
	RedisShardGiB       float64 `yaml:"redis_shard_gib" json:"redis_shard_gib"`
	RedisOpsPerShard    float64 `yaml:"redis_ops_per_shard" json:"redis_ops_per_shard"`
	RedisReplicas       float64 `yaml:"redis_replicas" json:"redis_replicas"`

	// Basis overrides the reason printed for an input, by key: ReadLoadtest
	// fills it with the report a value came from. A key without one gets
	// its Field's Basis while the value is the default, else "given".
	Basis map[string]string `yaml:"-" json:"-"`
}

// Field describes one input.
type Field struct {
	Key     string  // file and JSON key; the flag is the key with "-" for "_"
	Unit    string  // printed after the value
	Default float64 // the value in Defaults
	Help    string  // what it is, for --help
	// Basis says where the default comes from. It starts with "measured:"
	// (docs/benchmarks.md or this machine), "assumed:" (a public figure or
	// a guess, with its source), "design:" (the design's estimate) or
	// "setting:" (a server default).
	Basis string

	get   func(*Inputs) *float64
	check func(float64) string // "" or what a valid value is
}

var fields = []Field{
	// Workload.
	{Key: "dau", Unit: "users", Default: 100_000_000, get: func(in *Inputs) *float64 { return &in.DAU }, check: positive,
		Help:  "daily active users",
		Basis: "design: the design's 100 million daily active users"},
	{Key: "online_share", Unit: "conns/DAU", Default: 1, get: func(in *Inputs) *float64 { return &in.OnlineShare }, check: positive,
		Help:  "connections open at the peak per daily active user (share online × devices each)",
		Basis: "design: implied by its estimate, 100M DAU ÷ 60,000 sockets per box = 1,667 (\"about 1,600\") boxes only if every daily user is connected at once; an upper bound: measure yours"},
	{Key: "msgs_per_user", Unit: "msg/day", Default: 50, get: func(in *Inputs) *float64 { return &in.MsgsPerUser }, check: positive,
		Help:  "messages each daily active user sends per day",
		Basis: "assumed: WhatsApp's public figure of about 100 billion messages a day over about 2 billion users"},
	{Key: "msg_bytes", Unit: "B", Default: 100, get: func(in *Inputs) *float64 { return &in.MsgBytes }, check: nonNegative,
		Help:  "average message body",
		Basis: "assumed: a short text; the load tests send 100-byte bodies"},
	{Key: "peak_factor", Unit: "×", Default: 2, get: func(in *Inputs) *float64 { return &in.PeakFactor }, check: atLeast(1),
		Help:  "message rate in the peak hour ÷ the day's average rate",
		Basis: "assumed: the peak hour carries twice the average rate"},
	{Key: "deliveries_per_msg", Unit: "", Default: 1, get: func(in *Inputs) *float64 { return &in.DeliveriesPerMsg }, check: atLeast(1),
		Help:  "recipients per message (1 for one-to-one chats; a group message has one per member)",
		Basis: "assumed: one-to-one chats only"},
	{Key: "media_share", Unit: "", Default: 0.1, get: func(in *Inputs) *float64 { return &in.MediaShare }, check: share,
		Help:  "fraction of messages that carry a file (photo, video, voice note, document)",
		Basis: "assumed: one message in ten"},
	{Key: "media_kib", Unit: "KiB", Default: 300, get: func(in *Inputs) *float64 { return &in.MediaKiB }, check: nonNegative,
		Help:  "average size of a file sent in a message",
		Basis: "assumed: a compressed photo; videos are larger, voice notes smaller"},
	{Key: "retention_days", Unit: "days", Default: 30, get: func(in *Inputs) *float64 { return &in.RetentionDays }, check: positive,
		Help:  "how long messages are kept",
		Basis: "setting: chat.retention's default, 720h (the store deletes what is older)"},
	{Key: "media_retention_days", Unit: "days", Default: 30, get: func(in *Inputs) *float64 { return &in.MediaRetentionDays }, check: nonNegative,
		Help:  "how long files are kept",
		Basis: "assumed: as long as messages (the server's own default, assets.retention 0, keeps files until deleted)"},

	// Gateway boxes.
	{Key: "conns_per_box", Unit: "conns", Default: 0, get: func(in *Inputs) *float64 { return &in.ConnsPerBox }, check: nonNegative,
		Help:  "connections one gateway box holds at the peak, taken as given (the design's is 60,000); 0: derived from memory and CPU",
		Basis: "derived from the measured figures below (the design's 60,000 is the --compare column)"},
	{Key: "box_cores", Unit: "cores", Default: 2, get: func(in *Inputs) *float64 { return &in.BoxCores }, check: positive,
		Help:  "cores of a gateway or worker box",
		Basis: "measured on: the 2-vCPU, 24 GiB machine of docs/benchmarks.md, so its figures apply without scaling"},
	{Key: "box_memory_gib", Unit: "GiB", Default: 24, get: func(in *Inputs) *float64 { return &in.BoxMemoryGiB }, check: positive,
		Help:  "memory of a gateway box",
		Basis: "measured on: the 2-vCPU, 24 GiB machine of docs/benchmarks.md"},
	{Key: "memory_usable", Unit: "", Default: 0.5, get: func(in *Inputs) *float64 { return &in.MemoryUsable }, check: fraction,
		Help:  "share of a gateway box's memory planned for connections",
		Basis: "assumed: the other half for the Go heap's growth under load, socket buffers that hold data, the OS"},
	{Key: "rss_per_conn_kib", Unit: "KiB", Default: 1.86, get: func(in *Inputs) *float64 { return &in.RSSPerConnKiB }, check: nonNegative,
		Help:  "gateway RSS per idle authenticated connection",
		Basis: "measured: 1.86 KiB at 499,129 connections over 32 gateway processes (docs/benchmarks.md, issue #5; 1.279 KiB at 15,000 in one process)"},
	{Key: "kernel_per_conn_kib", Unit: "KiB", Default: 3.8, get: func(in *Inputs) *float64 { return &in.KernelPerConnKiB }, check: nonNegative,
		Help:  "kernel memory per idle TCP socket (socket structures; buffers empty)",
		Basis: "measured: the slab objects of an idle socket (TCP 2,368 B, inode 832 B, file, dentry, epoll item), about 3.8 KiB on this machine kind (issue #5; tuning)"},
	{Key: "tested_conns", Unit: "conns", Default: 499_129, get: func(in *Inputs) *float64 { return &in.TestedConns }, check: positive,
		Help:  "most connections the per-connection memory was measured at; a plan above it per box is flagged as extrapolated",
		Basis: "measured: the idle run's 499,129 connections on one box (docs/benchmarks.md, issue #5)"},
	{Key: "msgs_per_core", Unit: "msg/s", Default: 60_000, get: func(in *Inputs) *float64 { return &in.MsgsPerCore }, check: positive,
		Help:  "messages one core carries per second, received, stored and delivered",
		Basis: "measured: 90,130 durable msg/s with 1.5 server CPUs on one box doing gateway, committer and store (docs/benchmarks.md)"},
	{Key: "upgrades_per_core", Unit: "upgrades/s", Default: 22_000, get: func(in *Inputs) *float64 { return &in.UpgradesPerCore }, check: positive,
		Help:  "authenticated WebSocket upgrades one core performs per second",
		Basis: "measured: 16,299 upgrades/s with 0.74 server CPU (docs/benchmarks.md, connect)"},
	{Key: "reconnect_seconds", Unit: "s", Default: 120, get: func(in *Inputs) *float64 { return &in.ReconnectSeconds }, check: positive,
		Help:  "time in which every connection of the peak must be able to come back after a fleet-wide outage",
		Basis: "assumed: two minutes (clients back off with jitter)"},
	{Key: "ping_seconds", Unit: "s", Default: 30, get: func(in *Inputs) *float64 { return &in.PingSeconds }, check: positive,
		Help:  "silence after which the server pings a connection; an idle connection costs a ping and a pong each time",
		Basis: "setting: gateway.ping_interval's default, 30s"},
	{Key: "utilization", Unit: "", Default: 0.5, get: func(in *Inputs) *float64 { return &in.Utilization }, check: fraction,
		Help:  "share of each tier's CPU, bandwidth or Kafka disk planned to be in use at the peak",
		Basis: "assumed: half, to survive the loss of a zone and spikes above the peak hour"},

	// Workers.
	{Key: "worker_msgs_per_core", Unit: "msg/s", Default: 20_000, get: func(in *Inputs) *float64 { return &in.WorkerMsgsPerCore }, check: positive,
		Help:  "messages one worker core consumes from Kafka and writes to Cassandra per second",
		Basis: "assumed, not measured (the Kafka and Cassandra backends are issue #6); the single box's committer alone does 129k–166k msg/s on Pebble"},

	// Bytes.
	{Key: "envelope_bytes", Unit: "B", Default: 200, get: func(in *Inputs) *float64 { return &in.EnvelopeBytes }, check: nonNegative,
		Help:  "bytes a message carries besides its body: ids, sender, recipient, timestamps, seq, keys",
		Basis: "assumed: our msg frame without its body is about 110 bytes of JSON; records add keys and headers"},
	{Key: "wire_bytes", Unit: "B", Default: 100, get: func(in *Inputs) *float64 { return &in.WireBytes }, check: nonNegative,
		Help:  "headers of one frame on the client link: WebSocket, TLS record, TCP/IP",
		Basis: "assumed: about 6 + 22 + 52 bytes, rounded up"},

	// Kafka.
	{Key: "kafka_replication", Unit: "", Default: 3, get: func(in *Inputs) *float64 { return &in.KafkaReplication }, check: wholeAtLeast(1),
		Help:  "Kafka replication factor",
		Basis: "setting: issue #6's production layout (replication 3, min.insync.replicas 2)"},
	{Key: "kafka_partition_mbps", Unit: "MB/s", Default: 10, get: func(in *Inputs) *float64 { return &in.KafkaPartitionMBps }, check: positive,
		Help:  "produce throughput one partition takes",
		Basis: "assumed: Confluent's sizing guidance (a partition takes tens of MB/s of produce); not measured here"},
	{Key: "kafka_broker_mbps", Unit: "MB/s", Default: 100, get: func(in *Inputs) *float64 { return &in.KafkaBrokerMBps }, check: positive,
		Help:  "writes one broker takes, its replicas of other leaders included",
		Basis: "assumed: about half the 193 MB/s per broker of Kafka's 2014 benchmark (3 brokers, 3 replicas, 2 million records/s); not measured here"},
	{Key: "kafka_partitions_per_broker", Unit: "", Default: 4000, get: func(in *Inputs) *float64 { return &in.KafkaPartitionsPerBroker }, check: atLeast(1),
		Help:  "partition replicas one broker holds at most",
		Basis: "assumed: Confluent's guidance of 2,000–4,000 per broker (KRaft clusters go higher)"},
	{Key: "kafka_retention_hours", Unit: "h", Default: 24, get: func(in *Inputs) *float64 { return &in.KafkaRetentionHours }, check: nonNegative,
		Help:  "how long Kafka keeps records",
		Basis: "assumed: a day to replay from"},
	{Key: "kafka_disk_tb", Unit: "TB", Default: 4, get: func(in *Inputs) *float64 { return &in.KafkaDiskTB }, check: positive,
		Help:  "data disk of one broker",
		Basis: "assumed"},

	// Cassandra.
	{Key: "cassandra_replication", Unit: "", Default: 3, get: func(in *Inputs) *float64 { return &in.CassandraReplication }, check: wholeAtLeast(1),
		Help:  "Cassandra replication factor",
		Basis: "setting: issue #6's production layout (replication 3, LOCAL_QUORUM)"},
	{Key: "cassandra_writes_per_node", Unit: "writes/s", Default: 10_000, get: func(in *Inputs) *float64 { return &in.CassandraWritesPerNode }, check: positive,
		Help:  "replica writes one Cassandra node takes per second",
		Basis: "assumed: Netflix's 2011 benchmark did 3.3 million replica writes/s on 288 four-core nodes, about 11,500 each; not measured here"},
	{Key: "cassandra_disk_tb", Unit: "TB", Default: 2, get: func(in *Inputs) *float64 { return &in.CassandraDiskTB }, check: positive,
		Help:  "data disk of one Cassandra node",
		Basis: "assumed: a common density (replacing a denser node streams for longer)"},
	{Key: "cassandra_disk_usable", Unit: "", Default: 0.5, get: func(in *Inputs) *float64 { return &in.CassandraDiskUsable }, check: fraction,
		Help:  "share of a Cassandra node's disk that holds data; the rest stays free for compaction",
		Basis: "assumed: size-tiered and time-window compaction can need as much free space as the tables they merge"},
	{Key: "cassandra_overhead", Unit: "×", Default: 1.5, get: func(in *Inputs) *float64 { return &in.CassandraOverhead }, check: positive,
		Help:  "bytes on disk per logical byte: row and cell metadata, indexes, bloom filters, tombstones awaiting compaction, after compression",
		Basis: "assumed: small rows carry much metadata per byte"},
	{Key: "inbox_entry_bytes", Unit: "B", Default: 60, get: func(in *Inputs) *float64 { return &in.InboxEntryBytes }, check: nonNegative,
		Help:  "one recipient's inbox entry, which names the message stored once (user, bucket, seq, message id)",
		Basis: "assumed: the embedded store's layout (a message stored once, a small entry per inbox)"},

	// Redis.
	{Key: "route_bytes", Unit: "B", Default: 160, get: func(in *Inputs) *float64 { return &in.RouteBytes }, check: nonNegative,
		Help:  "Redis memory per connection's route (user/device → gateway, with a TTL)",
		Basis: "assumed: about 90 bytes of Redis overhead per key with a TTL plus a 30-byte key and a 40-byte value; issue #6 measures it"},
	{Key: "presence_bytes", Unit: "B", Default: 120, get: func(in *Inputs) *float64 { return &in.PresenceBytes }, check: nonNegative,
		Help:  "Redis memory per daily active user for presence (last seen)",
		Basis: "assumed: one key with a timestamp per user"},
	{Key: "route_refresh_seconds", Unit: "s", Default: 300, get: func(in *Inputs) *float64 { return &in.RouteRefreshSeconds }, check: positive,
		Help:  "how often a gateway refreshes each route's TTL",
		Basis: "assumed: every five minutes (issue #6 decides)"},
	{Key: "redis_shard_gib", Unit: "GiB", Default: 25, get: func(in *Inputs) *float64 { return &in.RedisShardGiB }, check: positive,
		Help:  "data one Redis shard holds at most",
		Basis: "assumed: a common ceiling that keeps forks, full resyncs and restarts short"},
	{Key: "redis_ops_per_shard", Unit: "ops/s", Default: 100_000, get: func(in *Inputs) *float64 { return &in.RedisOpsPerShard }, check: positive,
		Help:  "commands one Redis shard serves per second",
		Basis: "assumed: redis-benchmark's order of magnitude without pipelining; pipelining raises it several-fold"},
	{Key: "redis_replicas", Unit: "", Default: 1, get: func(in *Inputs) *float64 { return &in.RedisReplicas }, check: wholeAtLeast(0),
		Help:  "replicas per Redis shard",
		Basis: "setting: issue #6's production layout (Redis with replicas)"},
}

// Fields describes every input, in the order plans print them.
func Fields() []Field { return append([]Field(nil), fields...) }

// Defaults returns the default inputs: the design's workload (100 million
// daily users, every one connected at the peak) on the gateway figures
// measured in docs/benchmarks.md, and stated assumptions for the rest.
func Defaults() Inputs {
	var in Inputs
	for _, f := range fields {
		*f.get(&in) = f.Default
	}
	return in
}

// WithDesignGateways returns a copy of in with the design's gateway
// assumption, DesignConnsPerBox connections per box taken as given: the
// design's column of a comparison.
func (in Inputs) WithDesignGateways() Inputs {
	in.Basis = maps.Clone(in.Basis)
	in.ConnsPerBox = DesignConnsPerBox
	in.SetBasis("conns_per_box", "design: its 60,000 sockets per box")
	return in
}

// Get returns the value of the input named key.
func (in *Inputs) Get(key string) (float64, bool) {
	f, ok := fieldByKey(key)
	if !ok {
		return 0, false
	}
	return *f.get(in), true
}

// Set stores v in the input named key. It checks only the key; Validate
// checks the value.
func (in *Inputs) Set(key string, v float64) error {
	f, ok := fieldByKey(key)
	if !ok {
		return fmt.Errorf("plan: %w: unknown key %q", ErrInvalidInput, key)
	}
	*f.get(in) = v
	return nil
}

// SetBasis records why the input named key has its value.
func (in *Inputs) SetBasis(key, basis string) {
	if in.Basis == nil {
		in.Basis = make(map[string]string)
	}
	in.Basis[key] = basis
}

func fieldByKey(key string) (Field, bool) {
	for _, f := range fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Validate reports every input outside its range, joined; each error wraps
// ErrInvalidInput and names the key, the value and what is wanted.
func (in *Inputs) Validate() error {
	var errs []error
	for _, f := range fields {
		v := *f.get(in)
		want := f.check(v)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			want = "a finite number"
		}
		if want != "" {
			errs = append(errs, fmt.Errorf("plan: %w: %s = %v: want %s (%s)", ErrInvalidInput, f.Key, v, want, f.Help))
		}
	}
	if in.RSSPerConnKiB+in.KernelPerConnKiB <= 0 {
		errs = append(errs, fmt.Errorf("plan: %w: rss_per_conn_kib + kernel_per_conn_kib = 0: a connection costs some memory", ErrInvalidInput))
	}
	return errors.Join(errs...)
}

func positive(v float64) string {
	if v > 0 {
		return ""
	}
	return "more than 0"
}

func nonNegative(v float64) string {
	if v >= 0 {
		return ""
	}
	return "0 or more"
}

// share is a fraction that may be 0.
func share(v float64) string {
	if v >= 0 && v <= 1 {
		return ""
	}
	return "a fraction from 0 to 1"
}

// fraction is a share that must be above 0 (a divisor).
func fraction(v float64) string {
	if v > 0 && v <= 1 {
		return ""
	}
	return "a fraction above 0, at most 1"
}

func atLeast(min float64) func(float64) string {
	return func(v float64) string {
		if v >= min {
			return ""
		}
		return fmt.Sprintf("at least %v", min)
	}
}

func wholeAtLeast(min float64) func(float64) string {
	return func(v float64) string {
		if v >= min && v == math.Trunc(v) {
			return ""
		}
		return fmt.Sprintf("a whole number, at least %v", min)
	}
}
