package gateway

import (
	"bytes"
	"sync/atomic"
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

	touched []*wsConn  // connections with frames gathered in this drain
	out     []outEntry // the gathered frames, chained per connection
	iov     [][]byte
	waiting []*wsConn // connections whose next read waits (pacing, full queue)
	paceReq atomic.Bool

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
		// Pings count against the message rate: a peer must not make us
		// write without bound.
		if ok, act, _ := l.charge(c, 1, now); !ok {
			return act // no pong for a ping over the rate
		}
		l.scratch = appendHeader(l.scratch[:0], opPong, len(payload))
		l.scratch = append(l.scratch, payload...)
		l.writeDirect(c, l.scratch)
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
		if int(c.fragCount) > g.cfg.MaxFragments {
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
	e := l.dec.Decode(data, r)
	// Every message counts against the rate, malformed ones too; a receipt
	// costs one more per 16 ids it names (each is a store lookup).
	if ok, act, failed := l.charge(c, 1+float64(len(r.MsgIDs)/16), now); !ok {
		if !failed {
			l.writeError(c, r.ID, protocol.CodeRateLimited, "over the message rate limit: retry later with the same id")
		}
		return act
	}
	if e != nil {
		l.writeError(c, r.ID, e.Code, e.Message)
		return gnet.None
	}
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
		q := getReq(c, now, len(r.ID)+len(r.To)+len(r.Group)+len(r.Body)+len(r.AssetID))
		q.Kind = chat.KindSend
		q.ClientID = q.keep(r.ID)
		q.To = q.keep(r.To) // one of To and Group is empty
		q.Group = q.keep(r.Group)
		q.Body = q.keep(r.Body)
		if r.HasAttachment {
			q.AssetID = q.keep(r.AssetID)
		}
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
		case !validMsgIDs(r.MsgIDs):
			l.writeError(c, r.ID, protocol.CodeBadRequest, `"msg_ids" entries must be message ids: 26 characters of Crockford base32`)
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
		l.sync(c, r.After, r.ID)
	default:
		switch {
		case !r.HasType:
			l.writeError(c, r.ID, protocol.CodeBadRequest, `missing "type"`)
		case r.Type == protocol.TypeUnknown:
			l.writeError(c, r.ID, protocol.CodeUnknownType, "unknown frame type")
		default:
			l.dispatch(c, r, now) // dispatch.go
		}
	}
	return gnet.None
}

// charge takes cost tokens (at most a burst's worth) from c's rate limit
// and reports whether it could. Refused more than message_burst times in a
// row, c is failed with 1008: failed is true and act is what to return.
func (l *loop) charge(c *wsConn, cost float64, now int64) (ok bool, act gnet.Action, failed bool) {
	cfg := &l.g.cfg
	if c.allow(now, cfg.MessageRate, cfg.MessageBurst, min(cost, float64(cfg.MessageBurst))) {
		c.flood = 0
		return true, gnet.None, false
	}
	c.flood++
	if int(c.flood) > cfg.MessageBurst {
		return false, l.fail(c, errRateFlood, now), true
	}
	return false, gnet.None, false
}

