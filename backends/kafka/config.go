package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of Config, filled in by New for zero fields.
const (
	DefaultTopicPrefix        = "sb."
	DefaultClientID           = "switchboard"
	DefaultReplicationFactor  = 3
	DefaultMinInsyncReplicas  = 2
	DefaultStreamPartitions   = 8
	DefaultStreamRetention    = 7 * 24 * time.Hour
	DefaultNodeRetention      = time.Hour
	DefaultNodeTopicGrace     = time.Hour
	DefaultPublishTimeout     = 2 * time.Second
	DefaultMissingNodeRecheck = time.Second
	DefaultMaxBufferedRecords = 1 << 16
	DefaultAdminTimeout       = 10 * time.Second
	DefaultCloseTimeout       = 5 * time.Second
)

// maxTopicLen is Kafka's limit on a topic name.
const maxTopicLen = 249

// Config configures a Bus. The zero value of every field but Brokers means
// its default. There is no SASL or TLS yet: the brokers are reached in
// plain text, as on a private network.
type Config struct {
	// Brokers are seed brokers (host:port); the client discovers the rest
	// of the cluster from them. Required.
	Brokers []string `yaml:"brokers" help:"seed brokers host:port (required)"`

	// TopicPrefix starts the name of every topic the Bus uses: node
	// topics are TopicPrefix+"node."+node, stream topics
	// TopicPrefix+"stream."+topic. Only Kafka's topic characters
	// (letters, digits, '.', '_', '-'). Default "sb." (DefaultTopicPrefix).
	TopicPrefix string `yaml:"topic_prefix" help:"prefix of every topic (default sb.)"`

	// ClientID names this process to the brokers (their logs and quotas).
	// Default "switchboard" (DefaultClientID).
	ClientID string `yaml:"client_id" help:"client id shown in broker logs and quotas (default switchboard)"`

	// ReplicationFactor is the replication factor of the topics the Bus
	// creates. Default 3 (DefaultReplicationFactor); a single broker
	// (tests) wants 1.
	ReplicationFactor int `yaml:"replication_factor" help:"replication factor of the topics Switchboard creates (default 3)"`

	// MinInsyncReplicas is the min.insync.replicas of the topics the Bus
	// creates: with acks=all, a write is acknowledged once this many
	// replicas have it. At most ReplicationFactor. Default 2
	// (DefaultMinInsyncReplicas), or 1 when ReplicationFactor is 1.
	MinInsyncReplicas int `yaml:"min_insync_replicas" help:"min.insync.replicas of those topics: acks=all waits for this many (default 2, 1 when the factor is 1)"`

	// StreamPartitions is the partition count of the stream topics the Bus
	// creates (an existing topic keeps its own). It bounds how many
	// members of a ConsumeGroup share the work. Default 8
	// (DefaultStreamPartitions).
	StreamPartitions int `yaml:"stream_partitions" help:"partitions of the stream topics (default 8)"`

	// StreamRetention is the retention.ms of the stream topics the Bus
	// creates: how long a group consumer that is down may stay down
	// without losing values. Default 7 days (DefaultStreamRetention).
	StreamRetention time.Duration `yaml:"stream_retention" help:"retention of the stream topics (default 7 days)"`

	// NodeRetention is the retention.ms (and segment.ms) of the node
	// topics: deliveries are best effort and only read live, so this only
	// bounds the disk they take. Default 1 hour (DefaultNodeRetention).
	NodeRetention time.Duration `yaml:"node_retention" help:"retention of each gateway's delivery topic (default 1h)"`

	// NodeTopicGrace is how long a node's heartbeat must have been
	// missing before the workers delete its topic (a process that died;
	// one that stops cleanly deletes its own). Node ids are unique per
	// process by default, so without it every restart would leave a topic
	// behind. Default 1 hour (DefaultNodeTopicGrace); negative: never.
	NodeTopicGrace time.Duration `yaml:"node_topic_grace" help:"workers delete the topic of a node whose heartbeat has been missing this long (default 1h; negative: never)"`

	// PublishTimeout bounds Publish and SendNode (as well as their ctx):
	// how long they wait for the brokers' acknowledgement, or for the
	// check that the node's topic exists. Default 2 seconds
	// (DefaultPublishTimeout).
	PublishTimeout time.Duration `yaml:"publish_timeout" help:"bound on one delivery publish (default 2s)"`

	// MissingNodeRecheck is how long Publish remembers that a node has no
	// topic (a stale route) before asking the brokers again: one metadata
	// request per missing node per interval. Default 1 second
	// (DefaultMissingNodeRecheck).
	MissingNodeRecheck time.Duration `yaml:"missing_node_recheck" help:"how often a missing gateway topic is looked up again (default 1s)"`

	// MaxBufferedRecords is how many records the producer holds before
	// they are acknowledged (Kafka slow or down); past it Emit drops
	// values (counted in Stats.Dropped) and Publish fails at once.
	// Default 65536 (DefaultMaxBufferedRecords).
	MaxBufferedRecords int `yaml:"max_buffered_records" help:"records a producer may buffer before refusing more (default 65536)"`

	// Linger is how long the producer waits for more records before it
	// sends a batch. It batches anyway while a request is in flight, so
	// the default is 0: no added latency.
	Linger time.Duration `yaml:"linger" help:"how long a producer waits to fill a batch (default 0)"`

	// Compression of produced batches: "none" or "snappy". Default "none":
	// deliveries are small and latency-bound (see doc.go for the figures).
	Compression string `yaml:"compression" help:"none or snappy (default none)"`

	// ExternalStreams are streams consumed by other processes (analytics
	// pipelines reading the topic with their own Kafka consumers):
	// Consumed reports true for them even when this Bus has no consumer,
	// so producers keep emitting. Default none.
	ExternalStreams []string `yaml:"external_streams" help:"streams consumed outside Switchboard (e.g. events), so they are produced (default none)"`

	// AdminTimeout bounds the topic creation and offset lookups of
	// Subscribe, Consume and ConsumeGroup. Default 10 seconds
	// (DefaultAdminTimeout).
	AdminTimeout time.Duration `yaml:"admin_timeout" help:"bound on topic administration calls (default 10s)"`

	// CloseTimeout bounds how long Close waits for buffered records to be
	// acknowledged. Default 5 seconds (DefaultCloseTimeout).
	CloseTimeout time.Duration `yaml:"close_timeout" help:"how long closing waits for unacknowledged records (default 5s)"`

	// Logger receives the Bus's and franz-go's log (franz-go's info
	// messages at debug level). Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.MinInsyncReplicas == 0 {
		c.MinInsyncReplicas = min(DefaultMinInsyncReplicas, c.ReplicationFactor)
	}
	if c.StreamPartitions == 0 {
		c.StreamPartitions = DefaultStreamPartitions
	}
	if c.StreamRetention == 0 {
		c.StreamRetention = DefaultStreamRetention
	}
	if c.NodeRetention == 0 {
		c.NodeRetention = DefaultNodeRetention
	}
	if c.NodeTopicGrace == 0 {
		c.NodeTopicGrace = DefaultNodeTopicGrace
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MissingNodeRecheck == 0 {
		c.MissingNodeRecheck = DefaultMissingNodeRecheck
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.Compression == "" {
		c.Compression = "none"
	}
	if c.AdminTimeout == 0 {
		c.AdminTimeout = DefaultAdminTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports what is wrong with c, all problems joined; zero fields
// are valid (they mean their defaults) except Brokers.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: brokers: at least one broker is required"))
	}
	for _, b := range c.Brokers {
		if b == "" {
			errs = append(errs, errors.New("kafka: brokers: empty address"))
		}
	}
	for _, r := range c.TopicPrefix {
		if !topicRune(r) {
			errs = append(errs, fmt.Errorf("kafka: topic_prefix %q: %q is not a topic character", c.TopicPrefix, r))
			break
		}
	}
	if len(c.TopicPrefix) > maxTopicLen/2 {
		errs = append(errs, fmt.Errorf("kafka: topic_prefix %q is longer than %d", c.TopicPrefix, maxTopicLen/2))
	}
	if c.ReplicationFactor < 0 || c.ReplicationFactor > 32767 {
		errs = append(errs, fmt.Errorf("kafka: replication_factor %d: want 1 to 32767", c.ReplicationFactor))
	}
	if c.MinInsyncReplicas < 0 {
		errs = append(errs, fmt.Errorf("kafka: min_insync_replicas %d is negative", c.MinInsyncReplicas))
	}
	if rf := cmp0(c.ReplicationFactor, DefaultReplicationFactor); c.MinInsyncReplicas > rf {
		errs = append(errs, fmt.Errorf("kafka: min_insync_replicas %d exceeds replication_factor %d", c.MinInsyncReplicas, rf))
	}
	if c.StreamPartitions < 0 || c.StreamPartitions > 1<<20 {
		errs = append(errs, fmt.Errorf("kafka: stream_partitions %d: want 1 to %d", c.StreamPartitions, 1<<20))
	}
	for name, d := range map[string]time.Duration{
		"stream_retention": c.StreamRetention, "node_retention": c.NodeRetention,
		"publish_timeout": c.PublishTimeout, "missing_node_recheck": c.MissingNodeRecheck,
		"linger": c.Linger, "admin_timeout": c.AdminTimeout, "close_timeout": c.CloseTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("kafka: %s %v is negative", name, d))
		}
	}
	if c.MaxBufferedRecords < 0 {
		errs = append(errs, fmt.Errorf("kafka: max_buffered_records %d is negative", c.MaxBufferedRecords))
	}
	for _, s := range c.ExternalStreams {
		if _, err := topicName(c.TopicPrefix, "stream.", s); err != nil {
			errs = append(errs, fmt.Errorf("kafka: external_streams: %w", err))
		}
	}
	if _, err := codec(c.Compression); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cmp0 returns v, or def when v is 0.
func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// codec returns the franz-go codec of a Compression value.
func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka: compression %q: want none or snappy", name)
}

// topicRune reports whether r may stand in a Kafka topic name.
func topicRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-'
}

// topicName returns prefix+kind+escaped(name): letters, digits, '.' and
// '-' stand for themselves, every other byte (including '_') is "_" and
// two hex digits, so distinct names get distinct topics. It fails when
// the result is longer than Kafka allows.
func topicName(prefix, kind, name string) (string, error) {
	var b strings.Builder
	b.Grow(len(prefix) + len(kind) + len(name))
	b.WriteString(prefix)
	b.WriteString(kind)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '_' && c < 0x80 && topicRune(rune(c)) {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789abcdef"
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	if b.Len() > maxTopicLen || name == "" {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return b.String(), nil
}
