package fakeserver

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

type group struct {
	id, name  string
	icon      string // an asset id, or ""
	created   int64
	createdBy string
	members   map[string]*member
	order     []string // members, longest-standing first
}

type member struct {
	admin bool
}

func (g *group) add(user string, admin bool) bool {
	if g.members[user] != nil {
		return false
	}
	g.members[user] = &member{admin: admin}
	g.order = append(g.order, user)
	return true
}

func (g *group) remove(user string) bool {
	if g.members[user] == nil {
		return false
	}
	delete(g.members, user)
	g.order = slices.DeleteFunc(g.order, func(u string) bool { return u == user })
	if len(g.order) > 0 && !slices.ContainsFunc(g.order, func(u string) bool { return g.members[u].admin }) {
		g.members[g.order[0]].admin = true // the longest-standing member
	}
	return true
}

// adminsBut counts g's admins not in users.
func (g *group) adminsBut(users []string) int {
	n := 0
	for u, m := range g.members {
		if m.admin && !slices.Contains(users, u) {
			n++
		}
	}
	return n
}

// groupOp handles group.* frames. Membership changes are stored in the
// inbox of every member before and after the change.
func (s *Server) groupOp(fc *wsConn, f *Frame, now int64) {
	switch f.Type {
	case "group.create":
		s.groupCreate(fc, f, now)
		return
	case "group.list":
		s.groupList(fc, f)
		return
	}
	g := s.groups[f.Group]
	switch {
	case g == nil:
		fc.fail(f, "not_found", "no such group")
		return
	case g.members[fc.user] == nil:
		fc.fail(f, "not_member", "you are not a member of this group")
		return
	}
	switch f.Type {
	case "group.info":
		fc.ack(f, groupInfo(g))
		return
	case "group.leave":
		s.groupEvent(g, fc.user, "left", []string{fc.user}, "", now, func() { g.remove(fc.user) })
		fc.ack(f, nil)
		return
	}
	if !g.members[fc.user].admin {
		fc.fail(f, "not_admin", "only admins may do that")
		return
	}
	if code, msg := s.adminOp(g, fc.user, f, now); code != "" {
		fc.fail(f, code, msg)
		return
	}
	fc.ack(f, nil)
}

// adminOp applies a change only admins may make; it returns an error code
// and message, or "".
func (s *Server) adminOp(g *group, by string, f *Frame, now int64) (code, msg string) {
	switch f.Type {
	case "group.add":
		var added []string
		for _, u := range f.Members {
			if g.members[u] == nil && !slices.Contains(added, u) {
				added = append(added, u)
			}
		}
		if len(added) > 0 {
			s.groupEvent(g, by, "added", added, "", now, func() {
				for _, u := range added {
					g.add(u, false)
				}
			})
		}
	case "group.remove":
		var removed []string
		for _, u := range f.Members {
			if g.members[u] != nil && !slices.Contains(removed, u) {
				removed = append(removed, u)
			}
		}
		if len(removed) > 0 {
			s.groupEvent(g, by, "removed", removed, "", now, func() {
				for _, u := range removed {
					g.remove(u)
				}
			})
		}
	case "group.promote", "group.demote":
		admin := f.Type == "group.promote"
		if !admin && g.adminsBut(f.Members) == 0 {
			return "bad_request", "cannot demote the last admin"
		}
		event := map[bool]string{true: "promoted", false: "demoted"}[admin]
		s.groupEvent(g, by, event, f.Members, "", now, func() {
			for _, u := range f.Members {
				if m := g.members[u]; m != nil {
					m.admin = admin
				}
			}
		})
	case "group.rename":
		s.groupEvent(g, by, "renamed", nil, f.Name, now, func() { g.name = f.Name })
	case "group.icon":
		if f.Icon == nil {
			return "bad_request", `missing "icon"`
		}
		if *f.Icon != "" {
			if code, msg := s.pin(*f.Icon, by, "#"+g.id); code != "" {
				return code, msg
			}
		}
		s.groupEvent(g, by, "icon", nil, "", now, func() { g.icon = *f.Icon })
	default:
		return "unknown_type", f.Type
	}
	return "", ""
}

