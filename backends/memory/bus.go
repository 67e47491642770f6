package memory

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/switchboard/switchboard/chat"
)

var (
	_ chat.Bus           = (*Bus)(nil)
	_ chat.StreamWatcher = (*Bus)(nil)
)

// Bus is an in-process chat.Bus. Publish calls the node's handler on the
// caller's goroutine, before it returns.
//
// The node table is copy-on-write: Publish is an atomic load and a map
// lookup, with no lock and no allocation; Subscribe and cancel, which run
// once per gateway node, copy the table.
type Bus struct {
	mu   sync.Mutex                               // serializes table writers
	subs atomic.Pointer[map[string]*subscription] // never nil after NewBus

	smu       sync.RWMutex
	consumers map[string][]*consumer // topic → consumers
	dropped   atomic.Int64
}

// StreamBuffer is how many values one consumer of a stream may have
// waiting; past it, Emit drops values for that consumer (Dropped counts
// them).
const StreamBuffer = 1 << 16

// consumer is one Consume call: a buffered queue drained by a goroutine.
type consumer struct {
	ch   chan streamValue
	stop chan struct{}
	once sync.Once
}

type streamValue struct {
	key   string
	value []byte
}

// subscription is one Subscribe call; cancel removes the node's entry only
// while it is still this one.
type subscription struct {
	h chat.DeliveryHandler
}

// NewBus returns an empty Bus.
func NewBus() *Bus {
	b := &Bus{}
	b.subs.Store(&map[string]*subscription{})
	return b
}

// Publish calls the handler subscribed for node with d and returns nil,
// or returns nil at once when there is none. The handler runs on the
// caller's goroutine, so it must not block (chat.DeliveryHandler). A
// Publish that started before a cancel returned may still reach the
// cancelled handler. ctx is not consulted: the call does not wait.
// Safe for concurrent use.
func (b *Bus) Publish(_ context.Context, node string, d *chat.Delivery) error {
	if s := (*b.subs.Load())[node]; s != nil {
		s.h(d)
	}
	return nil
}

// Subscribe installs h for node, replacing any other handler, and returns
// the function that removes it. The cancel of a replaced subscription does
// nothing; calling cancel more than once is harmless. Safe for concurrent
// use.
func (b *Bus) Subscribe(node string, h chat.DeliveryHandler) (cancel func(), err error) {
	s := &subscription{h: h}
	b.update(func(m map[string]*subscription) { m[node] = s })
	return func() {
		b.update(func(m map[string]*subscription) {
			if m[node] == s {
				delete(m, node)
			}
		})
	}, nil
}

// update publishes a modified copy of the node table.
func (b *Bus) update(edit func(map[string]*subscription)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	m := make(map[string]*subscription, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	edit(m)
	b.subs.Store(&m)
}

// Emit queues a copy of value for every consumer of topic and returns at
// once. A consumer with StreamBuffer values waiting loses this one
// (counted by Dropped). Safe for concurrent use.
func (b *Bus) Emit(topic, key string, value []byte) error {
	b.smu.RLock()
	defer b.smu.RUnlock()
	cs := b.consumers[topic]
	if len(cs) == 0 {
		return nil
	}
	v := streamValue{key: key, value: append([]byte(nil), value...)}
	for _, c := range cs {
		select {
		case c.ch <- v:
		default:
			b.dropped.Add(1)
		}
	}
	return nil
}

// Consume starts a goroutine that calls h with each value emitted to
// topic from now on, in emit order, until cancel, which returns once the
// values emitted before it have been handled. Safe for concurrent use.
func (b *Bus) Consume(topic string, h chat.StreamHandler) (cancel func(), err error) {
	c := &consumer{ch: make(chan streamValue, StreamBuffer), stop: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case v := <-c.ch:
				h(v.key, v.value)
			case <-c.stop:
				for { // what was emitted before cancel is still handled
					select {
					case v := <-c.ch:
						h(v.key, v.value)
					default:
						return
					}
				}
			}
		}
	}()
	b.smu.Lock()
	if b.consumers == nil {
		b.consumers = make(map[string][]*consumer)
	}
	b.consumers[topic] = append(b.consumers[topic], c)
	b.smu.Unlock()
	return func() {
		c.once.Do(func() {
			b.smu.Lock()
			b.consumers[topic] = slices.DeleteFunc(b.consumers[topic], func(x *consumer) bool { return x == c })
			b.smu.Unlock()
			close(c.stop)
			<-done
		})
	}, nil
}

// Dropped returns how many stream values were dropped for consumers that
// were StreamBuffer values behind. Safe for concurrent use.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// Consumed reports whether topic has a consumer. Safe for concurrent use.
func (b *Bus) Consumed(topic string) bool {
	b.smu.RLock()
	defer b.smu.RUnlock()
	return len(b.consumers[topic]) > 0
}
