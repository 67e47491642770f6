package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/presence"
	"github.com/switchboard/switchboard/protocol"
)

// Presence is what the gateway needs of the presence service;
// *presence.Service implements it. All methods are safe for concurrent
// use; Handle, Unsubscribe and Drop never block on a store.
type Presence interface {
	Handle(ev presence.Event)
	Subscribe(ctx context.Context, sub presence.Conn, users []string) error
	Unsubscribe(sub presence.Conn, users []string)
	Drop(sub presence.Conn)
	Privacy(ctx context.Context, user string) (presence.Privacy, error)
	SetPrivacy(ctx context.Context, user string, lastSeen, online *presence.Visibility) (presence.Privacy, error)
	Contacts(ctx context.Context, user string) ([]string, error)
	AddContacts(ctx context.Context, user string, contacts []string) error
	RemoveContacts(ctx context.Context, user string, contacts []string) error
}

var _ Presence = (*presence.Service)(nil)

// presenceReq is a presence frame handed to a hub worker (the service may
// read or write its store).
type presenceReq struct {
	typ              protocol.Type
	id               []byte
	users            []string
	lastSeen, online []byte
	hasLS, hasOnline bool
}

func (c *wsConn) presenceConn(g *Gateway) presence.Conn {
	return presence.Conn{User: c.user, Node: g.cfg.Node, ID: c.id}
}

// Analytics names of the presence event kinds.
var eventNames = [...]string{presence.Connected: "device.connected", presence.Active: "user.active",
	presence.Inactive: "user.inactive", presence.Disconnected: "device.disconnected"}

// settingsChanged tells every presence service (each gateway's, through
// the bus's presence stream) that user's privacy or contacts changed, so
// that those holding the old ones reload them: without it, another
// gateway would go on showing the user's presence by the old settings.
// The change is durable in the store before this is called.
func (g *Gateway) settingsChanged(user string) {
	ev := presence.Event{Kind: presence.Settings, User: user, Node: g.cfg.Node, TS: time.Now().UnixMilli()}
	var buf [128]byte
	if err := g.bus.Emit(chat.StreamPresence, user, ev.AppendBinary(buf[:0])); err != nil {
		g.log.Warn("presence settings event lost: other gateways keep the old settings until the next change", "user", user, "err", err)
	}
}

// event emits a connection or activity event about c on the bus: to the
// presence stream, which the last-seen worker consumes, and to the
// analytics stream. It runs on c's loop or a hub worker and does not block.
func (g *Gateway) event(c *wsConn, kind presence.EventKind) {
	ts := time.Now().UnixMilli()
	ev := presence.Event{Kind: kind, User: c.user, Device: c.device, Node: g.cfg.Node, Conn: c.id, TS: ts}
	var buf [128]byte
	if err := g.bus.Emit(chat.StreamPresence, c.user, ev.AppendBinary(buf[:0])); err != nil {
		g.log.Warn("presence event lost", "err", err)
	}
	if g.wantEvents() {
		g.emit(c.user, chat.NewEvent(eventNames[kind], c.user, ts).Str("device", deviceName(c.device)))
	}
}

// wantEvents reports whether anyone consumes analytics events.
func (g *Gateway) wantEvents() bool {
	w, ok := g.bus.(chat.StreamWatcher)
	return !ok || w.Consumed(chat.StreamEvents)
}

// emit puts an analytics event on the bus.
func (g *Gateway) emit(user string, e *chat.Event) {
	if err := g.bus.Emit(chat.StreamEvents, user, e.Bytes()); err != nil {
		g.log.Warn("analytics event lost", "err", err)
	}
}

// presence handles active, inactive, presence.sub/unsub, privacy.* and
// contacts.* frames.
func (l *loop) presence(c *wsConn, r *protocol.Request, now int64) {
	g := l.g
	if g.presence == nil {
		l.writeError(c, r.ID, protocol.CodeUnknownType, "presence is not enabled on this server")
		return
	}
	switch r.Type {
	case protocol.TypeActive, protocol.TypeInactive:
		if r.HasID && !validID(r.ID) {
			l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadID)
			return
		}
		kind := presence.Active
		if r.Type == protocol.TypeInactive {
			kind = presence.Inactive
		}
		g.event(c, kind)
		if r.HasID {
			f := getFrame(32 + len(r.ID))
			l.writeDirect(c, f.seal(opText, protocol.AppendAck(f.payload(), r.ID, "", 0)).bytes())
			f.release()
		}
		return
	}
	if !r.HasID || !validID(r.ID) {
		l.writeError(c, r.ID, protocol.CodeBadRequest, msgNeedID)
		return
	}
	pr := &presenceReq{typ: r.Type, id: append([]byte(nil), r.ID...)}
	switch r.Type {
	case protocol.TypePresenceSub, protocol.TypePresenceUnsub, protocol.TypeContactsAdd, protocol.TypeContactsRemove:
		if !r.HasUsers || len(r.Users) == 0 {
			l.writeError(c, r.ID, protocol.CodeBadRequest, `"users" must list at least one user id`)
			return
		}
		for _, u := range r.Users {
			if !validUser(u) {
				l.writeError(c, r.ID, protocol.CodeBadRequest, msgBadUsers)
				return
			}
			pr.users = append(pr.users, string(u))
		}
	case protocol.TypePrivacySet:
		pr.lastSeen, pr.hasLS = append([]byte(nil), r.LastSeen...), r.HasLastSeen
		pr.online, pr.hasOnline = append([]byte(nil), r.Online...), r.HasOnline
	}
	if !g.hub.submit(job{kind: jobPresence, c: c, presence: pr}) {
		l.writeError(c, r.ID, protocol.CodeOverloaded, "server overloaded: retry later with the same id")
	}
}