func (s *Server) groupCreate(fc *wsConn, f *Frame, now int64) {
	if f.Name == "" {
		fc.fail(f, "bad_request", `missing "name"`)
		return
	}
	s.nextID++
	g := &group{id: fmt.Sprintf("01G%023d", s.nextID), name: f.Name, created: now, createdBy: fc.user,
		members: make(map[string]*member)}
	g.add(fc.user, true)
	for _, u := range f.Members {
		g.add(u, false)
	}
	s.groups[g.id] = g
	s.groupEvent(g, fc.user, "created", slices.Clone(g.order), g.name, now, func() {})
	fc.ack(f, map[string]any{"group_id": g.id})
}

// groupEvent applies change to g and stores a group frame in the inbox of
// everyone who is a member before or after it.
func (s *Server) groupEvent(g *group, by, event string, members []string, name string, now int64, change func()) {
	before := slices.Clone(g.order)
	change()
	fields := map[string]any{"type": "group", "group": g.id, "event": event, "by": by, "ts": now}
	if len(members) > 0 {
		fields["members"] = members
	}
	if name != "" {
		fields["name"] = name
	}
	if event == "icon" {
		fields["icon"] = g.icon
	}
	for _, u := range before {
		s.put(u, fields, nil)
	}
	for _, u := range g.order {
		if !slices.Contains(before, u) {
			s.put(u, fields, nil)
		}
	}
}

func (s *Server) groupList(fc *wsConn, f *Frame) {
	groups := []map[string]any{}
	for _, g := range s.groups {
		if g.members[fc.user] != nil {
			groups = append(groups, map[string]any{"group_id": g.id, "name": g.name, "members": len(g.order)})
		}
	}
	slices.SortFunc(groups, func(a, b map[string]any) int {
		return strings.Compare(a["group_id"].(string), b["group_id"].(string))
	})
	fc.ack(f, map[string]any{"groups": groups})
}

func groupInfo(g *group) map[string]any {
	users := slices.Sorted(maps.Keys(g.members))
	members := make([]map[string]any, 0, len(users))
	for _, u := range users {
		m := map[string]any{"user": u}
		if g.members[u].admin {
			m["admin"] = true
		}
		members = append(members, m)
	}
	info := map[string]any{"group": g.id, "name": g.name, "created": g.created, "created_by": g.createdBy, "members": members}
	if g.icon != "" {
		info["icon"] = g.icon
	}
	return info
}

// groupReceipt records that user has group message m at status (read
// implies delivered) and returns the statuses that every recipient still
// in the group has now reached for the first time: the sender is owed an
// all:true receipt for each.
func (s *Server) groupReceipt(m *message, user, status string, now int64) []string {
	if _, ok := m.delivered[user]; !ok {
		return nil // not a recipient
	}
	if m.delivered[user] == 0 {
		m.delivered[user] = now
	}
	if status == "read" && m.read[user] == 0 {
		m.read[user] = now
	}
	g := s.groups[m.group]
	var owed []string
	for _, w := range []struct {
		status string
		at     map[string]int64
	}{{"delivered", m.delivered}, {"read", m.read}} {
		all := true
		for u, ts := range w.at {
			if ts == 0 && g != nil && g.members[u] != nil {
				all = false // someone still in the group does not have it yet
			}
		}
		if all && !m.announced[w.status] {
			m.announced[w.status] = true
			owed = append(owed, w.status)
		}
	}
	return owed
}

// msgInfo answers msg.info for one of the sender's messages.
func (s *Server) msgInfo(fc *wsConn, f *Frame) {
	m := s.msgs[f.MsgID]
	if m == nil || m.from != fc.user {
		fc.fail(f, "not_found", "no such message of yours")
		return
	}
	if m.group == "" {
		fc.ack(f, map[string]any{"msg_id": m.id, "to": m.to, "status": m.status})
		return
	}
	users := make([]string, 0, len(m.delivered))
	for u := range m.delivered {
		users = append(users, u)
	}
	slices.Sort(users)
	members := make([]map[string]any, 0, len(users))
	for _, u := range users {
		e := map[string]any{"user": u}
		if ts := m.delivered[u]; ts != 0 {
			e["delivered"] = ts
		}
		if ts := m.read[u]; ts != 0 {
			e["read"] = ts
		}
		members = append(members, e)
	}
	fc.ack(f, map[string]any{"msg_id": m.id, "group": m.group, "members": members})
}

// GroupMembers returns the members of group, sorted, and whether it exists.
func (s *Server) GroupMembers(group string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		return nil, false
	}
	return slices.Sorted(maps.Keys(g.members)), true
}
