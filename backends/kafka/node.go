package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard/switchboard/chat"
)

// maxPooledBuf is the largest record buffer kept for reuse.
const maxPooledBuf = 1 << 20

// Publish queues d for node's topic and returns without waiting for the
// brokers: deliveries are best effort (chat.Bus), and the post stage of
// the sequencer publishes one after another, so waiting for acks=all on
// each would pace the whole pipeline by Kafka's round trip. The producer
// keeps the records of one node in order; one Kafka does not take is
// counted (Stats.PublishErrors) and its entries wait in the inboxes for
// the next sync or gap fill. It returns nil at once when node has no
// topic (no gateway ever subscribed it: a stale route), and an error
// only when the Bus is closed or finding the node's topic failed within
// Config.PublishTimeout. d is encoded before Publish returns and not
// retained. Safe for concurrent use.
func (b *Bus) Publish(ctx context.Context, node string, d *chat.Delivery) error {
	nt, err := b.target(ctx, node)
	if errors.Is(err, ErrUnknownNode) {
		return nil
	}
	if err != nil {
		return err
	}
	op := b.ops.Get().(*produceOp)
	switch {
	case d.Epoch != 0 && d.Partition != 0:
		op.buf = binary.AppendUvarint(append(op.buf[:0], KindPartitionDelivery), uint64(d.Partition))
		op.buf = binary.AppendUvarint(op.buf, d.Epoch)
	case d.Epoch != 0:
		op.buf = binary.AppendUvarint(append(op.buf[:0], KindFencedDelivery), d.Epoch)
	default:
		op.buf = append(op.buf[:0], KindDelivery)
	}
	op.buf = appendDelivery(op.buf, d)
	b.post(nt, op)
	return nil
}

// PostNode queues payload for node's topic as a record of kind, for the
// handler HandleNode registered for kind on the node's Bus, and returns
// without waiting for the brokers, like Publish: for messages whose
// sender does not wait (a worker's replies: one lost is answered by the
// gateway's reply timeout, and the client's resend by the original's
// ack). A record Kafka does not take is counted (Stats.PublishErrors). It
// returns an error wrapping ErrUnknownNode when node has no topic, and
// another only when the Bus is closed or finding the node's topic failed
// within Config.PublishTimeout (once per node: the answer is cached).
// kind must not be KindDelivery; payload is not retained. Safe for
// concurrent use.
func (b *Bus) PostNode(ctx context.Context, node string, kind byte, payload []byte) error {
	if isDelivery(kind) {
		return fmt.Errorf("kafka: PostNode: kind %q is the deliveries'", kind)
	}
	nt, err := b.target(ctx, node)
	if err != nil {
		return err
	}
	op := b.ops.Get().(*produceOp)
	op.buf = append(append(op.buf[:0], kind), payload...)
	b.post(nt, op)
	return nil
}

// target returns node's topic, looked up within Config.PublishTimeout
// (once per node: the answer is cached); the error wraps ErrUnknownNode
// when it has none, and is ErrClosed once the Bus is closed. Nothing is
// encoded for a node that cannot take it.
func (b *Bus) target(ctx context.Context, node string) (*nodeTopic, error) {
	if b.isClosed.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	return b.nodeTopic(ctx, node)
}

// post queues op (its buf holds the record value) for nt and returns; it
// owns op: back in the pool when the client is done with it.
func (b *Bus) post(nt *nodeTopic, op *produceOp) {
	op.rec = kgo.Record{Topic: nt.name, Value: op.buf}
	b.cl.TryProduce(context.Background(), &op.rec, func(_ *kgo.Record, err error) {
		if err != nil {
			b.stats.publishErrors.Add(1)
			if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
				nt.setMissing()
			}
		}
		b.putOp(op)
	})
}

// SendNode sends payload to node's topic as a record of kind, for the
// handler HandleNode registered for kind on the node's Bus, and waits for
// the brokers' acknowledgement (acks=all), at most Config.PublishTimeout. Unlike Publish it returns an error wrapping ErrUnknownNode when
// the node has no topic, so a request can fail at once instead of waiting
// for a reply that cannot come. kind must not be KindDelivery (Publish's);
// payload is not retained. Safe for concurrent use.
func (b *Bus) SendNode(ctx context.Context, node string, kind byte, payload []byte) error {
	if isDelivery(kind) {
		return fmt.Errorf("kafka: SendNode: kind %q is the deliveries'", kind)
	}
	op := b.ops.Get().(*produceOp)
	op.buf = append(append(op.buf[:0], kind), payload...)
	return b.send(ctx, node, op)
}