// presenceJob runs a presence frame on a hub worker and writes its reply.
func (h *hub) presenceJob(c *wsConn, pr *presenceReq) {
	g := h.g
	ctx := context.Background()
	var fields []byte
	var err error
	switch pr.typ {
	case protocol.TypePresenceSub:
		err = g.presence.Subscribe(ctx, c.presenceConn(g), pr.users)
	case protocol.TypePresenceUnsub:
		g.presence.Unsubscribe(c.presenceConn(g), pr.users)
	case protocol.TypePrivacyGet, protocol.TypePrivacySet:
		var p presence.Privacy
		if pr.typ == protocol.TypePrivacyGet {
			p, err = g.presence.Privacy(ctx, c.user)
		} else {
			p, err = h.setPrivacy(ctx, c.user, pr)
		}
		if err == nil {
			fields = appendPrivacy(nil, p)
		}
	case protocol.TypeContactsAdd:
		err = g.presence.AddContacts(ctx, c.user, pr.users)
	case protocol.TypeContactsRemove:
		err = g.presence.RemoveContacts(ctx, c.user, pr.users)
	case protocol.TypeContactsList:
		var users []string
		if users, err = g.presence.Contacts(ctx, c.user); err == nil {
			fields = protocol.AppendStrings(append([]byte(nil), `,"users":`...), users)
		}
	}
	if err == nil {
		h.analytics(c, pr)
		switch pr.typ {
		case protocol.TypePrivacySet, protocol.TypeContactsAdd, protocol.TypeContactsRemove:
			g.settingsChanged(c.user)
		}
	}
	if err != nil {
		code, msg := presenceError(err)
		g.m.errorFrames(code).Inc()
		f := getFrame(64 + len(pr.id) + len(msg))
		c.send(f.seal(opText, protocol.AppendError(f.payload(), pr.id, code, msg)))
		return
	}
	f := getFrame(32 + len(pr.id) + len(fields))
	c.send(f.seal(opText, protocol.AppendAckFields(f.payload(), pr.id, fields)))
}

var errVisibility = &protocol.Error{Code: protocol.CodeBadRequest,
	Message: `"last_seen" and "online" must be "everyone", "contacts" or "nobody"`}

func (h *hub) setPrivacy(ctx context.Context, user string, pr *presenceReq) (presence.Privacy, error) {
	var ls, on *presence.Visibility
	for _, f := range []struct {
		has bool
		raw []byte
		dst **presence.Visibility
	}{{pr.hasLS, pr.lastSeen, &ls}, {pr.hasOnline, pr.online, &on}} {
		if !f.has {
			continue
		}
		v, ok := presence.ParseVisibility(string(f.raw))
		if !ok {
			return presence.Privacy{}, errVisibility
		}
		*f.dst = &v
	}
	if ls == nil && on == nil {
		return presence.Privacy{}, &protocol.Error{Code: protocol.CodeBadRequest, Message: `privacy.set needs "last_seen", "online" or both`}
	}
	return h.g.presence.SetPrivacy(ctx, user, ls, on)
}

func appendPrivacy(d []byte, p presence.Privacy) []byte {
	d = append(d, `,"last_seen":`...)
	d = protocol.AppendString(d, p.LastSeen.String())
	d = append(d, `,"online":`...)
	return protocol.AppendString(d, p.Online.String())
}

// presenceError maps the presence service's errors to error frames.
func presenceError(err error) (code, msg string) {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code, pe.Message
	case errors.Is(err, presence.ErrTooManySubscriptions):
		return protocol.CodeTooManySubscriptions, "a connection watches at most presence.max_subscriptions users; unsubscribe some first"
	case errors.Is(err, presence.ErrTooManyContacts):
		return protocol.CodeBadRequest, "over presence.max_contacts contacts; nothing was added"
	case errors.Is(err, presence.ErrInvalidUser):
		return protocol.CodeBadRequest, `"users" entries must be user ids`
	}
	return errorCode(err)
}

// Push delivers a presence frame to one connection (presence.Pusher): on
// this node through its loop's mailbox, on another node through the bus.
// It does not block.
func (g *Gateway) Push(to presence.Conn, frame []byte) {
	if to.Node != g.cfg.Node {
		d := chat.Delivery{Items: []chat.Item{{User: to.User, Conn: to.ID, Head: frame}}}
		if err := g.bus.Publish(context.Background(), to.Node, &d); err != nil {
			g.log.Warn("presence push failed", "node", to.Node, "err", err)
		}
		return
	}
	s := g.hub.shard(to.User)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i := slices.IndexFunc(s.users[to.User], func(c *wsConn) bool { return c.id == to.ID }); i >= 0 {
		s.users[to.User][i].send(textFrame(frame))
	}
}

// analytics emits the event of a presence request that changed something.
func (h *hub) analytics(c *wsConn, pr *presenceReq) {
	if !h.g.wantEvents() {
		return
	}
	now := time.Now().UnixMilli()
	var e *chat.Event
	switch pr.typ {
	case protocol.TypePrivacySet:
		e = chat.NewEvent("privacy.set", c.user, now)
		if pr.hasLS {
			e.Str("last_seen", string(pr.lastSeen))
		}
		if pr.hasOnline {
			e.Str("online", string(pr.online))
		}
	case protocol.TypeContactsAdd:
		e = chat.NewEvent("contacts.added", c.user, now).Int("count", int64(len(pr.users)))
	case protocol.TypeContactsRemove:
		e = chat.NewEvent("contacts.removed", c.user, now).Int("count", int64(len(pr.users)))
	case protocol.TypePresenceSub:
		e = chat.NewEvent("presence.subscribed", c.user, now).Int("count", int64(len(pr.users)))
	default:
		return
	}
	h.g.emit(c.user, e)
}
