package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// session is one WebSocket connection. Its reader goroutine parses frames
// and calls the Handler; its writer goroutine sends the sync, the outbox and
// pings. Control-frame replies from the reader share the writer's buffer
// under wmu.
type session struct {
	c    *Client
	conn net.Conn
	br   *bufio.Reader
	done chan struct{} // closed when the session ends

	wmu sync.Mutex // guards bw and writes to conn
	bw  *bufio.Writer

	syncWanted chan struct{} // cap 1: the reader asks the writer for a sync

	reqMu    sync.Mutex            // guards waiters and reqsDone
	waiters  map[string]chan reply // Request calls waiting, by id
	reqsDone bool                  // the connection is gone: no more requests

	// Owned by the reader goroutine (healthy is read by Run after the
	// goroutines are gone).
	syncing     bool   // a sync is outstanding
	syncFrom    uint64 // cursor when it was asked for
	lowDropped  uint64 // lowest seq dropped for a gap since the sync was asked for
	highDropped uint64 // highest such seq
	stalled     int    // consecutive syncs that advanced nothing
	healthy     bool   // a sync completed on this connection
}

// maxStalledSyncs bounds resyncs that make no progress before the
// connection is dropped (and retried with backoff).
const maxStalledSyncs = 3

func (c *Client) dial(ctx context.Context) (*session, error) {
	token := c.cfg.Token
	if ts := c.cfg.TokenSource; ts != nil {
		t, err := ts(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: token source: %w", err)
		}
		token = t
		c.setUser(token)
	}
	d := ws.Dialer{
		Timeout: c.cfg.DialTimeout,
		Header:  ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}),
	}
	conn, br, _, err := d.Dial(ctx, c.cfg.URL)
	if err != nil {
		var st ws.StatusError
		if errors.As(err, &st) {
			return nil, &HandshakeError{StatusCode: int(st)}
		}
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	if br == nil {
		// The server sent nothing past the handshake yet; otherwise br holds
		// those bytes and reads on from conn.
		br = bufio.NewReaderSize(conn, 16<<10)
	}
	return &session{
		c:          c,
		conn:       conn,
		br:         br,
		bw:         bufio.NewWriterSize(conn, 16<<10),
		done:       make(chan struct{}),
		syncWanted: make(chan struct{}, 1),
	}, nil
}

// run serves the connection until it fails or ctx is done, and returns why
// it ended.
func (s *session) run(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	c.ob.resetInflight()
	c.mu.Unlock()
	s.syncing = true // the writer's first frame is the sync
	s.syncFrom = c.cursor.Load()

	errc := make(chan error, 2)
	go func() { errc <- s.readLoop() }()
	go func() { errc <- s.writeLoop() }()

	var err error
	pending := 2
	select {
	case err = <-errc:
		pending--
	case <-ctx.Done():
		// Unblock a write in progress, then say goodbye.
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		s.writeClose(CloseNormal, "")
		err = context.Cause(ctx)
	}
	close(s.done)
	_ = s.conn.Close()
	for ; pending > 0; pending-- {
		<-errc
	}
	s.failRequests(err)
	return err
}

