package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/switchboard/switchboard/chat"
)

// Log is the command log as a gateway sees it: durable, ordered within
// each partition.
type Log interface {
	// Append appends value to partition of the log. It calls done exactly
	// once, from any goroutine, with nil once the record is durable
	// (acknowledged by every in-sync replica) or with the error that
	// stopped it; value must stay unchanged until then. Append
	// itself never blocks: when the record cannot even be queued it
	// returns the error and does not call done.
	Append(partition int, value []byte, done func(error)) error
	// Partitions returns how many partitions the log has (chat.Route
	// picks one per request).
	Partitions() int
}

// Reader is what a gateway reads itself, without a round trip through
// the workers: the inboxes, for sync. chat.Store has it.
type Reader interface {
	ReadInbox(ctx context.Context, user string, after uint64, limit int, fn func(seq uint64, frame []byte) error) error
	LastSeq(ctx context.Context, user string) (uint64, error)
}

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// Node is the gateway node that replies come back to: the node the
	// gateway subscribed to on the bus. Required.
	Node string `yaml:"-"`
	// ReplyTimeout is how long a request waits for its reply before it
	// completes with chat.ErrOverloaded ("retry later with the same id";
	// a send that did commit meanwhile is then answered as a duplicate,
	// with its id). Default 10s.
	ReplyTimeout time.Duration `yaml:"reply_timeout" help:"how long a gateway waits for a worker's reply before answering overloaded (default 10s)"`
	// MaxPending bounds the requests waiting for a reply; past it Submit
	// returns chat.ErrOverloaded. Default 65536.
	MaxPending int `yaml:"max_pending" help:"requests a gateway keeps waiting for workers' replies; past it clients get overloaded (default 65536)"`
}

func (c *RemoteConfig) setDefaults() {
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = 10 * time.Second
	}
	if c.MaxPending == 0 {
		c.MaxPending = 1 << 16
	}
}

// Validate reports the first invalid field.
func (c RemoteConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.Node == "":
		return errors.New("cluster: node is required")
	case c.ReplyTimeout < 0:
		return fmt.Errorf("cluster: reply_timeout %s: must be positive", c.ReplyTimeout)
	case c.MaxPending < 0:
		return fmt.Errorf("cluster: max_pending %d: must be positive", c.MaxPending)
	}
	return nil
}

// Remote is the messaging core as a gateway of a distributed deployment
// sees it: it implements what gateway.Service needs by appending each
// request to the command log, for the worker that owns the sequencer, and
// completing it when that worker's reply arrives (OnReply). So a client's
// "sent" ack means what it means on one box: the message is durable in
// the store, which implies Kafka acknowledged the command first.
//
// A request whose command the log refuses or fails completes with
// chat.ErrOverloaded at once: no false ack, and the gateway holds nothing
// for it. One whose reply does not come within ReplyTimeout (a worker
// failing over) completes with chat.ErrOverloaded too; the client resends
// with the same id, and the worker answers a send that did commit as a
// duplicate. Requests waiting are bounded by MaxPending.
//
// All methods are safe for concurrent use.
type Remote struct {
	cfg   RemoteConfig
	core  chat.Config
	log   Log
	read  Reader
	slog  *slog.Logger
	incar uint64 // high bits of every corr: replies meant for an earlier process are ignored

	next atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]*pending
	closed  bool

	stop chan struct{}
	wg   sync.WaitGroup

	stats   RemoteStats
	metrics *Metrics
}

// RemoteStats counts what a Remote did; read with Stats.
type RemoteStats struct {
	Submitted, Replied, Refused, Failed, TimedOut, Stale, BadReplies atomic.Uint64
}

type pending struct {
	r        *chat.Request
	start    int64 // unix ns
	deadline int64 // unix ns
	buf      *bytebufferpool.ByteBuffer
}

// NewRemote returns a Remote appending to log and reading inboxes from
// read. core is the messaging configuration the gateway checks frames
// against (its body limit): the workers' own, with defaults filled in.
// m may be nil.
func NewRemote(cfg RemoteConfig, core chat.Config, log Log, read Reader, m *Metrics, logger *slog.Logger) (*Remote, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	rm := &Remote{
		cfg: cfg, core: core.WithDefaults(), log: log, read: read, slog: logger,
		incar:   uint64(rand.Uint32()|1) << 32,
		pending: make(map[uint64]*pending),
		stop:    make(chan struct{}),
		metrics: m,
	}
	rm.wg.Add(1)
	go rm.sweep()
	return rm, nil
}

