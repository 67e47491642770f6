package gateway

import (
	"context"
	"sync"
)

// What a mailbox item asks the loop to do.
const (
	itemWrite    = iota // write f to c
	itemClose           // fail c with ce
	itemProbe           // refresh c's view of its socket's outbound bytes
	itemTick            // sweep the loop's connections for timeouts
	itemCloseAll        // close every connection with ce (shutdown)
)

type mailItem struct {
	kind uint8
	next int32 // itemWrite, during Run: index+1 of c's next write, 0 for none
	c    *wsConn
	f    *outFrame // itemWrite: the mailbox owns one reference
	ce   *closeErr
}

// mailbox is how other goroutines reach an event loop: they push items;
// the first push into an empty mailbox schedules one Run on the loop, which
// takes everything queued by then. A burst of frames costs one wake-up.
type mailbox struct {
	l         *loop
	mu        sync.Mutex
	items     []mailItem
	spare     []mailItem // owned by Run
	scheduled bool
}

// push queues it for the loop. Safe for concurrent use.
func (m *mailbox) push(it mailItem) {
	m.mu.Lock()
	m.items = append(m.items, it)
	wake := !m.scheduled
	m.scheduled = true
	m.mu.Unlock()
	if wake {
		if err := m.l.el.Execute(context.Background(), m); err != nil {
			// The engine is stopping: nothing will run again.
			m.mu.Lock()
			items := m.items
			m.items = nil
			m.mu.Unlock()
			for _, it := range items {
				if it.f != nil {
					it.f.release()
				}
			}
		}
	}
}

// Run drains the mailbox on the loop (gnet.Runnable).
func (m *mailbox) Run(context.Context) error {
	m.mu.Lock()
	items := m.items
	m.items = m.spare[:0]
	m.scheduled = false
	m.mu.Unlock()
	// Writes are gathered per connection and flushed with one write (or
	// writev) each; any other item first flushes what is gathered, so each
	// connection sees its items in push order.
	l := m.l
	for i := range items {
		it := &items[i]
		if it.kind != itemWrite {
			l.flush(items)
			l.handleItem(it)
			continue
		}
		c := it.c
		if c.pendTail == 0 {
			c.pendHead = int32(i + 1)
			l.touched = append(l.touched, c)
		} else {
			items[c.pendTail-1].next = int32(i + 1)
		}
		c.pendTail = int32(i + 1)
	}
	l.flush(items)
	clear(items)
	m.spare = items[:0]
	return nil
}
