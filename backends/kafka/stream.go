package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard/switchboard/chat"
)

// dropLogEvery bounds the log of failed Emits to one line per interval.
const dropLogEvery = 10 * time.Second

// streamTopic is one stream and what this Bus knows of its topic.
type streamTopic struct {
	name      string
	ready     atomic.Bool  // this Bus created or found the topic
	creating  atomic.Bool  // a background creation is running
	consumers atomic.Int32 // Consume and ConsumeGroup loops of this Bus
	external  bool         // Config.ExternalStreams names it
}

// stream returns topic's entry, adding it.
func (b *Bus) stream(topic string) (*streamTopic, error) {
	if st, ok := b.streams.Load(topic); ok {
		return st.(*streamTopic), nil
	}
	name, err := topicName(b.cfg.TopicPrefix, "stream.", topic)
	if err != nil {
		return nil, err
	}
	st, _ := b.streams.LoadOrStore(topic, &streamTopic{name: name})
	return st.(*streamTopic), nil
}

// ensureStream creates st's topic if needed (Config.StreamPartitions
// partitions, Config.StreamRetention) and returns its end offsets.
func (b *Bus) ensureStream(ctx context.Context, st *streamTopic) (map[int32]int64, error) {
	ends, err := b.ensureTopic(ctx, st.name, b.cfg.StreamPartitions, b.topicConfigs(b.cfg.StreamRetention, false))
	if err == nil {
		st.ready.Store(true)
	}
	return ends, err
}

