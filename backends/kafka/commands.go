package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard/switchboard/cluster"
)

// CommandsConfig configures the command log: the topic gateways append
// requests to and the workers' consumer group reads (package cluster).
type CommandsConfig struct {
	// Group is the workers' consumer group. Default "<prefix>workers".
	Group string `yaml:"group" help:"the workers' consumer group (default <topic_prefix>workers)"`
	// SessionTimeout is how long the group waits for a silent worker
	// before it gives the worker's partition to another: the failover
	// time after a worker dies. Kafka's group.min.session.timeout.ms
	// (6s by default) bounds it below. Default 6s.
	SessionTimeout time.Duration `yaml:"session_timeout" help:"how long a dead worker keeps the command partition before another takes over (default 6s, Kafka's minimum)"`
	// DeliveryTimeout bounds how long an append not yet sent to a broker
	// waits for one before it fails (one already sent waits for its
	// answer: the idempotent producer may not give up on it). Either way
	// the client is never told "sent" before the worker's reply, and the
	// gateway answers "overloaded" after cluster.reply_timeout. Default 5s.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout" help:"how long a gateway's append not yet sent to a broker waits for one before failing (default 5s)"`
	// Retention is the command topic's retention.ms: how long a command
	// may wait for a worker. Default 7 days.
	Retention time.Duration `yaml:"retention" help:"retention of the command topic: how long commands wait for a worker (default 7 days)"`
	// CommitInterval is how often a worker commits the offset past the
	// commands it completed (and on every handover). Default 100ms.
	CommitInterval time.Duration `yaml:"commit_interval" help:"how often a worker commits its offset past completed commands (default 100ms)"`
	// Partitions is how many partitions the command topic has: how many
	// sequencers share the inboxes, each owned by one worker at a time
	// (chat.Route, chat.PartitionOf). It is fixed when the topic is
	// created: every user's inbox belongs to a partition by a hash of
	// the count. A process whose setting differs from the topic's
	// refuses to start. Default 1.
	Partitions int `yaml:"partitions" help:"partitions of the command topic: sequencers that share the inboxes, fixed when the topic is created (default 1)"`
}

func (c *CommandsConfig) setDefaults(prefix string) {
	if c.Group == "" {
		c.Group = prefix + "workers"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 5 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 100 * time.Millisecond
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
}

// Validate reports settings that cannot work.
func (c CommandsConfig) Validate() error {
	if c.Partitions < 0 || c.Partitions > 1024 {
		return fmt.Errorf("kafka: commands.partitions %d: must be from 1 to 1024", c.Partitions)
	}
	return nil
}

// CommandTopic returns the command log's topic name for prefix.
func CommandTopic(prefix string) string { return prefix + "commands" }

// Commands is the gateway's end of the command log: an idempotent
// producer with acks=all (cluster.Log). Safe for concurrent use.
type Commands struct {
	cl         *kgo.Client
	topic      string
	timeout    time.Duration // CommandsConfig.DeliveryTimeout
	partitions int
}

var _ cluster.Log = (*Commands)(nil)

// NewCommands connects to the brokers and makes sure the command topic
// exists, with cc.Partitions partitions.
func NewCommands(ctx context.Context, cfg Config, cc CommandsConfig) (*Commands, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cc.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cc.setDefaults(cfg.TopicPrefix)
	topic := CommandTopic(cfg.TopicPrefix)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cc.DeliveryTimeout),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// A partition whose leader the producer has not learned yet (a
		// topic just created, a leader just moved) is asked about again
		// this soon, not after franz-go's 5 s, which is as long as an
		// append may wait (DeliveryTimeout).
		kgo.MetadataMinAge(metadataMinAge),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if err := ensureCommandTopic(ctx, cl, cfg, cc, topic); err != nil {
		cl.Close()
		return nil, err
	}
	return &Commands{cl: cl, topic: topic, timeout: cc.DeliveryTimeout, partitions: cc.Partitions}, nil
}

// Partitions returns the command topic's partition count (cluster.Log).
func (c *Commands) Partitions() int { return c.partitions }

