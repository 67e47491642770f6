package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeServer implements protocol v1 in memory, for testing the client
// without the real server: per-user inboxes with gap-free seqs, idempotent
// sends keyed by (sender, client id), receipts routed to the sender, sync,
// and live delivery. One mutex serializes everything, including writes, so
// that each user's frames leave in seq order.
//
// The token is the user id; "bad" (or none) is refused with 401. Hooks let
// tests break things: refuse handshakes, drop or replay live frames, kill a
// connection after a send is stored but before it is acked, answer with
// errors, purge old inbox entries.
type fakeServer struct {
	t   testing.TB
	srv *httptest.Server
	URL string

	mu       sync.Mutex
	inbox    map[string][][]byte // user → frames; index seq-1; nil = purged
	msgs     map[string]*fakeMsg // msg_id → message
	byClient map[string]string   // sender + "\x00" + client id → msg_id
	conns    map[string]map[*fakeConn]bool
	nextID   int

	// Hooks and counters, under mu.
	reject     int                                          // HTTP status for upgrades; 0 accepts
	dropLive   map[string]int                               // user → live frames to drop
	killAfter  func(user string, sends int) bool            // after storing a send, before its ack
	rejectSend func(user string, f *fakeFrame) string       // error code to answer a send with, or ""
	sends      map[string]int                               // send frames received per user (resends too)
	syncs      map[string][]uint64                          // "after" of every sync per user
	received   map[string]map[string]int                    // user → frame type → count
	onFrame    func(user string, f *fakeFrame) (reply bool) // generic hook; false drops the frame
}

type fakeMsg struct {
	id, from, to string
}

type fakeConn struct {
	user string
	conn net.Conn
	wmu  sync.Mutex
}

type fakeFrame struct {
	Type   string   `json:"type"`
	ID     string   `json:"id"`
	To     string   `json:"to"`
	Body   string   `json:"body"`
	Status string   `json:"status"`
	MsgIDs []string `json:"msg_ids"`
	After  uint64   `json:"after"`
}

func newFakeServer(t testing.TB) *fakeServer {
	s := &fakeServer{
		t:        t,
		inbox:    make(map[string][][]byte),
		msgs:     make(map[string]*fakeMsg),
		byClient: make(map[string]string),
		conns:    make(map[string]map[*fakeConn]bool),
		dropLive: make(map[string]int),
		sends:    make(map[string]int),
		syncs:    make(map[string][]uint64),
		received: make(map[string]map[string]int),
	}
	s.srv = httptest.NewServer(s)
	s.URL = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/ws"
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.mu.Lock()
	for _, cs := range s.conns {
		for fc := range cs {
			_ = fc.conn.Close()
		}
	}
	s.mu.Unlock()
	s.srv.Close()
}

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if user == "" {
		user = r.URL.Query().Get("access_token")
	}
	s.mu.Lock()
	reject := s.reject
	s.mu.Unlock()
	if reject != 0 {
		http.Error(w, "refused by test", reject)
		return
	}
	if user == "" || user == "bad" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	fc := &fakeConn{user: user, conn: conn}
	s.mu.Lock()
	if s.conns[user] == nil {
		s.conns[user] = make(map[*fakeConn]bool)
	}
	s.conns[user][fc] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns[user], fc)
		s.mu.Unlock()
		_ = conn.Close()
	}()
	rw := struct {
		io.Reader
		io.Writer
	}{conn, fc}
	for {
		data, op, err := wsutil.ReadClientData(rw)
		if err != nil {
			return
		}
		if op != ws.OpText {
			continue
		}
		s.handle(fc, data)
	}
}

// Write serializes writes to the connection (control replies come from the
// reading goroutine).
func (fc *fakeConn) Write(p []byte) (int, error) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.conn.Write(p)
}

func (fc *fakeConn) send(frame []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = wsutil.WriteServerText(fc.conn, frame)
}

func (fc *fakeConn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fc.send(b)
}

