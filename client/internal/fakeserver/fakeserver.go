// Package fakeserver is an in-memory implementation of Switchboard's
// protocol v1 server side, for testing the client package and the programs
// built on it without the real server. It is deliberately simple: one
// mutex serializes everything, including writes, so that each user's frames
// leave in seq order.
//
// Beyond v1's send, receipt and sync it has what docs/protocol.md adds:
// the sender's own copy of each message (groups.go too), groups with
// membership events, group receipts and msg.info (groups.go), presence,
// privacy, contacts, devices and typing (presence.go), files (assets.go),
// profiles and group icons (profile.go). It checks less than
// the real server (ids are not validated; presence pushes at every user
// event rather than only on a visible change).
package fakeserver

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
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

// Server implements protocol v1 in memory: per-user inboxes with gap-free
// seqs, idempotent sends keyed by (sender, client id), receipts routed to
// the sender, sync, and live delivery.
//
// The token is the user id, or "user#device" for one of the user's
// devices (no device is "default"); "bad" (or none) is refused with 401.
// Hooks let
// tests break things: refuse handshakes, drop or replay live frames, kill a
// connection after a send is stored but before it is acked, answer with
// errors, purge old inbox entries.
type Server struct {
	// URL is the WebSocket endpoint, ws://127.0.0.1:port/v1/ws.
	URL string

	// AssetsURL is the asset API, http://127.0.0.1:port/v1/assets
	// (assets.go).
	AssetsURL string

	srv *httptest.Server

	mu       sync.Mutex
	inbox    map[string][][]byte // user → frames; index seq-1; nil = purged
	msgs     map[string]*message // msg_id → message
	byClient map[string]string   // sender + "\x00" + client id → msg_id
	conns    map[string]map[*wsConn]bool
	nextID   int
	groups   map[string]*group // group id → group
	presence map[string]*userPresence
	assets   map[string]*asset // asset id → asset
	profiles map[string]*profile

	// Hooks and counters: read and set them inside With.

	Reject     int                                // HTTP status for upgrades; 0 accepts
	DropLive   map[string]int                     // user → live frames to drop
	KillAfter  func(user string, sends int) bool  // after storing a send, before its ack: true drops the connection
	RejectSend func(user string, f *Frame) string // error code to answer a send with, or ""
	Ignore     func(user string, f *Frame) bool   // true: the frame is counted and not answered
	Sends      map[string]int                     // send frames received per user (resends too)
	Syncs      map[string][]uint64                // "after" of every sync per user
	Received   map[string]map[string]int          // user → frame type → count
	Uploads    map[string]int                     // asset uploads per user
	SentAssets map[string][]string                // user → the asset id of every send frame with one
}

type message struct {
	id, from, to string
	group        string // "" for one-to-one
	status       string // one-to-one: "sent", "delivered" or "read"
	// For a group message: its recipients at send time (members but the
	// sender), and when each had it delivered and read.
	delivered, read map[string]int64
	announced       map[string]bool // status → the all:true receipt was stored
}

type wsConn struct {
	user, device string
	conn         net.Conn
	wmu          sync.Mutex

	active bool            // under Server.mu
	subs   map[string]bool // users watched; under Server.mu
}

// Frame is a client frame as the fake server reads it.
type Frame struct {
	Type     string   `json:"type"`
	ID       string   `json:"id"`
	To       string   `json:"to"`
	Group    string   `json:"group"`
	Body     string   `json:"body"`
	Status   string   `json:"status"`
	MsgIDs   []string `json:"msg_ids"`
	MsgID    string   `json:"msg_id"`
	After    uint64   `json:"after"`
	Name     string   `json:"name"`
	Members  []string `json:"members"`
	Users    []string `json:"users"`
	LastSeen *string  `json:"last_seen"`
	Online   *string  `json:"online"`
	Stop     bool     `json:"stop"`
	Icon     *string  `json:"icon"`

	Attachment *AttachmentRef `json:"attachment"`
}

// New starts a Server on a random loopback port; it stops when t ends.
func New(t testing.TB) *Server {
	s := &Server{
		inbox:    make(map[string][][]byte),
		msgs:     make(map[string]*message),
		byClient: make(map[string]string),
		conns:    make(map[string]map[*wsConn]bool),
		groups:   make(map[string]*group),
		presence: make(map[string]*userPresence),
		assets:   make(map[string]*asset),
		profiles: make(map[string]*profile),
		Uploads:  make(map[string]int),

		SentAssets: make(map[string][]string),
		DropLive:   make(map[string]int),
		Sends:      make(map[string]int),
		Syncs:      make(map[string][]uint64),
		Received:   make(map[string]map[string]int),
	}
	s.srv = httptest.NewServer(s)
	s.URL = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/ws"
	s.AssetsURL = s.srv.URL + "/v1/assets"
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	s.mu.Lock()
	for _, cs := range s.conns {
		for fc := range cs {
			_ = fc.conn.Close()
		}
	}
	s.mu.Unlock()
	s.srv.Close()
}

