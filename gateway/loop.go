package gateway

import (
	"bytes"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

// loop is the gateway's state for one gnet event loop. Everything in it is
// owned by that loop's goroutine, except mb which others push into.
type loop struct {
	g  *Gateway
	el gnet.EventLoop
	mb mailbox

	head *wsConn // list of the loop's connections
	n    int

	touched []*wsConn // connections with writes gathered in this drain
	iov     [][]byte

	dec     protocol.Decoder
	req     protocol.Request
	scratch []byte // frames written directly on the loop

	// Handshake state for the connection being upgraded.
	upgrader ws.Upgrader
	cur      *wsConn
	token    []byte
	origin   []byte
	hsIn     bytes.Reader
	hsOut    bytes.Buffer
}

func (l *loop) add(c *wsConn) {
	c.next = l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
	l.n++
}

func (l *loop) remove(c *wsConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.head == c {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	l.n--
}

// traffic handles readable bytes on c.
func (l *loop) traffic(c *wsConn, now int64) gnet.Action {
	c.lastRead, c.pinged = now, false
	switch c.state {
	case stateHandshake:
		act := l.handshake(c, now)
		if act != gnet.None || c.state != stateOpen || c.gc.InboundBuffered() == 0 {
			return act
		}
		return l.frames(c, now)
	case stateOpen, stateClosing:
		return l.frames(c, now)
	default: // stateHTTP: nothing more is read
		c.gc.Discard(-1)
		return gnet.None
	}
}

// frames parses and handles every complete frame buffered on c.
func (l *loop) frames(c *wsConn, now int64) gnet.Action {
	gc := c.gc
	maxFrame := uint64(l.g.cfg.MaxFrameBytes)
	for {
		if c.skip > 0 {
			n := min(c.skip, uint64(gc.InboundBuffered()))
			gc.Discard(int(n))
			c.skip -= n
			if c.skip > 0 {
				return gnet.None
			}
		}
		avail := gc.InboundBuffered()
		if avail < 2 {
			return gnet.None
		}
		hb, _ := gc.Peek(min(avail, 14))
		limit := maxFrame
		if c.state == stateClosing {
			limit = 1<<63 - 1 // only looking for the close frame; payloads are skipped
		}
		h, ok, ce := parseHeader(hb, limit)
		if ce != nil {
			if c.state == stateClosing {
				return gnet.Close
			}
			if ce == errFrameTooBig {
				// Skip the payload as it arrives, so the peer can still read
				// our close frame and answer it.
				c.skip = uint64(h.size) + h.length
			}
			return l.fail(c, ce, now)
		}
		if !ok {
			return gnet.None
		}
		if c.state == stateClosing && h.op != opClose {
			c.skip = uint64(h.size) + h.length
			continue
		}
		total := h.size + int(h.length)
		if avail < total {
			return gnet.None
		}
		buf, _ := gc.Peek(total)
		payload := buf[h.size:total]
		ws.Cipher(payload, h.mask, 0)
		act := l.frame(c, &h, payload, now)
		gc.Discard(total)
		if act != gnet.None {
			return act
		}
	}
}

// frame handles one complete frame whose payload is unmasked.
func (l *loop) frame(c *wsConn, h *header, payload []byte, now int64) gnet.Action {
	g := l.g
	g.m.framesIn.Inc()
	switch h.op {
	case opPing:
		l.scratch = appendHeader(l.scratch[:0], opPong, len(payload))
		l.scratch = append(l.scratch, payload...)
		c.gc.Write(l.scratch)
		return gnet.None
	case opPong:
		return gnet.None
	case opClose:
		code, ce := checkClosePayload(payload)
		if ce != nil {
			return l.fail(c, ce, now)
		}
		if c.state == stateOpen {
			// Echo the peer's code (RFC 6455 §5.5.1), then close.
			l.scratch = appendClose(l.scratch[:0], code, "")
			c.gc.Write(l.scratch)
			g.m.closes(code).Inc()
		}
		return gnet.Close
	case opBinary:
		return l.fail(c, errBinary, now)
	case opText:
		if c.fragOp != 0 {
			return l.fail(c, errNotContinued, now)
		}
		if h.fin {
			return l.message(c, payload, now)
		}
		c.fragOp, c.fragCount = opText, 1
		c.frag = getFragBuf()
		c.frag.b = append(c.frag.b, payload...)
		return gnet.None
	default: // continuation
		if c.fragOp == 0 {
			return l.fail(c, errContinuation, now)
		}
		c.fragCount++
		if c.fragCount > g.cfg.MaxFragments {
			return l.fail(c, errTooManyFrags, now)
		}
		if len(c.frag.b)+len(payload) > g.cfg.MaxMessageBytes {
			return l.fail(c, errMessageTooBig, now)
		}
		c.frag.b = append(c.frag.b, payload...)
		if !h.fin {
			return gnet.None
		}
		act := l.message(c, c.frag.b, now)
		c.dropFrag()
		return act
	}
}

// message handles one complete text message.
func (l *loop) message(c *wsConn, data []byte, now int64) gnet.Action {
	if !utf8.Valid(data) {
		return l.fail(c, errInvalidUTF8, now)
	}
	g := l.g
	r := &l.req
	if e := l.dec.Decode(data, r); e != nil {
		l.writeError(c, r.ID, e.Code, e.Message)
		return gnet.None
	}
	if !c.allow(now, g.cfg.MessageRate, g.cfg.MessageBurst) {
		c.flood++
		if c.flood > g.cfg.MessageBurst {
			return l.fail(c, errRateFlood, now)
		}
		l.writeError(c, r.ID, protocol.CodeRateLimited, "over the message rate limit: retry later with the same id")
		return gnet.None
	}
	c.flood = 0
	if g.draining.Load() {
		l.writeError(c, r.ID, protocol.CodeShuttingDown, "server shutting down: reconnect and retry")
		return gnet.None
	}
	switch r.Type {
	case protocol.TypeSend:
		g.m.sends.Inc()
		if msg := g.checkSend(r); msg != "" {
			l.writeError(c, r.ID, protocol.CodeBadRequest, msg)
			return gnet.None
		}
		q := getReq(c, now, len(r.ID)+len(r.To)+len(r.Body))
		q.Kind = chat.KindSend
		q.ClientID = q.keep(r.ID)
		q.To = q.keep(r.To)
		q.Body = q.keep(r.Body)
		l.submit(c, q, r.ID)
	case protocol.TypeReceipt:
		g.m.receipts.Inc()
		status, ok := chat.ParseStatus(r.Status)
		switch {
		case !ok:
			l.writeError(c, r.ID, protocol.CodeBadRequest, `"status" must be "delivered" or "read"`)
			return gnet.None
		case len(r.MsgIDs) == 0:
			l.writeError(c, r.ID, protocol.CodeBadRequest, `"msg_ids" must list at least one message id`)
			return gnet.None
		case r.HasID && !validID(r.ID):
			l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadID)
			return gnet.None
		}
		need := len(r.ID)
		for _, id := range r.MsgIDs {
			need += len(id)
		}
		q := getReq(c, now, need)
		q.Kind = chat.KindReceipt
		q.Status = status
		q.ack = r.HasID
		q.ClientID = q.keep(r.ID)
		for _, id := range r.MsgIDs {
			q.MsgIDs = append(q.MsgIDs, q.keep(id))
		}
		l.submit(c, q, r.ID)
	case protocol.TypeSync:
		g.m.syncs.Inc()
		if r.HasID && !validID(r.ID) {
			l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadID)
			return gnet.None
		}
		if !g.hub.sync(c, r.After, r.ID) {
			l.writeError(c, r.ID, protocol.CodeOverloaded, "server overloaded: retry the sync later")
		}
	default:
		if !r.HasType {
			l.writeError(c, r.ID, protocol.CodeBadRequest, `missing "type"`)
		} else {
			l.writeError(c, r.ID, protocol.CodeUnknownType, "unknown frame type")
		}
	}
	return gnet.None
}