func ensureCommandTopic(ctx context.Context, cl *kgo.Client, cfg Config, cc CommandsConfig, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.AdminTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	minISR := strconv.Itoa(cfg.MinInsyncReplicas)
	retention := strconv.FormatInt(cc.Retention.Milliseconds(), 10)
	res, err := adm.CreateTopic(ctx, int32(cc.Partitions), int16(cfg.ReplicationFactor),
		map[string]*string{"min.insync.replicas": &minISR, "retention.ms": &retention}, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create the command topic %s: %w", topic, err)
	}
	// An existing topic must have the partitions this process counts:
	// with another count, it would take users' inboxes for another
	// partition's. A topic just created may not have a leader for every
	// partition yet: wait for them, or the first appends would wait for
	// the producer's next metadata refresh.
	var td kadm.TopicDetails
	for {
		td, err = adm.ListTopics(ctx, topic)
		if err == nil {
			err = td.Error()
		}
		if err == nil && len(td[topic].Partitions) > 0 && allLed(td[topic].Partitions) {
			break
		}
		if ctx.Err() != nil {
			if err == nil {
				err = errors.New("a partition has no leader")
			}
			return fmt.Errorf("kafka: describe the command topic %s: %w", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(td[topic].Partitions); n != cc.Partitions {
		return fmt.Errorf("kafka: the command topic %s has %d partitions and commands.partitions is %d: "+
			"the count is fixed when the topic is created (each user's inbox belongs to a partition by it); set commands.partitions to %d",
			topic, n, cc.Partitions, n)
	}
	return nil
}

// allLed reports whether every partition has a leader.
func allLed(ps kadm.PartitionDetails) bool {
	for _, p := range ps {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// Append appends value to partition p (cluster.Log): done gets nil once every
// in-sync replica has it, or the error. With MaxBufferedRecords already
// waiting, done gets kgo.ErrMaxBuffered at once (from franz-go's promise
// goroutine); Append itself never blocks and always returns nil. While no
// broker answers, a record that was already sent waits (the idempotent
// producer may not give up on it without risking its sequence), so the
// gateway's reply timeout, not this, bounds what the client waits.
func (c *Commands) Append(p int, value []byte, done func(error)) error {
	if p < 0 || p >= c.partitions {
		return fmt.Errorf("kafka: no command partition %d (of %d)", p, c.partitions)
	}
	// The deadline travels with the record: franz-go fails a record whose
	// context ended if it was never sent (or was answered), which is how
	// an append gives up while no broker answers; RecordDeliveryTimeout is
	// only checked around requests, so with every broker down it would
	// wait forever.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	c.cl.TryProduce(ctx, &kgo.Record{Partition: int32(p), Value: value}, func(_ *kgo.Record, err error) {
		cancel()
		done(err)
	})
	return nil
}

// Close flushes what is buffered (bounded by ctx) and disconnects.
func (c *Commands) Close(ctx context.Context) {
	c.cl.Flush(ctx)
	c.cl.Close()
}

// Partition is a worker's ownership of the command partition, from its
// assignment to its revocation: a fresh sequencer (chat.Service) behind a
// cluster.Worker, its store writes fenced by a new epoch.
type Partition interface {
	// Handle is cluster.Worker.Handle.
	Handle(ctx context.Context, value []byte, at time.Time, done func()) error
	// Close completes every command handed over (their writes durable,
	// their done called) and stops the sequencer.
	Close()
}

// Claim starts the ownership of partition p, taken over from whoever had
// it: it fences the previous owner (a writer epoch) and returns the
// sequencer to feed.
type Claim func(ctx context.Context, p int32) (Partition, error)

// ConsumeCommands runs a worker of the consumer group until ctx ends:
// while it owns the command partition it hands each command, in order, to
// the Partition its claim returned, and commits the partition's offset
// past the commands that completed, never past one that did not. On a
// revocation it completes what it holds and commits before letting go;
// on a loss (its session expired: another worker may own the partition
// already) it stops without committing.
func ConsumeCommands(ctx context.Context, cfg Config, cc CommandsConfig, claim Claim) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	cc.setDefaults(cfg.TopicPrefix)
	log := cfg.Logger
	topic := CommandTopic(cfg.TopicPrefix)
	c := &cmdConsumer{topic: topic, claim: claim, owned: map[int32]*owned{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.ConsumerGroup(cc.Group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(cc.SessionTimeout),
		kgo.HeartbeatInterval(cc.SessionTimeout/6),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		// A worker dies with its offsets uncommitted past what it
		// completed: at least once, never "at most once".
		kgo.RequireStableFetchOffsets(),
	)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	c.cl = cl
	defer closeWithin(cl.CloseAllowingRebalance, closeTimeout, log, topic)
	if err := ensureCommandTopic(ctx, cl, cfg, cc, topic); err != nil {
		return err
	}
	log.Info("worker consuming commands", "topic", topic, "group", cc.Group)

	commitDone := make(chan struct{})
	go func() { // commits while records complete between polls
		defer close(commitDone)
		t := time.NewTicker(cc.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.commit(ctx)
			}
		}
	}()
	defer func() { <-commitDone }()

	for {
		fs := cl.PollRecords(ctx, 1024)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			c.releaseAll()
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("fetching commands", "topic", t, "partition", p, "err", err)
		})
		var herr error
		fs.EachRecord(func(r *kgo.Record) {
			if herr != nil {
				return
			}
			o := c.get(r.Partition)
			if o == nil {
				return // not ours (any more)
			}
			off := r.Offset
			o.offs.Add(off)
			herr = o.part.Handle(ctx, r.Value, r.Timestamp, func() { o.offs.Done(off) })
		})
		cl.AllowRebalance()
		if herr != nil {
			if ctx.Err() != nil {
				c.releaseAll()
				return nil
			}
			return fmt.Errorf("kafka: handing a command over: %w", herr)
		}
	}
}

type owned struct {
	part Partition
	offs *cluster.Offsets

	mu        sync.Mutex // serializes commits: the ticker's and the handover's
	committed int64
}

type cmdConsumer struct {
	cl    *kgo.Client
	topic string
	claim Claim

	mu    sync.Mutex
	owned map[int32]*owned
}

func (c *cmdConsumer) get(p int32) *owned {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned[p]
}

func (c *cmdConsumer) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	for _, p := range m[c.topic] {
		part, err := c.claim(ctx, p)
		if err != nil {
			// Without the fence it must not write: give the partition
			// back by leaving; the group reassigns it.
			c.cl.LeaveGroupContext(nil) //nolint:staticcheck // a nil ctx triggers the leave without waiting, as the callback requires
			return
		}
		c.mu.Lock()
		c.owned[p] = &owned{part: part, offs: cluster.NewOffsets(), committed: -1}
		c.mu.Unlock()
	}
}