// ServeHTTP upgrades GET /v1/ws and serves the connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if user == "" {
		user = r.URL.Query().Get("access_token")
	}
	user, device, _ := strings.Cut(user, "#")
	if strings.HasPrefix(r.URL.Path, "/v1/assets") {
		s.serveAssets(w, r, user)
		return
	}
	if device == "" {
		device = "default"
	}
	s.mu.Lock()
	reject := s.Reject
	s.mu.Unlock()
	if reject != 0 {
		http.Error(w, "refused by test", reject)
		return
	}
	if user == "" || user == "bad" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	fc := &wsConn{user: user, device: device, conn: nc, subs: make(map[string]bool)}
	s.mu.Lock()
	if s.conns[user] == nil {
		s.conns[user] = make(map[*wsConn]bool)
	}
	s.conns[user][fc] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns[user], fc)
		if fc.active {
			s.userEvent(user, time.Now().UnixMilli()) // an active connection that closes is a user event
		}
		s.mu.Unlock()
		_ = nc.Close()
	}()
	rw := struct {
		io.Reader
		io.Writer
	}{nc, fc}
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
func (fc *wsConn) Write(p []byte) (int, error) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.conn.Write(p)
}

func (fc *wsConn) send(frame []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = wsutil.WriteServerText(fc.conn, frame)
}

func (fc *wsConn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fc.send(b)
}

func (s *Server) handle(fc *wsConn, data []byte) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		fc.sendJSON(map[string]any{"type": "error", "code": "bad_request", "message": err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Received[fc.user] == nil {
		s.Received[fc.user] = make(map[string]int)
	}
	s.Received[fc.user][f.Type]++
	if s.Ignore != nil && s.Ignore(fc.user, &f) {
		return
	}
	now := time.Now().UnixMilli()
	switch {
	case f.Type == "send":
		s.send(fc, &f, now)
	case f.Type == "receipt":
		s.receipt(fc, &f, now)
	case f.Type == "sync":
		s.sync(fc, &f)
	case f.Type == "msg.info":
		s.msgInfo(fc, &f)
	case f.Type == "profile.set" || f.Type == "profile.get":
		s.profileOp(fc, &f, data, now)
	case strings.HasPrefix(f.Type, "group."):
		s.groupOp(fc, &f, now)
	default:
		if !s.presenceOp(fc, &f, now) {
			fc.sendJSON(map[string]any{"type": "error", "id": f.ID, "code": "unknown_type", "message": f.Type})
		}
	}
}

// ack answers f with an ack carrying fields (nil for none).
func (fc *wsConn) ack(f *Frame, fields map[string]any) {
	a := map[string]any{"type": "ack", "id": f.ID}
	maps.Copy(a, fields)
	fc.sendJSON(a)
}

// fail answers f with an error frame.
func (fc *wsConn) fail(f *Frame, code, message string) {
	fc.sendJSON(map[string]any{"type": "error", "id": f.ID, "code": code, "message": message})
}

func (s *Server) send(fc *wsConn, f *Frame, now int64) {
	s.Sends[fc.user]++
	if s.RejectSend != nil {
		if code := s.RejectSend(fc.user, f); code != "" {
			fc.fail(f, code, "by test")
			return
		}
	}
	var g *group
	if f.Group != "" {
		if g = s.groups[f.Group]; g == nil || g.members[fc.user] == nil {
			fc.fail(f, "not_member", "you are not a member of this group")
			return
		}
	}
	var att map[string]any
	if f.Attachment != nil {
		s.SentAssets[fc.user] = append(s.SentAssets[fc.user], f.Attachment.AssetID)
		to := f.To
		if g != nil {
			to = "#" + g.id
		}
		if att = s.attach(f.Attachment, fc.user, to); att == nil {
			fc.fail(f, "not_found", "no such asset")
			return
		}
	}
	key := fc.user + "\x00" + f.ID
	msgID, dup := s.byClient[key]
	var own []byte // the sender's copy, for fc after the ack
	if !dup {
		s.nextID++
		msgID = fmt.Sprintf("m%06d", s.nextID)
		s.byClient[key] = msgID
		m := &message{id: msgID, from: fc.user, to: f.To, status: "sent"}
		s.msgs[msgID] = m
		fields := map[string]any{"type": "msg", "msg_id": msgID, "from": fc.user, "to": f.To,
			"body": f.Body, "ts": now, "future_field": map[string]any{"x": 1}}
		if att != nil {
			fields["attachment"] = att
		}
		if g != nil {
			m.to, m.group = g.id, g.id
			m.delivered, m.read, m.announced = map[string]int64{}, map[string]int64{}, map[string]bool{}
			fields["to"], fields["group"] = g.id, g.id
			for _, u := range g.order {
				if u != fc.user {
					m.delivered[u], m.read[u] = 0, 0
					s.put(u, fields, nil)
				}
			}
		} else {
			s.put(f.To, fields, nil)
		}
		own = s.put(fc.user, fields, fc)
	}
	if s.KillAfter != nil && s.KillAfter(fc.user, s.Sends[fc.user]) {
		_ = fc.conn.Close()
		return
	}
	fc.ack(f, map[string]any{"msg_id": msgID, "ts": now})
	if own != nil {
		fc.send(own)
	}
}

func (s *Server) receipt(fc *wsConn, f *Frame, now int64) {
	type key struct{ sender, group, status string }
	byKey := make(map[key][]string)
	var keys []key
	owe := func(k key, id string) {
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], id)
	}
	for _, id := range f.MsgIDs {
		m := s.msgs[id]
		switch {
		case m == nil:
		case m.group != "":
			for _, st := range s.groupReceipt(m, fc.user, f.Status, now) {
				owe(key{m.from, m.group, st}, id)
			}
		case m.to == fc.user:
			if f.Status == "read" || m.status == "sent" {
				m.status = f.Status
			}
			owe(key{m.from, "", f.Status}, id)
		}
	}
	for _, k := range keys {
		fields := map[string]any{"type": "receipt", "status": k.status, "msg_ids": byKey[k], "ts": now}
		if k.group != "" {
			fields["group"], fields["all"] = k.group, true
		} else {
			fields["by"] = fc.user
		}
		s.put(k.sender, fields, nil)
	}
	if f.ID != "" {
		fc.ack(f, nil)
	}
}

