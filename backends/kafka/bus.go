package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard/switchboard/chat"
)

var (
	_ chat.Bus           = (*Bus)(nil)
	_ chat.StreamWatcher = (*Bus)(nil)
)

// Errors of the Bus, wrapped with %w.
var (
	// ErrUnknownNode: SendNode's node has no topic (no gateway ever
	// subscribed it, or it was deleted). Publish turns it into nil.
	ErrUnknownNode = errors.New("kafka: node has no topic")
	// ErrInvalidName: a node or stream name makes a topic name longer than
	// Kafka allows (249 bytes), or is empty.
	ErrInvalidName = errors.New("kafka: invalid node or stream name")
	// ErrClosed: the Bus was closed.
	ErrClosed = errors.New("kafka: bus closed")
)

// Bus is a chat.Bus on Kafka. See the package documentation for topics,
// guarantees and behaviour when Kafka is down. All methods are safe for
// concurrent use.
type Bus struct {
	cfg   Config
	log   *slog.Logger
	cl    *kgo.Client // the producer, and the admin requests
	adm   *kadm.Client
	opts  []kgo.Opt // common options of every client (consumers too)
	kinds [256]atomic.Pointer[func([]byte)]

	topics nodeTopics
	ops    sync.Pool // *produceOp

	emitted func(*kgo.Record, error) // Emit's promise
	streams sync.Map                 // stream name → *streamTopic

	isClosed atomic.Bool // set by Close, for the paths that take no lock

	mu     sync.Mutex // guards what follows; held through Subscribe's setup
	closed bool
	nodes  map[string]*nodeSub
	stops  map[*consumer]struct{} // running Consume and ConsumeGroup loops

	stats counters
}

// counters are the Bus's statistics.
type counters struct {
	dropped, emitErrors, badRecords, unknownKinds, publishErrors atomic.Int64
	lastDropLog                                                  atomic.Int64 // unix nanos
}

// Stats are counters since New.
type Stats struct {
	// Dropped counts Emit values dropped because the producer's buffer
	// (Config.MaxBufferedRecords) was full.
	Dropped int64
	// EmitErrors counts Emit values Kafka did not take (after the client's
	// retries), and values dropped by a full buffer.
	EmitErrors int64
	// BadRecords counts node-topic records that did not decode (empty, or
	// a delivery that is not well formed); they are skipped.
	BadRecords int64
	// UnknownKinds counts node-topic records of a kind no HandleNode
	// registered; they are skipped.
	UnknownKinds int64
	// PublishErrors counts deliveries Kafka did not take (Publish does
	// not wait for them: the entries wait in the inboxes).
	PublishErrors int64
}

// Stats returns the Bus's counters. Safe for concurrent use.
func (b *Bus) Stats() Stats {
	return Stats{
		Dropped:      b.stats.dropped.Load(),
		EmitErrors:   b.stats.emitErrors.Load(),
		BadRecords:   b.stats.badRecords.Load(),
		UnknownKinds: b.stats.unknownKinds.Load(),

		PublishErrors: b.stats.publishErrors.Load(),
	}
}

// New returns a Bus for cfg. It does not reach Kafka: the first Publish,
// Subscribe, Emit or Consume does.
func New(cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	comp, _ := codec(cfg.Compression)
	b := &Bus{
		cfg: cfg,
		log: cfg.Logger,
		opts: []kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.ClientID(cfg.ClientID),
			kgo.WithLogger(kgoLogger{cfg.Logger}),
		},
		nodes: make(map[string]*nodeSub),
		stops: make(map[*consumer]struct{}),
	}
	b.emitted = b.emitDone
	for _, s := range cfg.ExternalStreams {
		st, _ := b.stream(s) // Validate checked the name
		st.external = true
	}
	b.topics.init(cfg.MissingNodeRecheck)
	b.ops.New = func() any { return newProduceOp() }
	// No transactions (Jepsen 2024: aborted reads, lost writes), and
	// the idempotent producer franz-go defaults to: never disabled.
	// Record values are not pooled (no kgo.WithPools): decoded
	// deliveries alias them.
	cl, err := kgo.NewClient(append(b.opts[:len(b.opts):len(b.opts)],
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(comp),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		// The first record to a topic waits for a metadata load, and
		// loads are at least this far apart (default 5s): a Publish to a
		// node that subscribed seconds ago must not wait that long.
		kgo.MetadataMinAge(metadataMinAge),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	b.cl = cl
	b.adm = kadm.NewClient(cl)
	return b, nil
}

// metadataMinAge is the producer's shortest interval between metadata
// loads.
const metadataMinAge = 100 * time.Millisecond

// Close stops every subscription and consumer, waits up to
// Config.CloseTimeout for buffered records to be acknowledged, and closes
// the client. Calls after the first do nothing. Safe for concurrent use.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.isClosed.Store(true)
	nodes := b.nodes
	b.nodes = map[string]*nodeSub{}
	stops := b.stops
	b.stops = map[*consumer]struct{}{}
	b.mu.Unlock()
	for _, s := range nodes {
		s.stop()
	}
	for c := range stops {
		c.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CloseTimeout)
	defer cancel()
	err := b.cl.Flush(ctx)
	b.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka: close: records not acknowledged: %w", err)
	}
	return nil
}

// kgoLogger sends franz-go's log to slog, its info messages (requests,
// metadata) at debug level.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	k.l.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}

// ensureTopic creates topic (tolerating that it exists) and waits until
// every partition has a leader, returning the partitions' end offsets.
// An existing topic is kept as it is (partitions, configs).
func (b *Bus) ensureTopic(ctx context.Context, topic string, partitions int, configs map[string]*string) (map[int32]int64, error) {
	rf := int16(b.cfg.ReplicationFactor)
	resp, err := b.adm.CreateTopic(ctx, int32(partitions), rf, configs, topic)
	if err != nil && !errors.Is(err, errTopicExists) {
		return nil, fmt.Errorf("kafka: create topic %s: %w (%s)", topic, err, resp.ErrMessage)
	}
	for {
		ends, err := b.endOffsets(ctx, topic)
		if err == nil {
			return ends, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka: topic %s not ready: %w (%w)", topic, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond): // the new topic's leader is being elected
		}
	}
}

// endOffsets returns the end offset of every partition of topic, or an
// error if any partition has none (no leader yet, or no topic).
func (b *Bus) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	listed, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends := make(map[int32]int64)
	var perr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			perr = o.Err
		}
		ends[o.Partition] = o.Offset
	})
	if perr != nil {
		return nil, perr
	}
	if len(ends) == 0 {
		return nil, errNoPartitions
	}
	return ends, nil
}

var (
	errNoPartitions = errors.New("kafka: topic has no partitions")
	errTopicExists  = kerr.TopicAlreadyExists
)

// topicConfigs returns the configs of a topic the Bus creates.
func (b *Bus) topicConfigs(retention time.Duration, segment bool) map[string]*string {
	ms := kadm.StringPtr(fmt.Sprint(retention.Milliseconds()))
	c := map[string]*string{
		"retention.ms":        ms,
		"min.insync.replicas": kadm.StringPtr(fmt.Sprint(b.cfg.MinInsyncReplicas)),
	}
	if segment { // roll segments as often, or retention would wait for 1 GiB
		c["segment.ms"] = ms
	}
	return c
}