func (l *loop) submit(c *wsConn, q *request, id []byte) {
	err := l.g.svc.Submit(&q.Request)
	if err == nil {
		return
	}
	putReq(q)
	code, msg := errorCode(err)
	l.writeError(c, id, code, msg)
}

// writeError writes an error frame to c directly (we are on its loop).
func (l *loop) writeError(c *wsConn, id []byte, code, message string) {
	l.g.m.errorFrames(code).Inc()
	if cap(l.scratch) < 1024 {
		l.scratch = make([]byte, 0, 4096)
	}
	p := protocol.AppendError(l.scratch[:maxHeader], id, code, message)
	n := len(p) - maxHeader
	off := maxHeader - headerLen(n)
	appendHeader(p[off:off], opText, n)
	l.scratch = p
	c.gc.Write(p[off:])
}

// fail sends a close frame with ce and starts the closing handshake: the
// connection is closed when the peer answers or after CloseTimeout.
func (l *loop) fail(c *wsConn, ce *closeErr, now int64) gnet.Action {
	l.g.m.closes(ce.code).Inc()
	if c.state != stateOpen {
		return gnet.Close
	}
	c.dropFrag()
	l.scratch = appendClose(l.scratch[:0], ce.code, ce.reason)
	c.gc.Write(l.scratch)
	// A slow consumer gets its close frame after what is queued; if it
	// never reads, CloseTimeout ends it. Nothing more is queued meanwhile.
	c.state, c.closingAt = stateClosing, now
	return gnet.None
}