// Submit appends r's command and returns; r.Done is called once the
// reply arrives, the log refuses it, or ReplyTimeout passes. It never
// blocks.
func (rm *Remote) Submit(r *chat.Request) error {
	corr := rm.incar | rm.next.Add(1)&0xffffffff
	now := time.Now().UnixNano()
	p := &pending{r: r, start: now, deadline: now + int64(rm.cfg.ReplyTimeout), buf: bytebufferpool.Get()}
	p.buf.B = AppendCommand(p.buf.B[:0], rm.cfg.Node, corr, r)

	rm.mu.Lock()
	if rm.closed {
		rm.mu.Unlock()
		bytebufferpool.Put(p.buf)
		return chat.ErrShuttingDown
	}
	if len(rm.pending) >= rm.cfg.MaxPending {
		rm.mu.Unlock()
		bytebufferpool.Put(p.buf)
		rm.stats.Refused.Add(1)
		return chat.ErrOverloaded
	}
	rm.pending[corr] = p
	rm.mu.Unlock()

	err := rm.log.Append(chat.Route(r, rm.log.Partitions()), p.buf.B, func(err error) {
		if err != nil {
			rm.slog.Debug("command not appended", "err", err)
			rm.stats.Failed.Add(1)
			rm.complete(corr, chat.Result{Err: chat.ErrOverloaded}, false)
		}
		bytebufferpool.Put(p.buf)
	})
	if err != nil {
		rm.mu.Lock()
		delete(rm.pending, corr)
		rm.mu.Unlock()
		bytebufferpool.Put(p.buf)
		rm.stats.Refused.Add(1)
		return chat.ErrOverloaded
	}
	rm.stats.Submitted.Add(1)
	return nil
}

// OnReply completes the request a reply answers. A reply for a request
// that is no longer waiting (timed out, or sent before this process
// started) is dropped. Call it from the node's subscription; payload is
// not retained.
func (rm *Remote) OnReply(payload []byte) {
	corr, res, err := DecodeReply(payload)
	if err != nil {
		rm.stats.BadReplies.Add(1)
		rm.slog.Warn("bad reply on the node's topic", "err", err)
		return
	}
	if res.Data != nil {
		res.Data = append([]byte(nil), res.Data...) // the completer may keep it
	}
	if rm.complete(corr, res, true) {
		rm.stats.Replied.Add(1)
	} else {
		rm.stats.Stale.Add(1)
	}
}

// complete removes corr's request and completes it, first observing its
// time if it was replied; false if it was not waiting. Whoever removes it
// completes it, so exactly once.
func (rm *Remote) complete(corr uint64, res chat.Result, replied bool) bool {
	rm.mu.Lock()
	p, ok := rm.pending[corr]
	delete(rm.pending, corr)
	rm.mu.Unlock()
	if !ok {
		return false
	}
	if replied && rm.metrics != nil {
		rm.metrics.requestSeconds.Observe(float64(time.Now().UnixNano()-p.start) / 1e9)
	}
	p.r.Done.Complete(p.r, res)
	return true
}

func (rm *Remote) sweep() {
	defer rm.wg.Done()
	t := time.NewTicker(rm.cfg.ReplyTimeout / 10)
	defer t.Stop()
	var late []uint64
	for {
		select {
		case <-rm.stop:
			return
		case now := <-t.C:
			late = late[:0]
			rm.mu.Lock()
			for corr, p := range rm.pending {
				if p.deadline <= now.UnixNano() {
					late = append(late, corr)
				}
			}
			rm.mu.Unlock()
			for _, corr := range late {
				if rm.complete(corr, chat.Result{Err: chat.ErrOverloaded}, false) {
					rm.stats.TimedOut.Add(1)
				}
			}
			if len(late) > 0 {
				rm.slog.Warn("requests got no reply in time", "n", len(late), "reply_timeout", rm.cfg.ReplyTimeout)
			}
		}
	}
}

// Pending returns how many requests wait for a reply.
func (rm *Remote) Pending() int {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	return len(rm.pending)
}

// Stats returns the Remote's counters.
func (rm *Remote) Stats() *RemoteStats { return &rm.stats }

// ReadInbox reads user's inbox from the store; see chat.Store.
func (rm *Remote) ReadInbox(ctx context.Context, user string, after uint64, limit int, fn func(seq uint64, frame []byte) error) error {
	return rm.read.ReadInbox(ctx, user, after, limit, fn)
}

// LastSeq returns the highest durable seq of user's inbox.
func (rm *Remote) LastSeq(ctx context.Context, user string) (uint64, error) {
	return rm.read.LastSeq(ctx, user)
}

// Config returns the messaging configuration.
func (rm *Remote) Config() chat.Config { return rm.core }

// Close stops taking requests and completes those still waiting with
// chat.ErrShuttingDown.
func (rm *Remote) Close() error {
	rm.mu.Lock()
	if rm.closed {
		rm.mu.Unlock()
		return nil
	}
	rm.closed = true
	left := rm.pending
	rm.pending = make(map[uint64]*pending)
	rm.mu.Unlock()
	close(rm.stop)
	rm.wg.Wait()
	for _, p := range left {
		p.r.Done.Complete(p.r, chat.Result{Err: chat.ErrShuttingDown})
	}
	return nil
}