func (s *Server) sync(fc *wsConn, f *Frame) {
	s.Syncs[fc.user] = append(s.Syncs[fc.user], f.After)
	last := f.After
	for i := f.After; i < uint64(len(s.inbox[fc.user])); i++ {
		if fr := s.inbox[fc.user][i]; fr != nil {
			fc.send(fr)
			last = i + 1
		}
	}
	fc.sendJSON(map[string]any{"type": "synced", "seq": last})
}

// put appends an entry of fields (a copy, with the next seq) to user's
// inbox, delivers it live to user's connections but except, and returns
// its frame.
func (s *Server) put(user string, fields map[string]any, except *wsConn) []byte {
	v := maps.Clone(fields)
	v["seq"] = len(s.inbox[user]) + 1
	return s.store(user, v, except)
}

// Store appends an entry to user's inbox and delivers it live. Call it
// inside With.
func (s *Server) Store(user string, v map[string]any) {
	s.store(user, v, nil)
}

func (s *Server) store(user string, v map[string]any, except *wsConn) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s.inbox[user] = append(s.inbox[user], b)
	if s.DropLive[user] > 0 {
		s.DropLive[user]--
		return nil
	}
	for fc := range s.conns[user] {
		if fc != except {
			fc.send(b)
		}
	}
	return b
}

// Replay sends every stored entry of user again, live.
func (s *Server) Replay(user string) {
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

// Purge forgets user's inbox entries with seq <= upTo (retention).
func (s *Server) Purge(user string, upTo int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < upTo && i < len(s.inbox[user]); i++ {
		s.inbox[user][i] = nil
	}
}

// CloseUser closes user's connections with a close frame.
func (s *Server) CloseUser(user string, code ws.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns[user] {
		fc.wmu.Lock()
		_ = wsutil.WriteServerMessage(fc.conn, ws.OpClose, ws.NewCloseFrameBody(code, reason))
		fc.wmu.Unlock()
	}
}

// KillUser drops user's connections without a close frame.
func (s *Server) KillUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns[user] {
		_ = fc.conn.Close()
	}
}

// SetReject makes upgrades fail with status (0: accept again).
func (s *Server) SetReject(status int) {
	s.mu.Lock()
	s.Reject = status
	s.mu.Unlock()
}

// SyncsOf returns the "after" of every sync user sent.
func (s *Server) SyncsOf(user string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.Syncs[user]...)
}

// Connected returns the number of user's connections.
func (s *Server) Connected(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns[user])
}

// InboxLen returns the highest seq in user's inbox.
func (s *Server) InboxLen(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inbox[user])
}

// With runs f under the server's lock: the place to set hooks and read
// counters.
func (s *Server) With(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}