// HandleNode registers h for the records of kind on this Bus's subscribed
// node topic (SendNode's), replacing any other handler of kind. h is
// called from the subscription's goroutine, between deliveries, in topic
// order; payload is valid only during the call, and h must not block for
// long nor call the subscription's cancel. Register before Subscribe:
// records of a kind with no handler are counted (Stats.UnknownKinds) and
// skipped. h nil removes the handler. It panics for KindDelivery. Safe for
// concurrent use.
func (b *Bus) HandleNode(kind byte, h func(payload []byte)) {
	if isDelivery(kind) {
		panic("kafka: HandleNode: kinds 'd' and 'D' are the deliveries'")
	}
	if h == nil {
		b.kinds[kind].Store(nil)
		return
	}
	b.kinds[kind].Store(&h)
}

// send produces op (its buf holds the record value) to node's topic and
// waits for the acknowledgement. It owns op: back in the pool when the
// client is done with it.
func (b *Bus) send(ctx context.Context, node string, op *produceOp) error {
	if b.isClosed.Load() {
		b.putOp(op)
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	nt, err := b.nodeTopic(ctx, node)
	if err != nil {
		b.putOp(op)
		return err
	}
	op.rec = kgo.Record{Topic: nt.name, Value: op.buf}
	// TryProduce: with the buffer full (Kafka down for a while) fail at
	// once instead of queueing behind what will not be sent.
	b.cl.TryProduce(ctx, &op.rec, op.promise)
	select {
	case err = <-op.done:
		b.putOp(op)
	case <-ctx.Done():
		// The record may be in flight: the client keeps it (and op)
		// until it answers; op is not reused.
		return fmt.Errorf("kafka: send to node %q: %w", node, ctx.Err())
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID):
		nt.setMissing()
		return fmt.Errorf("kafka: send to node %q: %w", node, ErrUnknownNode)
	}
	return fmt.Errorf("kafka: send to node %q: %w", node, err)
}

// produceOp is one Publish or SendNode: the record, its value's buffer
// and the channel its promise answers on, reused through Bus.ops.
type produceOp struct {
	rec     kgo.Record
	buf     []byte
	done    chan error
	promise func(*kgo.Record, error)
}

func newProduceOp() *produceOp {
	op := &produceOp{done: make(chan error, 1)}
	op.promise = func(_ *kgo.Record, err error) { op.done <- err }
	return op
}

func (b *Bus) putOp(op *produceOp) {
	if cap(op.buf) > maxPooledBuf {
		return
	}
	op.rec = kgo.Record{}
	b.ops.Put(op)
}

// nodeTopics caches which node topics exist, so that Publish to a stale
// route costs no produce retries: a topic seen is remembered until a
// produce says it is gone; a missing one for Config.MissingNodeRecheck.
type nodeTopics struct {
	recheck time.Duration
	mu      sync.RWMutex
	m       map[string]*nodeTopic // node → its topic
}

// nodeTopic is one node's topic and what is known of it.
type nodeTopic struct {
	name    string
	exists  atomic.Bool
	checked atomic.Int64 // unix nanos of the last check that found none
	mu      sync.Mutex   // held by the one goroutine asking the brokers
}

// maxMissingNodes bounds the cache: past it, entries for missing topics
// are dropped.
const maxMissingNodes = 4096

func (c *nodeTopics) init(recheck time.Duration) {
	c.recheck = recheck
	c.m = make(map[string]*nodeTopic)
}

func (nt *nodeTopic) setMissing() {
	nt.exists.Store(false)
	nt.checked.Store(time.Now().UnixNano())
}

// get returns node's entry, adding it.
func (c *nodeTopics) get(prefix, node string) (*nodeTopic, error) {
	c.mu.RLock()
	nt := c.m[node]
	c.mu.RUnlock()
	if nt != nil {
		return nt, nil
	}
	name, err := topicName(prefix, "node.", node)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if nt = c.m[node]; nt != nil {
		return nt, nil
	}
	if len(c.m) >= maxMissingNodes {
		for n, e := range c.m {
			if !e.exists.Load() {
				delete(c.m, n)
			}
		}
	}
	nt = &nodeTopic{name: name}
	c.m[node] = nt
	return nt, nil
}