// revoked and lost are called at the end of every group session, with
// the partitions that actually leave this member (under the cooperative
// balancer, often none).
func (c *cmdConsumer) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	if ps := m[c.topic]; len(ps) > 0 {
		c.release(ctx, ps, true)
	}
}

func (c *cmdConsumer) lost(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	if ps := m[c.topic]; len(ps) > 0 {
		c.release(ctx, ps, false)
	}
}

// releaseAll hands every owned partition back on the way out, its last
// commit bounded: a worker that cannot reach the coordinator stops
// anyway (its successor then repeats the uncommitted commands, as after
// a crash).
func (c *cmdConsumer) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.release(ctx, nil, true)
}

// release completes and stops the owned partitions ps (nil: all),
// committing each one's offset first when commit is set.
func (c *cmdConsumer) release(ctx context.Context, ps []int32, commit bool) {
	c.mu.Lock()
	held := map[int32]*owned{}
	for p, o := range c.owned {
		if ps == nil || slices.Contains(ps, p) {
			held[p] = o
			delete(c.owned, p)
		}
	}
	c.mu.Unlock()
	for p, o := range held {
		o.part.Close()
		if commit {
			c.commitOne(ctx, p, o)
		}
	}
}

// commit commits every owned partition's completed offset that moved.
func (c *cmdConsumer) commit(ctx context.Context) {
	c.mu.Lock()
	held := make(map[int32]*owned, len(c.owned))
	for p, o := range c.owned {
		held[p] = o
	}
	c.mu.Unlock()
	for p, o := range held {
		c.commitOne(ctx, p, o)
	}
}

func (c *cmdConsumer) commitOne(ctx context.Context, p int32, o *owned) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := o.offs.Committable()
	if next < 0 || next == o.committed {
		return
	}
	var cerr error
	c.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.topic: {p: {Epoch: -1, Offset: next}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, pr := range t.Partitions {
					if err := kerr.ErrorForCode(pr.ErrorCode); err != nil {
						cerr = err
					}
				}
			}
		})
	if cerr == nil {
		o.committed = next
	}
}
