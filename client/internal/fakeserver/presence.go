package fakeserver

import (
	"maps"
	"slices"
)

// userPresence is what the server keeps of a user's presence.
type userPresence struct {
	lastSeen    int64  // unix ms of the latest user event; 0 unknown
	lastSeenVis string // who may see it: everyone, contacts or nobody
	onlineVis   string // who may see online: the same
	contacts    map[string]bool
}

func (s *Server) pres(user string) *userPresence {
	p := s.presence[user]
	if p == nil {
		p = &userPresence{lastSeenVis: "everyone", onlineVis: "everyone", contacts: make(map[string]bool)}
		s.presence[user] = p
	}
	return p
}

// presenceOp handles active, inactive, presence.*, privacy.*, contacts.*,
// devices.list and typing, and reports whether f was one of them.
func (s *Server) presenceOp(fc *wsConn, f *Frame, now int64) bool {
	switch f.Type {
	case "active", "inactive":
		fc.active = f.Type == "active"
		s.userEvent(fc.user, now)
		s.ackIfID(fc, f, nil)
	case "presence.sub":
		for _, u := range f.Users {
			fc.subs[u] = true
			fc.sendJSON(s.presenceFrame(fc.user, u))
		}
		fc.ack(f, nil)
	case "presence.unsub":
		for _, u := range f.Users {
			delete(fc.subs, u)
		}
		fc.ack(f, nil)
	case "privacy.get", "privacy.set":
		s.privacy(fc, f)
	case "contacts.add", "contacts.remove", "contacts.list":
		s.contacts(fc, f)
	case "devices.list":
		s.devices(fc, f)
	case "typing":
		s.typing(fc, f)
	default:
		return false
	}
	return true
}

func (s *Server) ackIfID(fc *wsConn, f *Frame, fields map[string]any) {
	if f.ID != "" {
		fc.ack(f, fields)
	}
}

// online reports whether any of user's connections is active.
func (s *Server) online(user string) bool {
	for c := range s.conns[user] {
		if c.active {
			return true
		}
	}
	return false
}

// userEvent moves user's last seen to now and pushes the change to the
// connections watching user.
func (s *Server) userEvent(user string, now int64) {
	s.pres(user).lastSeen = now
	for viewer, conns := range s.conns {
		for c := range conns {
			if c.subs[user] {
				c.sendJSON(s.presenceFrame(viewer, user))
			}
		}
	}
}

// presenceFrame is what viewer may see of target: the privacy rule is
// reciprocal, and everyone sees themselves.
func (s *Server) presenceFrame(viewer, target string) map[string]any {
	v := map[string]any{"type": "presence", "user": target}
	if s.sees(viewer, target, false) {
		v["online"] = s.online(target)
	}
	if ls := s.pres(target).lastSeen; ls != 0 && s.sees(viewer, target, true) {
		v["last_seen"] = ls
	}
	return v
}

func (s *Server) sees(viewer, target string, lastSeen bool) bool {
	return viewer == target || (s.admits(target, viewer, lastSeen) && s.admits(viewer, target, lastSeen))
}

// admits reports whether owner's setting lets other see owner's last seen
// (or online).
func (s *Server) admits(owner, other string, lastSeen bool) bool {
	p := s.pres(owner)
	vis := p.onlineVis
	if lastSeen {
		vis = p.lastSeenVis
	}
	switch vis {
	case "everyone":
		return true
	case "contacts":
		return p.contacts[other]
	}
	return false
}

func (s *Server) privacy(fc *wsConn, f *Frame) {
	p := s.pres(fc.user)
	if f.Type == "privacy.set" {
		valid := func(v *string) bool {
			return v == nil || *v == "everyone" || *v == "contacts" || *v == "nobody"
		}
		if (f.LastSeen == nil && f.Online == nil) || !valid(f.LastSeen) || !valid(f.Online) {
			fc.fail(f, "bad_request", `"last_seen" and "online" must be "everyone", "contacts" or "nobody"`)
			return
		}
		if f.LastSeen != nil {
			p.lastSeenVis = *f.LastSeen
		}
		if f.Online != nil {
			p.onlineVis = *f.Online
		}
	}
	fc.ack(f, map[string]any{"last_seen": p.lastSeenVis, "online": p.onlineVis})
}

func (s *Server) contacts(fc *wsConn, f *Frame) {
	p := s.pres(fc.user)
	switch f.Type {
	case "contacts.add":
		for _, u := range f.Users {
			p.contacts[u] = true
		}
	case "contacts.remove":
		for _, u := range f.Users {
			delete(p.contacts, u)
		}
	default:
		fc.ack(f, map[string]any{"users": slices.Sorted(maps.Keys(p.contacts))})
		return
	}
	fc.ack(f, nil)
}

func (s *Server) devices(fc *wsConn, f *Frame) {
	count := make(map[string]int)
	for c := range s.conns[fc.user] {
		count[c.device]++
	}
	devices := []map[string]any{}
	for _, d := range slices.Sorted(maps.Keys(count)) {
		e := map[string]any{"device": d, "connections": count[d]}
		if d == fc.device {
			e["current"] = true
		}
		devices = append(devices, e)
	}
	fc.ack(f, map[string]any{"devices": devices})
}

// typing forwards a typing frame to the peer's connections, or to the
// other members' of the group.
func (s *Server) typing(fc *wsConn, f *Frame) {
	out := map[string]any{"type": "typing", "from": fc.user}
	if f.Stop {
		out["stop"] = true
	}
	var to []string
	if f.Group != "" {
		g := s.groups[f.Group]
		if g == nil || g.members[fc.user] == nil {
			fc.fail(f, "not_member", "you are not a member of this group")
			return
		}
		out["group"] = g.id
		to = slices.DeleteFunc(slices.Clone(g.order), func(u string) bool { return u == fc.user })
	} else {
		out["to"] = f.To
		to = []string{f.To}
	}
	for _, u := range to {
		for c := range s.conns[u] {
			c.sendJSON(out)
		}
	}
	s.ackIfID(fc, f, nil)
}