// nodeTopic returns node's topic if it exists, or an error wrapping
// ErrUnknownNode; it asks the brokers when the cache does not know.
func (b *Bus) nodeTopic(ctx context.Context, node string) (*nodeTopic, error) {
	nt, err := b.topics.get(b.cfg.TopicPrefix, node)
	if err != nil {
		return nil, err
	}
	if nt.exists.Load() {
		return nt, nil
	}
	fresh := func() bool { return time.Since(time.Unix(0, nt.checked.Load())) < b.topics.recheck }
	if !fresh() {
		nt.mu.Lock()
		if !nt.exists.Load() && !fresh() {
			err = b.checkTopic(ctx, nt)
		}
		nt.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	if !nt.exists.Load() {
		return nil, fmt.Errorf("kafka: node %q: %w", node, ErrUnknownNode)
	}
	return nt, nil
}

// checkTopic asks the brokers whether nt's topic exists.
func (b *Bus) checkTopic(ctx context.Context, nt *nodeTopic) error {
	details, err := b.adm.ListTopics(ctx, nt.name)
	if err != nil {
		return fmt.Errorf("kafka: metadata of %s: %w", nt.name, err)
	}
	if details.Has(nt.name) && details[nt.name].Err == nil {
		nt.exists.Store(true)
	} else {
		nt.setMissing()
	}
	return nil
}

// Subscribe installs h as the handler of node, replacing any other, and
// returns the function that removes it. The first Subscribe of a node
// creates its topic (1 partition; Config.NodeRetention) and starts one
// goroutine consuming it from its end at that moment, so every record
// produced after Subscribe returns reaches the handler; a replacing
// Subscribe only swaps the handler. h runs on that goroutine, one record
// at a time, and must not call cancel. cancel of a replaced subscription
// does nothing; after cancel returns h is not called again; calling it
// more than once is harmless. Safe for concurrent use.
func (b *Bus) Subscribe(node string, h chat.DeliveryHandler) (cancel func(), err error) {
	nt, err := b.topics.get(b.cfg.TopicPrefix, node)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	s := b.nodes[node]
	if s == nil {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.AdminTimeout)
		defer cancel()
		ends, err := b.ensureTopic(ctx, nt.name, 1, b.topicConfigs(b.cfg.NodeRetention, true))
		if err != nil {
			return nil, err
		}
		if s, err = b.startNodeSub(nt.name, ends[0]); err != nil {
			return nil, err
		}
		b.nodes[node] = s
		nt.exists.Store(true)
	}
	o := &owner{h: h}
	s.mu.Lock()
	s.owner = o
	s.mu.Unlock()
	return func() { b.unsubscribe(node, s, o) }, nil
}

func (b *Bus) unsubscribe(node string, s *nodeSub, o *owner) {
	b.mu.Lock()
	mine := b.nodes[node] == s && s.owner == o // s.owner changes under b.mu while s is in b.nodes
	if mine {
		delete(b.nodes, node)
	}
	b.mu.Unlock()
	if mine {
		s.stop()
	}
}

// nodeSub is the consumer of one node topic.
type nodeSub struct {
	b      *Bus
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.RWMutex // write-held to change owner, read-held while records are handled
	owner  *owner       // nil once stopped
	d      chat.Delivery
}

// owner is one Subscribe call's handler; its identity tells whether a
// cancel still owns the node.
type owner struct{ h chat.DeliveryHandler }

func (b *Bus) startNodeSub(topic string, from int64) (*nodeSub, error) {
	cl, err := kgo.NewClient(append(b.opts[:len(b.opts):len(b.opts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}),
		// Past retention (a consumer stalled for an hour) skip to the end:
		// deliveries are live or not at all.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer of %s: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &nodeSub{b: b, cl: cl, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx, topic)
	return s, nil
}

func (s *nodeSub) run(ctx context.Context, topic string) {
	defer close(s.done)
	for {
		fs := s.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			s.b.log.Warn("kafka: fetch failed", "topic", t, "partition", p, "err", err)
		})
		s.mu.RLock()
		if s.owner != nil {
			fs.EachRecord(s.handle)
		}
		s.mu.RUnlock()
	}
}

// handle dispatches one record by its kind. s.mu is read-held.
func (s *nodeSub) handle(r *kgo.Record) {
	v := r.Value
	if len(v) == 0 {
		s.bad(r, errBadDelivery)
		return
	}
	if !isDelivery(v[0]) {
		if h := s.b.kinds[v[0]].Load(); h != nil {
			(*h)(v[1:])
		} else {
			s.b.stats.unknownKinds.Add(1)
		}
		return
	}
	body := v[1:]
	s.d.Epoch, s.d.Partition = 0, 0
	if v[0] == KindPartitionDelivery {
		p, n := binary.Uvarint(body)
		if n <= 0 || p == 0 || p > maxPartition {
			s.bad(r, errBadDelivery)
			return
		}
		s.d.Partition, body = int(p), body[n:]
	}
	if v[0] != KindDelivery {
		epoch, n := binary.Uvarint(body)
		if n <= 0 || epoch == 0 {
			s.bad(r, errBadDelivery)
			return
		}
		s.d.Epoch, body = epoch, body[n:]
	}
	if err := decodeDelivery(body, &s.d); err != nil {
		s.bad(r, err)
		return
	}
	s.owner.h(&s.d)
	clear(s.d.Items) // do not keep the record alive through its strings
	s.d.Shared = nil
}

func (s *nodeSub) bad(r *kgo.Record, err error) {
	s.b.stats.badRecords.Add(1)
	s.b.log.Debug("kafka: skipping a bad node record", "topic", r.Topic, "offset", r.Offset, "err", err)
}

// stop ends the consumer: no handler call after it returns.
func (s *nodeSub) stop() {
	s.mu.Lock()
	s.owner = nil
	s.mu.Unlock()
	s.cancel()
	<-s.done
	s.cl.Close()
}
