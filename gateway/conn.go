package gateway

import (
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
)

// Connection states, owned by the loop.
const (
	stateHandshake = iota // reading the HTTP request
	stateHTTP             // a plain HTTP request is being answered
	stateOpen             // WebSocket open
	stateClosing          // our close frame is sent; waiting for the peer's
)

// wsConn is the gateway's state for one TCP connection. Fields are grouped
// by the goroutine that owns them.
type wsConn struct {
	// Set once before the connection is shared.
	gc     gnet.Conn
	l      *loop
	id     uint64
	user   string
	device string

	// Owned by the loop.
	state      uint8
	prev, next *wsConn // the loop's list of connections
	accepted   int64   // unix nanos
	lastRead   int64   // unix nanos of the last bytes read
	pinged     bool    // a ping is out since lastRead
	closingAt  int64
	skip       uint64   // payload bytes still to discard
	frag       *fragBuf // a fragmented message being assembled
	pendHead   int32    // during a mailbox drain: c's first and last
	pendTail   int32    // gathered writes (index+1), 0 for none
	fragOp     byte
	fragCount  int
	tokens     float64 // rate limiter
	refilled   int64
	flood      int // messages refused in a row

	// Owned by the hub shard of user. Frames go out in seq order from
	// cursor on; a gap is filled from the store.
	cursor    uint64 // highest seq sent in order
	syncing   bool   // a sync or gap fill is reading the inbox
	syncReply bool   // send synced when the read reaches the end
	syncID    []byte
	queuedCon bool // in the shard's continuation list

	// Shared.
	closed      atomic.Bool  // set by the loop in OnClose
	queued      atomic.Int64 // bytes pushed to the mailbox, not yet written
	outBuffered atomic.Int64 // the loop's last reading of gnet's outbound buffer
}

// send queues f for writing; it takes over the caller's reference.
// Safe for concurrent use.
func (c *wsConn) send(f *outFrame) {
	c.queued.Add(int64(len(f.bytes())))
	c.l.mb.push(mailItem{kind: itemWrite, c: c, f: f})
}

// closeWith asks the loop to fail c with ce. Safe for concurrent use.
func (c *wsConn) closeWith(ce *closeErr) {
	c.l.mb.push(mailItem{kind: itemClose, c: c, ce: ce})
}

// pendingOut estimates the bytes waiting to reach c's socket.
func (c *wsConn) pendingOut() int64 { return c.queued.Load() + c.outBuffered.Load() }
