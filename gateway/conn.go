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

	// Owned by the loop. (Fields are ordered by size to keep the struct,
	// which every connection pays for, small.)
	prev, next *wsConn  // the loop's list of connections
	frag       *fragBuf // a fragmented message being assembled
	accepted   int64    // unix nanos
	lastRead   int64    // unix nanos of the last bytes read
	typingAt   int64    // unix nanos of the last typing frame forwarded
	closingAt  int64
	skip       uint64  // payload bytes still to discard
	tokens     float64 // rate limiter
	refilled   int64
	pendHead   int32 // during a mailbox drain: c's first and last
	pendTail   int32 // gathered frames (index+1 in loop.out), 0 for none
	fragCount  int32
	flood      int32 // messages refused in a row
	state      uint8
	fragOp     byte
	pinged     bool // a ping is out since lastRead

	// Delivery state, owned by the loop too. Frames go out in seq order
	// from cursor on; a gap is read from the store by a hub worker.
	registered bool // the hub has registered c and set cursor to the inbox head
	reading    bool // an inbox read (sync or gap fill) is in progress
	readWait   bool // a read waits for c to drain, or for room in the job queue
	syncReply  bool // send synced when the read reaches the end
	readGen    uint32
	cursor     uint64       // highest seq sent in order
	seenMax    uint64       // highest seq delivered while unregistered or reading
	syncID     []byte       // the id of the sync being answered
	pending    *pendingSync // a sync that arrived before registration

	// Shared.
	closed atomic.Bool // set by the loop in OnClose
	// epoch orders c against the other connections of its device (see
	// router.Route); set by the worker that registers c, before c enters
	// the hub's registry; 0 when the Directory hands out no epochs.
	epoch atomic.Uint64
}

// pendingSync is a sync frame received before the connection was
// registered; it runs once registration places the cursor.
type pendingSync struct {
	after uint64
	id    []byte
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
