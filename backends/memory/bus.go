package memory

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/switchboard/switchboard/chat"
)

var _ chat.Bus = (*Bus)(nil)

// Bus is an in-process chat.Bus. Publish calls the node's handler on the
// caller's goroutine, before it returns.
//
// The node table is copy-on-write: Publish is an atomic load and a map
// lookup, with no lock and no allocation; Subscribe and cancel, which run
// once per gateway node, copy the table.
type Bus struct {
	mu   sync.Mutex                               // serializes table writers
	subs atomic.Pointer[map[string]*subscription] // never nil after NewBus
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