// handleItem runs one mailbox item on the loop.
func (l *loop) handleItem(it *mailItem) {
	c := it.c
	switch it.kind {
	case itemClose:
		if !c.closed.Load() && l.fail(c, it.ce, time.Now().UnixNano()) == gnet.Close {
			c.gc.Close()
		}
	case itemProbe:
		if !c.closed.Load() {
			c.outBuffered.Store(int64(c.gc.OutboundBuffered()))
		}
	case itemTick:
		l.sweep(time.Now().UnixNano())
	case itemCloseAll:
		now := time.Now().UnixNano()
		for c := l.head; c != nil; c = c.next {
			if l.fail(c, it.ce, now) == gnet.Close {
				c.gc.Close()
			}
		}
	}
}

// maxIOV bounds the buffers of one writev (the kernel's IOV_MAX is 1024).
const maxIOV = 512

// flush writes the frames gathered per connection during a mailbox
// drain, one write or writev per connection, and releases them.
func (l *loop) flush(items []mailItem) {
	for _, c := range l.touched {
		open := !c.closed.Load() && c.state == stateOpen
		total, n := 0, 0
		l.iov = l.iov[:0]
		for i := c.pendHead; i != 0; i = items[i-1].next {
			b := items[i-1].f.bytes()
			total += len(b)
			n++
			if open {
				l.iov = append(l.iov, b)
			}
		}
		c.queued.Add(-int64(total))
		if open {
			if c.gc.OutboundBuffered()+total > l.g.cfg.MaxOutboundBytes {
				if l.fail(c, errSlowConsumer, time.Now().UnixNano()) == gnet.Close {
					c.gc.Close()
				}
			} else {
				for iov := l.iov; len(iov) > 0; {
					k := min(len(iov), maxIOV)
					if k == 1 {
						c.gc.Write(iov[0])
					} else {
						c.gc.Writev(iov[:k])
					}
					iov = iov[k:]
				}
				l.g.m.framesOut.Add(float64(n))
				if !c.closed.Load() {
					c.outBuffered.Store(int64(c.gc.OutboundBuffered()))
				}
			}
		}
		for i := c.pendHead; i != 0; i = items[i-1].next {
			items[i-1].f.release()
		}
		c.pendHead, c.pendTail = 0, 0
	}
	clear(l.iov)
	clear(l.touched)
	l.touched = l.touched[:0]
}

// sweep enforces the handshake, idle and close timeouts and pings silent
// connections.
func (l *loop) sweep(now int64) {
	cfg := &l.g.cfg
	for c := l.head; c != nil; c = c.next {
		silent := time.Duration(now - c.lastRead)
		switch c.state {
		case stateHandshake:
			if time.Duration(now-c.accepted) > cfg.HandshakeTimeout {
				l.g.m.handshakeTimeouts.Inc()
				c.gc.Close()
			}
		case stateOpen:
			switch {
			case silent > cfg.IdleTimeout:
				l.fail(c, errIdle, now)
			case silent > cfg.PingInterval && !c.pinged:
				c.pinged = true
				l.scratch = appendHeader(l.scratch[:0], opPing, 0)
				c.gc.Write(l.scratch)
			}
		case stateClosing:
			if time.Duration(now-c.closingAt) > cfg.CloseTimeout {
				c.gc.Close()
			}
		}
	}
}

// allow takes a token from c's bucket.
func (c *wsConn) allow(now int64, rate float64, burst int) bool {
	if c.refilled == 0 {
		c.tokens, c.refilled = float64(burst), now
	}
	c.tokens = min(float64(burst), c.tokens+float64(now-c.refilled)*rate/1e9)
	c.refilled = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (c *wsConn) dropFrag() {
	if c.frag != nil {
		putFragBuf(c.frag)
		c.frag, c.fragOp, c.fragCount = nil, 0, 0
	}
}

const msgBadID = `"id" must be 1 to 128 bytes`

// checkSend validates a send frame and returns what is wrong, or "".
func (g *Gateway) checkSend(r *protocol.Request) string {
	switch {
	case !r.HasID || !validID(r.ID):
		return msgBadID
	case !r.HasTo || !validUser(r.To):
		return `"to" must be a user id: 1 to 128 bytes, no control characters`
	case !r.HasBody:
		return `missing "body"`
	case len(r.Body) > g.maxBody:
		return `"body" exceeds max_body_bytes`
	}
	return ""
}

func validID(b []byte) bool { return len(b) > 0 && len(b) <= 128 }

// validUser accepts what auth accepts as a token subject: 1 to 128 bytes
// of UTF-8 without control characters.
func validUser(b []byte) bool {
	if len(b) == 0 || len(b) > 128 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7F {
			return false
		}
	}
	return true // UTF-8 validity was checked on the whole message
}
