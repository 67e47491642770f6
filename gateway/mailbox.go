package gateway

import (
	"context"
	"sync"
)

// What a mailbox item asks the loop to do.
const (
	itemWrite      = iota // write f to c
	itemDeliver           // a live inbox entry (seq, f) for c: the loop checks c's cursor
	itemRegistered        // c is registered; seq is its inbox head
	itemRead              // a page read from c's inbox
	itemClose             // fail c with ce
	itemTick              // sweep the loop's connections for timeouts
	itemPace              // retry reads that wait for their connection to drain
	itemCloseAll          // close every connection with ce (shutdown)
)

type mailItem struct {
	kind uint8
	c    *wsConn
	f    *outFrame // itemWrite, itemDeliver: the mailbox owns one reference
	tail *outFrame // itemWrite, itemDeliver: the shared rest of f's payload, or nil (one reference)
	seq  uint64
	read *readResult
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
				dropItem(&it)
			}
		}
	}
}

// dropItem releases what an item holds without acting on it.
func dropItem(it *mailItem) {
	if it.f != nil {
		it.f.release()
	}
	if it.tail != nil {
		it.tail.release()
	}
	if it.read != nil {
		for _, rf := range it.read.frames {
			rf.f.release()
		}
	}
}

// Run drains the mailbox on the loop (gnet.Runnable).
//
// Frames for a connection are gathered and flushed with one write (or
// writev) per connection at the end of the drain; any item that is not
// about frames first flushes what is gathered, so each connection sees its
// items in push order.
func (m *mailbox) Run(context.Context) error {
	m.mu.Lock()
	items := m.items
	m.items = m.spare[:0]
	m.scheduled = false
	m.mu.Unlock()
	l := m.l
	for i := range items {
		it := &items[i]
		switch it.kind {
		case itemWrite:
			l.queue(it.c, it.f, it.tail, 0)
		case itemDeliver:
			l.deliver(it.c, it.seq, it.f, it.tail)
		case itemRegistered:
			l.registered(it.c, it.seq)
		case itemRead:
			l.readDone(it.c, it.read)
		default:
			l.flush()
			l.handleItem(it)
		}
	}
	l.flush()
	l.pace()
	clear(items)
	m.spare = items[:0]
	return nil
}
