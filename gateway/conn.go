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
	pendTail   int32    // gathered frames (index+1 in loop.out), 0 for none
	fragOp     byte
	fragCount  int
	tokens     float64 // rate limiter
	refilled   int64
	flood      int // messages refused in a row

	// Delivery state, owned by the loop too. Frames go out in seq order
	// from cursor on; a gap is read from the store by a hub worker.
	registered   bool   // the hub has registered c and set cursor to the inbox head
	cursor       uint64 // highest seq sent in order
	reading      bool   // an inbox read (sync or gap fill) is in progress
	readGen      uint32 // read results from an older generation are dropped
	readWait     bool   // a read waits for c to drain, or for room in the job queue
	seenMax      uint64 // highest seq delivered while unregistered or reading
	syncReply    bool   // send synced when the read reaches the end
	syncID       []byte
	pendingSync  bool // a sync that arrived before registration
	pendingAfter uint64
	pendingID    []byte

	// Shared.
	closed atomic.Bool // set by the loop in OnClose
}

// send queues f for writing; it takes over the caller's reference.
// Safe for concurrent use.
func (c *wsConn) send(f *outFrame) {
	c.l.mb.push(mailItem{kind: itemWrite, c: c, f: f})
}

// closeWith asks the loop to fail c with ce. Safe for concurrent use.
func (c *wsConn) closeWith(ce *closeErr) {
	c.l.mb.push(mailItem{kind: itemClose, c: c, ce: ce})
}