// writeLoop sends the sync and the connection's state (active, presence
// subscriptions), then outbox entries as they become due, and a ping every
// PingInterval.
func (s *session) writeLoop() error {
	c := s.c
	var ping <-chan time.Time
	if c.cfg.PingInterval > 0 {
		t := time.NewTicker(c.cfg.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()

	sync, restore := true, true
	var (
		frames [][]byte
		next   time.Time
	)
	for {
		c.mu.Lock()
		frames, next = c.ob.take(time.Now(), c.cfg.MaxInFlight, frames[:0])
		c.mu.Unlock()
		if sync || len(frames) > 0 {
			if err := s.writeFrames(sync, restore, frames); err != nil {
				return err
			}
			sync, restore = false, false
		}
		clear(frames)
		if !next.IsZero() {
			retry.Reset(time.Until(next))
		}
		select {
		case <-s.done:
			return nil
		case <-c.wake:
		case <-s.syncWanted:
			sync = true
		case <-retry.C:
		case <-ping:
			if err := s.writeControl(ws.OpPing, nil); err != nil {
				return err
			}
		}
	}
}

// writeFrames writes a sync from the current cursor (if sync), the state
// the server keeps per connection (if restore: see Client.restoreFrames),
// and then frames, and flushes once. It is safe for concurrent use.
func (s *session) writeFrames(sync, restore bool, frames [][]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.c.cfg.WriteTimeout)); err != nil {
		return err
	}
	if sync {
		after := s.c.cursor.Load()
		b, _ := json.Marshal(syncFrame{Type: "sync", After: after})
		if err := wsutil.WriteClientText(s.bw, b); err != nil {
			return fmt.Errorf("client: write: %w", err)
		}
		s.c.log.Debug("client: sync", "after", after)
	}
	if restore {
		// Built under wmu, so that a SetActive or Subscribe whose frame is
		// written before this sees its change here or sends it after.
		frames = append(s.c.restoreFrames(), frames...)
	}
	for _, f := range frames {
		if err := wsutil.WriteClientText(s.bw, f); err != nil {
			return fmt.Errorf("client: write: %w", err)
		}
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

func (s *session) writeControl(op ws.OpCode, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.c.cfg.WriteTimeout)); err != nil {
		return err
	}
	if err := wsutil.WriteClientMessage(s.bw, op, p); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// writeClose sends a close frame, best effort: the connection is being
// dropped whatever happens.
func (s *session) writeClose(code CloseCode, reason string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	body := ws.NewCloseFrameBody(ws.StatusCode(code), reason)
	_ = wsutil.WriteClientMessage(s.bw, ws.OpClose, body)
	_ = s.bw.Flush()
}

// readLoop reads and handles frames until the connection fails.
func (s *session) readLoop() error {
	c := s.c
	rd := &wsutil.Reader{
		Source:         s.br,
		State:          ws.StateClientSide,
		CheckUTF8:      true,
		MaxMessageSize: c.cfg.MaxMessageSize,
		OnIntermediate: s.control,
	}
	for {
		if c.cfg.PingInterval > 0 {
			_ = s.conn.SetReadDeadline(time.Now().Add(2 * c.cfg.PingInterval))
		}
		hdr, err := rd.NextFrame()
		if err != nil {
			return s.readError(err)
		}
		if hdr.OpCode.IsControl() {
			if err := s.control(hdr, rd); err != nil {
				return s.readError(err)
			}
			continue
		}
		if hdr.OpCode != ws.OpText {
			// Protocol v1 has text frames only; skip what a later version
			// may add rather than drop the connection.
			c.log.Debug("client: skipping non-text frame", "opcode", hdr.OpCode)
			if err := rd.Discard(); err != nil {
				return s.readError(err)
			}
			continue
		}
		// Grow as bytes arrive; the declared length is only a hint, and
		// MaxMessageSize was checked against it by NextFrame.
		var buf bytes.Buffer
		buf.Grow(int(min(hdr.Length, 64<<10)))
		if _, err := buf.ReadFrom(rd); err != nil {
			return s.readError(err)
		}
		if err := s.handle(buf.Bytes()); err != nil {
			return err
		}
		if s.br.Buffered() == 0 {
			// Caught up with the socket: save the cursor once per burst
			// rather than once per frame.
			c.flushCursor()
		}
	}
}

// control answers a ping, discards a pong, and turns a close frame into a
// *CloseError after echoing its code. Close frames are parsed here rather
// than by wsutil.ControlHandler, which rejects codes RFC 6455 did not list
// (such as 1012 service restart).
func (s *session) control(hdr ws.Header, r io.Reader) error {
	switch hdr.OpCode {
	case ws.OpPing:
		p, err := io.ReadAll(io.LimitReader(r, ws.MaxControlFramePayloadSize))
		if err != nil {
			return err
		}
		return s.writeControl(ws.OpPong, p)
	case ws.OpClose:
		p, err := io.ReadAll(io.LimitReader(r, ws.MaxControlFramePayloadSize))
		if err != nil {
			return err
		}
		ce := &CloseError{Code: CloseNoStatus}
		if len(p) >= 2 {
			code, reason := ws.ParseCloseFrameData(p)
			ce.Code = CloseCode(code)
			if utf8.ValidString(reason) {
				ce.Reason = reason
			}
		}
		// Echo the code (RFC 6455 section 5.5.1); 1005 is never sent.
		var echo []byte
		if ce.Code != CloseNoStatus {
			echo = p[:2]
		}
		_ = s.writeControl(ws.OpClose, echo)
		return ce
	default: // pong, or a reserved control opcode
		_, err := io.Copy(io.Discard, r)
		return err
	}
}

// readError maps a read failure to the error reported to the caller, and
// closes with the matching code when the server broke the protocol.
func (s *session) readError(err error) error {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce
	}
	select {
	case <-s.done:
		return err // we are closing; the reason is elsewhere
	default:
	}
	local := func(code CloseCode) error {
		s.writeClose(code, "")
		return &CloseError{Code: code, Reason: err.Error(), Local: true}
	}
	var pe ws.ProtocolError
	switch {
	case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		return local(CloseTooBig)
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return local(CloseInvalidPayload)
	case errors.As(err, &pe):
		return local(CloseProtocolError)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("client: no frame from the server for %v: %w", 2*s.c.cfg.PingInterval, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("client: connection lost without a close frame: %w", err)
	}
	return fmt.Errorf("client: read: %w", err)
}

// handle processes one server frame. Its error ends the connection.
func (s *session) handle(p []byte) error {
	c := s.c
	var f serverFrame
	if err := json.Unmarshal(p, &f); err != nil {
		// A frame we cannot parse is skipped; if it carried a seq, the gap
		// check on the next frame brings it back through a sync.
		c.log.Warn("client: skipping malformed frame", "err", err, "bytes", len(p))
		return nil
	}
	switch f.Type {
	case "msg", "receipt", "group":
		if s.inOrder(f.Seq) {
			s.apply(f.Seq, c.inboxEvent(&f, p))
		}
	case "presence":
		c.emit(presenceEvent(&f, p))
	case "typing":
		c.emit(Typing{From: f.From, To: f.To, Group: f.Group, Stop: f.Stop, Raw: p})
	case "ack":
		s.onAck(&f, p)
	case "error":
		s.onError(&f)
	case "synced":
		return s.onSynced(f.Seq)
	default:
		if f.Seq > 0 {
			// A later protocol version's inbox entry: it shares the seq
			// space, so it must move the cursor.
			if s.inOrder(f.Seq) {
				s.apply(f.Seq, Unknown{Type: f.Type, Seq: f.Seq, Raw: p})
			}
			return nil
		}
		c.log.Debug("client: ignoring frame", "type", f.Type)
	}
	return nil
}

// inboxEvent turns an inbox entry (msg, receipt or group) into its event.
func (c *Client) inboxEvent(f *serverFrame, p []byte) Event {
	ts := time.UnixMilli(f.TS)
	switch f.Type {
	case "msg":
		return c.message(f, p)
	case "receipt":
		return Receipt{
			Seq: f.Seq, Status: Status(f.Status), MsgIDs: f.MsgIDs, By: f.By,
			Group: f.Group, All: f.All, TS: ts, Raw: p,
		}
	default: // "group"
		ev := GroupEvent{Seq: f.Seq, Group: f.Group, Event: f.Event, By: f.By, Name: f.Name, Icon: f.Icon, TS: ts, Raw: p}
		if len(f.Members) > 0 {
			if err := json.Unmarshal(f.Members, &ev.Members); err != nil {
				c.log.Warn("client: group event with malformed members", "seq", f.Seq, "err", err)
			}
		}
		return ev
	}
}

// presenceEvent decodes a presence frame; a part left out (hidden, or not
// known) stays nil.
func presenceEvent(f *serverFrame, p []byte) Presence {
	ev := Presence{User: f.User, Raw: p}
	var online bool
	if len(f.Online) > 0 && json.Unmarshal(f.Online, &online) == nil {
		ev.Online = &online
	}
	var ms int64
	if len(f.LastSeen) > 0 && json.Unmarshal(f.LastSeen, &ms) == nil {
		t := time.UnixMilli(ms)
		ev.LastSeen = &t
	}
	return ev
}

// inOrder reports whether seq, an inbox entry's, is the next one after the
// cursor. An entry already seen is dropped; one past the next asks for a
// sync of the entries missing before it.
func (s *session) inOrder(seq uint64) bool {
	c := s.c
	cur := c.cursor.Load()
	if seq <= cur {
		c.log.Debug("client: duplicate", "seq", seq, "cursor", cur)
		return false
	}
	if seq != cur+1 {
		c.log.Debug("client: gap", "seq", seq, "cursor", cur)
		if !s.syncing {
			s.requestSync()
		}
		if s.lowDropped == 0 || seq < s.lowDropped {
			s.lowDropped = seq
		}
		s.highDropped = max(s.highDropped, seq)
		return false
	}
	return true
}

// apply hands ev, the inbox entry seq that inOrder accepted, to the
// Handler and then moves the cursor past it.
func (s *session) apply(seq uint64, ev Event) {
	s.c.emit(ev)
	s.c.cursor.Store(seq)
}

func (s *session) requestSync() {
	s.syncing = true
	s.syncFrom = s.c.cursor.Load()
	s.lowDropped, s.highDropped = 0, 0
	select {
	case s.syncWanted <- struct{}{}:
	default:
	}
}

// onSynced ends the outstanding sync. Entries dropped for a gap during it
// are fetched again; a gap the sync could not fill (the server no longer
// has those entries: retention) is skipped.
func (s *session) onSynced(seq uint64) error {
	c := s.c
	if !s.syncing {
		return nil // not ours (a sync with an id sent by a later version)
	}
	s.syncing = false
	s.healthy = true
	c.flushCursor()
	cur := c.cursor.Load()
	if cur > s.syncFrom {
		s.stalled = 0
	} else {
		s.stalled++
	}
	switch {
	case s.lowDropped > cur+1 && s.lowDropped <= seq:
		// The sync started after cur and sent entries in order, yet not
		// cur+1: the server does not have cur+1 .. lowDropped-1.
		c.log.Warn("client: inbox entries no longer on the server; skipping them",
			"from", cur+1, "to", s.lowDropped-1)
		c.cursor.Store(s.lowDropped - 1)
		s.stalled = 0
		s.requestSync()
	case s.highDropped > cur:
		// Live entries overtook the sync: fetch them in order.
		if s.stalled > maxStalledSyncs {
			return fmt.Errorf("client: %d syncs in a row made no progress (cursor %d, server sent up to %d)",
				s.stalled, cur, seq)
		}
		s.requestSync()
	}
	return nil
}

// onAck answers the Request waiting for f's id, or removes the acked
// outbox entry and, for a send, remembers the message as this device's and
// emits its Ack.
func (s *session) onAck(f *serverFrame, p []byte) {
	c := s.c
	if s.answer(f.ID, reply{ack: p}) {
		return
	}
	c.mu.Lock()
	e := c.removeLocked(f.ID)
	if e != nil && e.send && f.MsgID != "" {
		c.own.add(f.MsgID, f.ID)
	}
	c.mu.Unlock()
	if e == nil {
		c.log.Debug("client: ack for no outbox entry", "id", f.ID)
		return
	}
	if e.send {
		var sf sendFrame
		_ = json.Unmarshal(e.frame, &sf) // we encoded it
		c.emit(Ack{ClientID: f.ID, MsgID: f.MsgID, TS: time.UnixMilli(f.TS), To: sf.To, Group: sf.Group, Body: sf.Body,
			Attachment: sf.Attachment})
	}
	c.notifyEmpty()
}

// onError answers the Request waiting for f's id, or retries or drops the
// outbox entry it names; other errors are handed to the Handler.
func (s *session) onError(f *serverFrame) {
	c := s.c
	se := &ServerError{ID: f.ID, Code: f.Code, Message: f.Message}
	if s.answer(f.ID, reply{err: se}) {
		return
	}
	if f.ID != "" {
		c.mu.Lock()
		if e := c.ob.byID[f.ID]; e != nil {
			if retriableCode(f.Code) {
				c.ob.retry(e, time.Now().Add(retryDelay(c.cfg.MinBackoff, c.cfg.MaxBackoff, e.attempts)))
				c.signal()
			} else {
				c.removeLocked(f.ID)
			}
		}
		c.mu.Unlock()
	}
	c.log.Debug("client: server error", "id", f.ID, "code", f.Code, "message", f.Message)
	c.emit(se)
	c.notifyEmpty()
}