// writeDirect writes b to c now (we are on its loop), unless that would
// take c past max_outbound_bytes: then c is failed as a slow consumer.
func (l *loop) writeDirect(c *wsConn, b []byte) {
	if c.gc.OutboundBuffered()+len(b) > l.g.cfg.MaxOutboundBytes {
		if l.fail(c, errSlowConsumer, time.Now().UnixNano()) == gnet.Close {
			c.gc.Close()
		}
		return
	}
	c.gc.Write(b)
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
	l.writeDirect(c, p[off:])
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

// handleItem runs one mailbox item that is not about frames.
func (l *loop) handleItem(it *mailItem) {
	c := it.c
	switch it.kind {
	case itemClose:
		// A connection already closing finishes its closing handshake.
		if !c.closed.Load() && c.state != stateClosing && l.fail(c, it.ce, time.Now().UnixNano()) == gnet.Close {
			c.gc.Close()
		}
	case itemTick:
		l.sweep(time.Now().UnixNano())
	case itemPace:
		// pace runs after every drain
	case itemCloseAll:
		now := time.Now().UnixNano()
		for c := l.head; c != nil; c = c.next {
			if l.fail(c, it.ce, now) == gnet.Close {
				c.gc.Close()
			}
		}
	}
}

// outEntry is a frame gathered for a connection during a mailbox drain:
// f, followed by tail (a payload shared by many frames) when not nil.
type outEntry struct {
	f, tail *outFrame
	seq     uint64 // an inbox entry's seq; 0 for other frames
	next    int32  // index+1 of the connection's next entry, 0 for none
}

// open reports whether frames may be written to c.
func (c *wsConn) open() bool { return c.state == stateOpen && !c.closed.Load() }

// queue gathers f, and tail if not nil (one reference each, taken over),
// for c; flush writes them.
func (l *loop) queue(c *wsConn, f, tail *outFrame, seq uint64) {
	if !c.open() {
		f.release()
		tail.releaseIf()
		return
	}
	l.out = append(l.out, outEntry{f: f, tail: tail, seq: seq})
	i := int32(len(l.out))
	if c.pendTail == 0 {
		c.pendHead = i
		l.touched = append(l.touched, c)
	} else {
		l.out[c.pendTail-1].next = i
	}
	c.pendTail = i
}

// deliver handles a live inbox entry for c: in order it is written, a
// duplicate is dropped, and a gap starts a read of the store (which has
// every entry up to seq: it was published after being committed).
func (l *loop) deliver(c *wsConn, seq uint64, f, tail *outFrame) {
	switch {
	case !c.open():
		f.release()
		tail.releaseIf()
	case !c.registered || c.reading:
		// Not registered yet, or a read is in flight: that read (or the
		// one registration starts) may have looked before this entry was
		// committed, so remember it and read on until the cursor passes it.
		c.seenMax = max(c.seenMax, seq)
		f.release()
		tail.releaseIf()
	case seq <= c.cursor:
		f.release()
		tail.releaseIf()
	case seq == c.cursor+1:
		c.cursor = seq
		l.queue(c, f, tail, seq)
		l.g.m.deliveries.Inc()
	default:
		f.release()
		tail.releaseIf()
		l.g.m.gapFills.Inc()
		l.startRead(c)
	}
}

// registered starts c's delivery at the inbox head, and the sync the
// client asked for meanwhile, if any.
func (l *loop) registered(c *wsConn, head uint64) {
	if !c.open() {
		return
	}
	c.registered, c.cursor = true, head
	switch {
	case c.pending != nil:
		p := c.pending
		c.pending = nil
		l.beginSync(c, p.after, p.id)
	case c.seenMax > c.cursor:
		l.startRead(c) // entries were delivered while registering
	}
}

// sync handles a sync frame: send every entry after after, then synced.
func (l *loop) sync(c *wsConn, after uint64, id []byte) {
	if len(id) > 0 {
		id = append([]byte(nil), id...)
	}
	if !c.registered {
		c.pending = &pendingSync{after: after, id: id}
		return
	}
	l.beginSync(c, after, id)
}

func (l *loop) beginSync(c *wsConn, after uint64, id []byte) {
	c.cursor, c.syncReply, c.syncID = after, true, id
	l.startRead(c)
}

// startRead asks a hub worker for the page after c.cursor. A read already
// in flight is superseded: its result is dropped.
func (l *loop) startRead(c *wsConn) {
	c.reading = true
	c.readGen++
	l.requestRead(c)
}

// requestRead submits c's next page, unless c's socket still holds more
// than half of max_outbound_bytes or the job queue is full: then c waits
// and pace retries.
func (l *loop) requestRead(c *wsConn) {
	if c.gc.OutboundBuffered() <= l.g.cfg.MaxOutboundBytes/2 &&
		l.g.hub.submit(job{kind: jobRead, c: c, after: c.cursor, gen: c.readGen}) {
		c.readWait = false
		return
	}
	if !c.readWait {
		c.readWait = true
		l.waiting = append(l.waiting, c)
		l.paceReq.Store(true)
	}
}

// pace retries the reads that wait.
func (l *loop) pace() {
	if len(l.waiting) == 0 {
		return
	}
	kept := l.waiting[:0]
	for _, c := range l.waiting {
		if !c.open() || !c.reading {
			c.readWait = false
			continue
		}
		if l.requestRead(c); c.readWait {
			kept = append(kept, c)
		}
	}
	clear(l.waiting[len(kept):])
	l.waiting = kept
	l.paceReq.Store(len(kept) > 0)
}

// readDone writes a page read for c, in order from its cursor (seqs that
// expired are skipped), then reads on or ends the sync.
func (l *loop) readDone(c *wsConn, res *readResult) {
	if !c.open() || !c.reading || res.gen != c.readGen {
		for _, rf := range res.frames {
			rf.f.release()
		}
		return
	}
	for _, rf := range res.frames {
		if rf.seq <= c.cursor {
			rf.f.release()
			continue
		}
		c.cursor = rf.seq
		l.queue(c, rf.f, nil, rf.seq)
	}
	switch {
	case res.err != nil:
		c.reading = false
		f := getFrame(128 + len(c.syncID))
		l.queue(c, f.seal(opText, protocol.AppendError(f.payload(), c.syncID, protocol.CodeInternal, "sync failed: retry")), nil, 0)
		c.syncReply, c.syncID = false, nil
	case res.more || c.seenMax > c.cursor:
		// More pages, or entries delivered during the read that it may
		// not have seen. Ask for the next page after this one is flushed,
		// so that the drain check sees it in the socket's backlog.
		if !c.readWait {
			c.readWait = true
			l.waiting = append(l.waiting, c)
		}
	default:
		c.reading = false
		if c.syncReply {
			f := getFrame(48 + len(c.syncID))
			l.queue(c, f.seal(opText, protocol.AppendSynced(f.payload(), c.syncID, c.cursor)), nil, 0)
			c.syncReply, c.syncID = false, nil
		}
	}
}

// maxIOV bounds the buffers of one writev (the kernel's IOV_MAX is 1024).
const maxIOV = 512

// flush writes the frames gathered per connection, one write or writev
// per connection (per maxIOV buffers), and releases them. The outbound
// bound applies to what stays in gnet's outbound buffer once the kernel
// has taken what it can: a burst that the socket absorbs is fine.
//
// Past half the bound, inbox entries are not written but left in the store:
// the connection's cursor goes back to before the first one held back,
// and a paced read fetches them once the socket has drained (a device
// that sends a burst of messages, and gets their copies back, keeps up
// without buffering them all). Only other frames (acks, errors, typing)
// past the bound fail the connection as a slow consumer.
func (l *loop) flush() {
	maxOut := l.g.cfg.MaxOutboundBytes
	for _, c := range l.touched {
		l.iov = l.iov[:0]
		pending := 0
		var heldFrom uint64 // the first inbox entry held back
		for i := c.pendHead; i != 0; i = l.out[i-1].next {
			if !c.open() {
				break
			}
			e := &l.out[i-1]
			if e.seq != 0 && heldFrom != 0 {
				continue // after one entry is held back, all later ones are
			}
			b := e.f.bytes()
			n := len(b)
			if e.tail != nil {
				n += len(e.tail.bytes())
			}
			// Inbox entries stop at half the bound, which leaves the other
			// half to acks and errors.
			limit := maxOut
			if e.seq != 0 {
				limit = maxOut / 2
			}
			if len(l.iov) >= maxIOV-1 || (pending > 0 && c.gc.OutboundBuffered()+pending+n > limit) {
				l.writeOut(c)
				pending = 0
			}
			if c.gc.OutboundBuffered()+n > limit {
				if e.seq != 0 {
					heldFrom = e.seq
					continue
				}
				if l.fail(c, errSlowConsumer, time.Now().UnixNano()) == gnet.Close {
					c.gc.Close()
				}
				break
			}
			l.iov = append(l.iov, b)
			if e.tail != nil {
				l.iov = append(l.iov, e.tail.bytes())
			}
			pending += n
		}
		if c.open() {
			l.writeOut(c)
		}
		for i := c.pendHead; i != 0; i = l.out[i-1].next {
			l.out[i-1].f.release()
			l.out[i-1].tail.releaseIf()
		}
		c.pendHead, c.pendTail = 0, 0
		if heldFrom != 0 && c.open() {
			l.g.m.heldBack.Inc()
			c.cursor = heldFrom - 1
			l.startRead(c) // paced: waits until the socket has drained
		}
	}
	clear(l.iov)
	clear(l.out)
	l.out = l.out[:0]
	clear(l.touched)
	l.touched = l.touched[:0]
}

// writeOut writes l.iov to c with one write or writev.
func (l *loop) writeOut(c *wsConn) {
	switch len(l.iov) {
	case 0:
		return
	case 1:
		c.gc.Write(l.iov[0])
	default:
		c.gc.Writev(l.iov)
	}
	l.g.m.framesOut.Add(float64(len(l.iov)))
	clear(l.iov)
	l.iov = l.iov[:0]
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

// allow takes cost tokens from c's bucket.
func (c *wsConn) allow(now int64, rate float64, burst int, cost float64) bool {
	if c.refilled == 0 {
		c.tokens, c.refilled = float64(burst), now
	}
	c.tokens = min(float64(burst), c.tokens+float64(now-c.refilled)*rate/1e9)
	c.refilled = now
	if c.tokens < cost {
		return false
	}
	c.tokens -= cost
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
	case r.HasGroup && r.HasTo:
		return `a send has "to" or "group", not both`
	case r.HasGroup && !validMsgIDs([][]byte{r.Group}):
		return msgBadGroup
	case !r.HasGroup && (!r.HasTo || !validUser(r.To)):
		return `"to" must be a user id: 1 to 128 bytes, no control characters`
	case r.HasAttachment && !validMsgIDs([][]byte{r.AssetID}):
		return `"attachment" needs "asset_id", as the upload returned it`
	case !r.HasBody:
		return `missing "body"`
	case len(r.Body) > g.maxBody:
		return `"body" exceeds max_body_bytes`
	}
	return ""
}

func validID(b []byte) bool { return len(b) > 0 && len(b) <= 128 }

// validMsgIDs checks that every id has the shape of a message id, so that
// a receipt cannot make the committer look up arbitrary keys.
func validMsgIDs(ids [][]byte) bool {
	for _, id := range ids {
		if len(id) != chat.IDLen {
			return false
		}
		for _, c := range id {
			if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
				return false
			}
		}
	}
	return true
}

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