// EnsureStreams creates the topics of streams that do not have one yet,
// so that values emitted before any consumer started are kept (Emit
// creates a missing topic in the background, and values emitted to it
// meanwhile may be lost). Run it at start-up with the streams a process
// emits. Safe for concurrent use.
func (b *Bus) EnsureStreams(ctx context.Context, streams ...string) error {
	var errs []error
	for _, s := range streams {
		st, err := b.stream(s)
		if err == nil {
			_, err = b.ensureStream(ctx, st)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Emit produces value to topic's stream topic, keyed by key (one key's
// values go to one partition, in emit order), and returns at once: it
// never waits for Kafka. Kafka's answer is not reported to the caller: a
// value the producer's buffer has no room for (Config.MaxBufferedRecords:
// Kafka slow or down) is dropped, and a value Kafka refused is lost; both
// are counted (Stats) and logged at most once per 10 seconds. It returns
// an error only for an invalid topic name or a closed Bus. value is
// copied. Safe for concurrent use.
func (b *Bus) Emit(topic, key string, value []byte) error {
	if b.isClosed.Load() {
		return ErrClosed
	}
	st, err := b.stream(topic)
	if err != nil {
		return err
	}
	if !st.ready.Load() && st.creating.CompareAndSwap(false, true) {
		go b.createStream(st)
	}
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	rec := &kgo.Record{Topic: st.name, Key: buf[:len(key):len(key)], Value: buf[len(key):]}
	b.cl.TryProduce(context.Background(), rec, b.emitted)
	return nil
}

// createStream is Emit's background creation of a topic not seen yet.
func (b *Bus) createStream(st *streamTopic) {
	defer st.creating.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.AdminTimeout)
	defer cancel()
	if _, err := b.ensureStream(ctx, st); err != nil {
		b.log.Warn("kafka: creating a stream topic failed", "topic", st.name, "err", err)
	}
}

// emitDone is the promise of Emit's records.
func (b *Bus) emitDone(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	b.stats.emitErrors.Add(1)
	if errors.Is(err, kgo.ErrMaxBuffered) {
		b.stats.dropped.Add(1)
	}
	now := time.Now().UnixNano()
	last := b.stats.lastDropLog.Load()
	if now-last >= int64(dropLogEvery) && b.stats.lastDropLog.CompareAndSwap(last, now) {
		b.log.Warn("kafka: stream values lost", "topic", r.Topic, "err", err,
			"dropped_total", b.stats.dropped.Load(), "errors_total", b.stats.emitErrors.Load())
	}
}

// Consume calls h with every value produced to topic after Consume
// returns, until cancel: it creates the topic if needed, reads the end
// offset of every partition, and consumes each from there, on one
// goroutine (its own client, no consumer group). Values of one key come
// in emit order; keys of different partitions interleave. A consumer that
// falls behind the topic's retention skips to its oldest value. cancel
// returns once the handler returned for the last time; calling it more
// than once is harmless. Safe for concurrent use.
func (b *Bus) Consume(topic string, h chat.StreamHandler) (cancel func(), err error) {
	st, err := b.stream(topic)
	if err != nil {
		return nil, err
	}
	ctx, done := context.WithTimeout(context.Background(), b.cfg.AdminTimeout)
	defer done()
	ends, err := b.ensureStream(ctx, st)
	if err != nil {
		return nil, err
	}
	from := make(map[int32]kgo.Offset, len(ends))
	for p, o := range ends {
		from[p] = kgo.NewOffset().At(o)
	}
	c, err := b.startConsumer(st, h, false,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{st.name: from}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	return c.cancel, nil
}

// ConsumeGroup joins consumer group group on topic's stream topic: the
// group's members (across processes) share the partitions, so each value
// is handled by one member. A member's offsets are committed (every 5
// seconds, and when it leaves or loses partitions) only past values whose
// handler returned: a value whose member died or was cancelled while
// handling it is handled again by the member that takes its partition
// (at least once; handlers should be idempotent). A group new to the
// topic starts at its oldest retained value. Values of one key come in
// emit order, except when redelivered. cancel waits for the handler
// call in progress, commits, and leaves the group. Safe for concurrent
// use.
func (b *Bus) ConsumeGroup(topic, group string, h chat.StreamHandler) (cancel func(), err error) {
	c, err := b.consumeGroup(topic, group, h)
	if err != nil {
		return nil, err
	}
	return c.cancel, nil
}

func (b *Bus) consumeGroup(topic, group string, h chat.StreamHandler) (*consumer, error) {
	if group == "" {
		return nil, fmt.Errorf("%w: empty group", ErrInvalidName)
	}
	st, err := b.stream(topic)
	if err != nil {
		return nil, err
	}
	ctx, done := context.WithTimeout(context.Background(), b.cfg.AdminTimeout)
	defer done()
	if _, err := b.ensureStream(ctx, st); err != nil {
		return nil, err
	}
	return b.startConsumer(st, h, true,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(st.name),
		kgo.AutoCommitMarks(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A member that died (kill -9) holds its partitions, and holds up
		// every rebalance, for the session timeout: Kafka's minimum, as
		// for the command log, not franz-go's 45 s.
		kgo.SessionTimeout(groupSessionTimeout),
		kgo.HeartbeatInterval(groupSessionTimeout/6),
		kgo.RebalanceTimeout(groupRebalanceTimeout))
}

// Stream consumer groups' timeouts (ConsumeGroup).
const (
	groupSessionTimeout   = 6 * time.Second
	groupRebalanceTimeout = 10 * time.Second
)

// closeTimeout bounds how long stopping a group consumer waits to leave
// its group: a leave waits for a rebalance in progress, which waits for
// members that died until their session times out. Past it the process
// goes on (stopping); what the consumer had not committed is delivered
// again, to the group's next member.
const closeTimeout = 5 * time.Second

// closeWithin runs closeFn (a client's Close, which leaves its group),
// waiting at most d for it; the rest finishes in the background.
func closeWithin(closeFn func(), d time.Duration, log *slog.Logger, what string) {
	done := make(chan struct{})
	go func() {
		closeFn()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		log.Warn("kafka: leaving the consumer group is taking long (a rebalance waits for a member that died); going on", "consumer", what, "after", d)
	}
}

// consumer is one Consume or ConsumeGroup loop.
type consumer struct {
	b      *Bus
	st     *streamTopic
	cl     *kgo.Client
	group  bool
	ctx    context.Context
	stopFn context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (b *Bus) startConsumer(st *streamTopic, h chat.StreamHandler, group bool, opts ...kgo.Opt) (*consumer, error) {
	cl, err := kgo.NewClient(append(b.opts[:len(b.opts):len(b.opts)], opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer of %s: %w", st.name, err)
	}
	c := &consumer{b: b, st: st, cl: cl, group: group, done: make(chan struct{})}
	c.ctx, c.stopFn = context.WithCancel(context.Background())
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cl.Close()
		return nil, ErrClosed
	}
	b.stops[c] = struct{}{}
	st.consumers.Add(1)
	b.mu.Unlock()
	go c.run(h)
	return c, nil
}

func (c *consumer) run(h chat.StreamHandler) {
	defer close(c.done)
	handle := func(r *kgo.Record) {
		if c.ctx.Err() != nil { // cancelled: the rest of the poll is not handled (nor marked)
			return
		}
		h(string(r.Key), r.Value)
		if c.group {
			c.cl.MarkCommitRecords(r)
		}
	}
	for {
		fs := c.cl.PollFetches(c.ctx)
		if c.ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			c.b.log.Warn("kafka: fetch failed", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(handle)
	}
}

// cancel stops the loop after the handler call in progress, then closes
// the client (a group member commits what it marked and leaves).
func (c *consumer) cancel() {
	c.b.mu.Lock()
	_, mine := c.b.stops[c]
	delete(c.b.stops, c)
	c.b.mu.Unlock()
	if mine {
		c.stop()
	}
}

func (c *consumer) stop() {
	c.once.Do(func() {
		c.stopFn()
		<-c.done
		closeWithin(c.cl.Close, closeTimeout, c.b.log, c.st.name)
		c.st.consumers.Add(-1)
	})
}

// kill closes the client without waiting for the handler in progress,
// as a crash would (but leaving the group at once): what was not marked
// is not committed. For tests.
func (c *consumer) kill() {
	c.stopFn()
	c.cl.Close()
}

// Consumed reports whether this Bus has a Consume or ConsumeGroup running
// on topic, or Config.ExternalStreams names it. Consumers in other
// processes are not seen (list them in ExternalStreams). Safe for
// concurrent use.
func (b *Bus) Consumed(topic string) bool {
	st, ok := b.streams.Load(topic)
	if !ok {
		return false
	}
	s := st.(*streamTopic)
	return s.external || s.consumers.Load() > 0
}