func (s *fakeServer) handle(fc *fakeConn, data []byte) {
	var f fakeFrame
	if err := json.Unmarshal(data, &f); err != nil {
		fc.sendJSON(map[string]any{"type": "error", "code": "bad_request", "message": err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.received[fc.user] == nil {
		s.received[fc.user] = make(map[string]int)
	}
	s.received[fc.user][f.Type]++
	if s.onFrame != nil && !s.onFrame(fc.user, &f) {
		return
	}
	now := time.Now().UnixMilli()
	switch f.Type {
	case "send":
		s.sends[fc.user]++
		if s.rejectSend != nil {
			if code := s.rejectSend(fc.user, &f); code != "" {
				fc.sendJSON(map[string]any{"type": "error", "id": f.ID, "code": code, "message": "by test"})
				return
			}
		}
		key := fc.user + "\x00" + f.ID
		msgID, dup := s.byClient[key]
		if !dup {
			s.nextID++
			msgID = fmt.Sprintf("m%06d", s.nextID)
			s.byClient[key] = msgID
			s.msgs[msgID] = &fakeMsg{id: msgID, from: fc.user, to: f.To}
			seq := uint64(len(s.inbox[f.To]) + 1)
			s.store(f.To, map[string]any{
				"type": "msg", "seq": seq, "msg_id": msgID, "from": fc.user, "to": f.To,
				"body": f.Body, "ts": now, "future_field": map[string]any{"x": 1},
			})
		}
		if s.killAfter != nil && s.killAfter(fc.user, s.sends[fc.user]) {
			_ = fc.conn.Close()
			return
		}
		fc.sendJSON(map[string]any{"type": "ack", "id": f.ID, "msg_id": msgID, "ts": now})
	case "receipt":
		bySender := make(map[string][]string)
		var senders []string
		for _, id := range f.MsgIDs {
			m := s.msgs[id]
			if m == nil || m.to != fc.user {
				continue
			}
			if bySender[m.from] == nil {
				senders = append(senders, m.from)
			}
			bySender[m.from] = append(bySender[m.from], id)
		}
		for _, from := range senders {
			seq := uint64(len(s.inbox[from]) + 1)
			s.store(from, map[string]any{
				"type": "receipt", "seq": seq, "status": f.Status, "msg_ids": bySender[from],
				"by": fc.user, "ts": now,
			})
		}
		if f.ID != "" {
			fc.sendJSON(map[string]any{"type": "ack", "id": f.ID})
		}
	case "sync":
		s.syncs[fc.user] = append(s.syncs[fc.user], f.After)
		last := f.After
		for i := f.After; i < uint64(len(s.inbox[fc.user])); i++ {
			if fr := s.inbox[fc.user][i]; fr != nil {
				fc.send(fr)
				last = i + 1
			}
		}
		fc.sendJSON(map[string]any{"type": "synced", "seq": last})
	default:
		fc.sendJSON(map[string]any{"type": "error", "id": f.ID, "code": "unknown_type", "message": f.Type})
	}
}

// store appends an entry to user's inbox and delivers it live. Caller
// holds mu.
func (s *fakeServer) store(user string, v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s.inbox[user] = append(s.inbox[user], b)
	if s.dropLive[user] > 0 {
		s.dropLive[user]--
		return
	}
	for fc := range s.conns[user] {
		fc.send(b)
	}
}

// replay sends every stored entry of user again, live.
func (s *fakeServer) replay(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns[user] {
		for _, fr := range s.inbox[user] {
			if fr != nil {
				fc.send(fr)
			}
		}
	}
}

// purge forgets user's inbox entries with seq <= upTo (retention).
func (s *fakeServer) purge(user string, upTo int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < upTo && i < len(s.inbox[user]); i++ {
		s.inbox[user][i] = nil
	}
}

// closeUser closes user's connections with a close frame.
func (s *fakeServer) closeUser(user string, code ws.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns[user] {
		fc.wmu.Lock()
		_ = wsutil.WriteServerMessage(fc.conn, ws.OpClose, ws.NewCloseFrameBody(code, reason))
		fc.wmu.Unlock()
	}
}

// killUser drops user's connections without a close frame.
func (s *fakeServer) killUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns[user] {
		_ = fc.conn.Close()
	}
}

func (s *fakeServer) setReject(status int) {
	s.mu.Lock()
	s.reject = status
	s.mu.Unlock()
}

func (s *fakeServer) syncsOf(user string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.syncs[user]...)
}

func (s *fakeServer) connected(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns[user])
}

func (s *fakeServer) inboxLen(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inbox[user])
}

func (s *fakeServer) with(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}
