package chat

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/switchboard/switchboard/protocol"
)

// GroupOp is the operation of a KindGroup request.
type GroupOp uint8

// Group operations. Only admins add, remove, promote, demote, rename and
// set the icon.
const (
	GroupCreate  GroupOp = iota + 1 // Name, Members (besides the creator) → group_id
	GroupAdd                        // Members join
	GroupRemove                     // Members are removed
	GroupLeave                      // From leaves
	GroupPromote                    // Members become admins
	GroupDemote                     // Members stop being admins
	GroupRename                     // Name
	GroupInfo                       // → group: name, members, admins
	GroupList                       // → groups: the groups From is in
	GroupIcon                       // AssetID, an image of From's, becomes the icon ("" removes it)
)

// MaxGroupNameBytes bounds a group's name.
const MaxGroupNameBytes = 256

// Errors a group request completes with; the gateway sends their code and
// message in the error frame.
var (
	ErrGroupNotFound = &protocol.Error{Code: protocol.CodeNotFound, Message: "no such group"}
	ErrNotMember     = &protocol.Error{Code: protocol.CodeNotMember, Message: "you are not a member of this group"}
	ErrNotAdmin      = &protocol.Error{Code: protocol.CodeNotAdmin, Message: "only the group's admins may do that"}
	ErrMsgNotFound   = &protocol.Error{Code: protocol.CodeNotFound, Message: "no such message of yours (unknown, expired, or sent by someone else)"}
	errLastAdmin     = &protocol.Error{Code: protocol.CodeBadRequest, Message: "a group needs at least one admin: promote another member first"}
)

func badRequest(msg string) error {
	return &protocol.Error{Code: protocol.CodeBadRequest, Message: msg}
}

// A group's log is an inbox of its own, named by groupInbox: its seq (the
// group seq) numbers the group's messages, which it stores once, and is
// what members' receipt watermarks count. The prefix is a control
// character, which no user id may hold, so a group's inbox is no user's.
const groupInboxPrefix = "\x01"

func groupInbox(id string) string { return groupInboxPrefix + id }

func isGroupInbox(to string) bool { return len(to) > 1 && to[0] == groupInboxPrefix[0] }

// State record keys (chat.KV).
func groupKey(id string) string        { return "g/" + id }
func aggKey(id string) string          { return "a/" + id }
func wmPrefix(id string) string        { return "w/" + id + "\x00" }
func wmKey(id, user string) string     { return wmPrefix(id) + user }
func userGroupsKey(user string) string { return "u/" + user }

// createKey is the state record of a group.create's client id: the group
// it created, so that a retried create makes no second group.
func createKey(user string, id []byte) string { return "gc/" + user + "\x00" + string(id) }
func validMember(u []byte) bool {
	return len(u) > 0 && len(u) <= 128 && utf8.Valid(u) && !hasControl(u)
}
func groupError(limit int) *protocol.Error {
	return &protocol.Error{Code: protocol.CodeGroupFull, Message: fmt.Sprintf("a group has at most %d members", limit)}
}

func hasControl(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// Watermark kinds.
const (
	wmDelivered = 0
	wmRead      = 1
)

// histLen is how many advances of each watermark a member keeps, for
// msg.info's times: storage per member is bounded, not per message.
const histLen = 8

// pendCap bounds the messages per group kept in memory while they wait
// for every member's receipt; older ones are read back from the group log.
const pendCap = 8192

// groupState is the committer's view of a group. Owned by the committer.
type groupState struct {
	id        string
	name      string
	icon      string // an asset id, or ""
	createdBy string
	created   int64
	members   map[string]*member

	// all[k] is the group seq up to which every message has reached
	// (delivered) or been read by all of its recipients.
	all     [2]uint64
	pend    []pendingMsg // messages after min(all), in group seq order
	buckets [2]buckets   // the members' watermarks, counted by value

	inBatch, recordDirty, aggDirty bool
}

type member struct {
	admin   bool
	joined  int64  // unix ms
	joinSeq uint64 // the group seq when they joined: earlier messages are not theirs
	wm      [2]watermark
	dirty   bool
}

// watermark says that a member has every message up to seq.
type watermark struct {
	seq     uint64
	hist    []advance // the latest advances, oldest first
	trimmed bool      // older advances were dropped
}

type advance struct {
	seq uint64
	ts  int64
}

func (w *watermark) advance(seq uint64, ts int64) {
	w.seq = seq
	if len(w.hist) == histLen {
		copy(w.hist, w.hist[1:])
		w.hist = w.hist[:histLen-1]
		w.trimmed = true
	}
	w.hist = append(w.hist, advance{seq, ts})
}

// covered returns when the watermark first reached seq, as far as its
// history remembers (exact unless trimmed dropped that advance: then the
// earliest remembered time, an upper bound), and false if it has not.
func (w *watermark) covered(seq uint64) (int64, bool) {
	if w.seq < seq {
		return 0, false
	}
	for _, a := range w.hist {
		if a.seq >= seq {
			return a.ts, true
		}
	}
	return 0, true
}

type pendingMsg struct {
	seq  uint64
	id   string
	from string
}

// buckets counts members per watermark value, sorted by value: members'
// watermarks bunch up at a few values, so the minimum (what "every member
// has it" needs) costs O(1) and an advance O(distinct values).
type buckets []bucket

type bucket struct {
	val uint64
	n   int
}

func (bs *buckets) add(v uint64) {
	i := sort.Search(len(*bs), func(i int) bool { return (*bs)[i].val >= v })
	if i < len(*bs) && (*bs)[i].val == v {
		(*bs)[i].n++
		return
	}
	*bs = slices.Insert(*bs, i, bucket{v, 1})
}

func (bs *buckets) remove(v uint64) {
	i := sort.Search(len(*bs), func(i int) bool { return (*bs)[i].val >= v })
	if i == len(*bs) || (*bs)[i].val != v {
		return
	}
	if (*bs)[i].n--; (*bs)[i].n == 0 {
		*bs = slices.Delete(*bs, i, i+1)
	}
}

// minExcept returns the lowest watermark of the members other than one
// whose watermark is v (ex: whether there is such a member).
func (bs buckets) minExcept(v uint64, ex bool) uint64 {
	switch {
	case len(bs) == 0:
		return math.MaxUint64
	case ex && bs[0].val == v && bs[0].n == 1:
		if len(bs) > 1 {
			return bs[1].val
		}
		return math.MaxUint64
	}
	return bs[0].val
}

// groupRecord is the stored form of a group (state key g/<id>), rewritten
// when its membership or name changes.
type groupRecord struct {
	Name    string         `json:"name"`
	Icon    string         `json:"icon,omitempty"`
	Created int64          `json:"created"`
	By      string         `json:"by"`
	Members []memberRecord `json:"members"`
}

type memberRecord struct {
	User    string `json:"u"`
	Admin   bool   `json:"a,omitempty"`
	Joined  int64  `json:"j"`
	JoinSeq uint64 `json:"s,omitempty"`
}

// group returns the state of group id, loading it on a cache miss. A
// group another partition owns is read from the store each time, never
// cached: it is theirs to change (a copy here is for reading only).
func (s *Service) group(ctx context.Context, id string) (*groupState, error) {
	own := s.owns(groupInbox(id))
	if g, ok := s.groups.get(id); ok && own {
		return g, nil
	}
	var rec groupRecord
	var decErr error
	found, err := s.store.GetState(ctx, groupKey(id), func(v []byte) { decErr = json.Unmarshal(v, &rec) })
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrGroupNotFound
	}
	if decErr != nil {
		return nil, fmt.Errorf("switchboard: group %s record: %w", id, decErr)
	}
	g := &groupState{id: id, name: rec.Name, icon: rec.Icon, createdBy: rec.By, created: rec.Created,
		members: make(map[string]*member, len(rec.Members))}
	for _, m := range rec.Members {
		mem := &member{admin: m.Admin, joined: m.Joined, joinSeq: m.JoinSeq}
		mem.wm[0].seq, mem.wm[1].seq = m.JoinSeq, m.JoinSeq
		g.members[m.User] = mem
	}
	prefix := wmPrefix(id)
	err = s.store.ScanState(ctx, prefix, func(k, v []byte) error {
		if mem := g.members[string(k[len(prefix):])]; mem != nil {
			return decodeWatermarks(v, &mem.wm)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	_, err = s.store.GetState(ctx, aggKey(id), func(v []byte) {
		if len(v) == 16 {
			g.all[0], g.all[1] = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		}
	})
	if err != nil {
		return nil, err
	}
	for _, mem := range g.members {
		g.buckets[0].add(mem.wm[0].seq)
		g.buckets[1].add(mem.wm[1].seq)
	}
	if own {
		s.groups.put(id, g)
	}
	return g, nil
}

func (g *groupState) record() groupRecord {
	rec := groupRecord{Name: g.name, Icon: g.icon, Created: g.created, By: g.createdBy,
		Members: make([]memberRecord, 0, len(g.members))}
	for _, u := range g.sortedMembers() {
		m := g.members[u]
		rec.Members = append(rec.Members, memberRecord{User: u, Admin: m.admin, Joined: m.joined, JoinSeq: m.joinSeq})
	}
	return rec
}

func (g *groupState) sortedMembers() []string {
	users := make([]string, 0, len(g.members))
	for u := range g.members {
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}

func (g *groupState) admins() int {
	n := 0
	for _, m := range g.members {
		if m.admin {
			n++
		}
	}
	return n
}

func appendWatermarks(dst []byte, wm *[2]watermark) []byte {
	for k := range wm {
		w := &wm[k]
		dst = binary.AppendUvarint(dst, w.seq)
		t := byte(0)
		if w.trimmed {
			t = 1
		}
		dst = append(dst, t, byte(len(w.hist)))
		for _, a := range w.hist {
			dst = binary.AppendUvarint(dst, a.seq)
			dst = binary.AppendVarint(dst, a.ts)
		}
	}
	return dst
}

var errCorruptState = errors.New("switchboard: corrupt state record")

func decodeWatermarks(b []byte, wm *[2]watermark) error {
	for k := range wm {
		w := &wm[k]
		seq, n := binary.Uvarint(b)
		if n <= 0 || len(b) < n+2 {
			return errCorruptState
		}
		w.seq, w.trimmed = seq, b[n] == 1
		count := int(b[n+1])
		b = b[n+2:]
		w.hist = w.hist[:0]
		for range count {
			s, n := binary.Uvarint(b)
			if n <= 0 {
				return errCorruptState
			}
			ts, m := binary.Varint(b[n:])
			if m <= 0 {
				return errCorruptState
			}
			w.hist = append(w.hist, advance{s, ts})
			b = b[n+m:]
		}
	}
	return nil
}

// touch records that g changed in this batch.
func (b *building) touch(g *groupState) {
	if !g.inBatch {
		g.inBatch = true
		b.touched = append(b.touched, g)
	}
}

// userGroups returns the ids of the groups user is in.
func (s *Service) userGroups(ctx context.Context, user string) ([]string, error) {
	if ids, ok := s.ugroups.get(user); ok {
		return ids, nil
	}
	var ids []string
	var decErr error
	_, err := s.store.GetState(ctx, userGroupsKey(user), func(v []byte) { decErr = json.Unmarshal(v, &ids) })
	if err == nil {
		err = decErr
	}
	if err != nil {
		return nil, err
	}
	s.ugroups.put(user, ids)
	return ids, nil
}

// setInGroup adds or removes group id in user's list of groups (the
// user's partition's to write: forwarded there when it is another's).
func (s *Service) setInGroup(ctx context.Context, b *building, user, id string, in bool) error {
	if !s.owns(user) {
		b.forwardGroupMember(PartitionOf(user, s.cfg.Partitions), user, id, in)
		return nil
	}
	ids, err := s.userGroups(ctx, user)
	if err != nil {
		return err
	}
	i, found := slices.BinarySearch(ids, id)
	switch {
	case in && !found:
		ids = slices.Insert(slices.Clone(ids), i, id)
	case !in && found:
		ids = slices.Delete(slices.Clone(ids), i, i+1)
	default:
		return nil
	}
	s.ugroups.put(user, ids)
	if b.users == nil {
		b.users = make(map[string]bool)
	}
	b.users[user] = true
	return nil
}

// groupOp runs a KindGroup request.
func (s *Service) groupOp(ctx context.Context, b *building, r *Request) Result {
	switch r.Op {
	case GroupCreate:
		return s.groupCreate(ctx, b, r)
	case GroupList:
		return s.groupList(ctx, r)
	}
	g, err := s.group(ctx, string(r.Group))
	if err != nil {
		return Result{Err: err}
	}
	me := g.members[r.From]
	if me == nil {
		return Result{Err: ErrNotMember}
	}
	switch r.Op {
	case GroupInfo:
		return Result{Data: appendGroupInfo(nil, g)}
	case GroupLeave:
		return s.groupChange(ctx, b, g, r, "left", []string{r.From})
	}
	if !me.admin {
		return Result{Err: ErrNotAdmin}
	}
	if r.Op == GroupRename {
		name, err := groupName(r.Name)
		if err != nil {
			return Result{Err: err}
		}
		g.name = name
		return s.groupChange(ctx, b, g, r, "renamed", nil)
	}
	if r.Op == GroupIcon {
		return s.groupIcon(ctx, b, g, r)
	}
	users, err := memberList(r.Members)
	if err != nil {
		return Result{Err: err}
	}
	switch r.Op {
	case GroupAdd:
		users = slices.DeleteFunc(users, func(u string) bool { return g.members[u] != nil })
		if len(g.members)+len(users) > s.cfg.MaxGroupMembers {
			return Result{Err: groupError(s.cfg.MaxGroupMembers)}
		}
		return s.groupChange(ctx, b, g, r, "added", users)
	case GroupRemove:
		users = slices.DeleteFunc(users, func(u string) bool { return g.members[u] == nil })
		return s.groupChange(ctx, b, g, r, "removed", users)
	case GroupPromote, GroupDemote:
		for _, u := range users {
			if g.members[u] == nil {
				return Result{Err: badRequest(strconv.Quote(u) + " is not a member of this group")}
			}
		}
		promote := r.Op == GroupPromote
		users = slices.DeleteFunc(users, func(u string) bool { return g.members[u].admin == promote })
		if !promote {
			if g.admins() == len(users) {
				return Result{Err: errLastAdmin}
			}
			return s.groupChange(ctx, b, g, r, "demoted", users)
		}
		return s.groupChange(ctx, b, g, r, "promoted", users)
	}
	return Result{Err: badRequest("unknown group operation")}
}

func groupName(raw []byte) (string, error) {
	if len(raw) == 0 || len(raw) > MaxGroupNameBytes || hasControl(raw) {
		return "", badRequest(fmt.Sprintf(`"name" must be 1 to %d bytes without control characters`, MaxGroupNameBytes))
	}
	return string(raw), nil
}

// memberList returns the distinct user ids of raw, sorted.
func memberList(raw [][]byte) ([]string, error) {
	if len(raw) == 0 {
		return nil, badRequest(`"members" must name at least one user`)
	}
	users := make([]string, 0, len(raw))
	for _, u := range raw {
		if !validMember(u) {
			return nil, badRequest(`"members" entries must be user ids: 1 to 128 bytes without control characters`)
		}
		users = append(users, string(u))
	}
	slices.Sort(users)
	return slices.Compact(users), nil
}

func (s *Service) groupCreate(ctx context.Context, b *building, r *Request) Result {
	name, err := groupName(r.Name)
	if err != nil {
		return Result{Err: err}
	}
	var users []string
	if len(r.Members) > 0 {
		if users, err = memberList(r.Members); err != nil {
			return Result{Err: err}
		}
	}
	if i, found := slices.BinarySearch(users, r.From); !found {
		users = slices.Insert(users, i, r.From)
	}
	if len(users) > s.cfg.MaxGroupMembers {
		return Result{Err: groupError(s.cfg.MaxGroupMembers)}
	}
	// Idempotent like a send: the same client id creates the group once.
	key := clientKey{r.From, "group.create\x00" + string(r.ClientID)}
	if id, ok := b.newClient[key]; ok {
		return Result{Data: appendField(nil, "group_id", id)}
	}
	if id, ok := s.clientIx.get(key); ok {
		return Result{Data: appendField(nil, "group_id", id)}
	}
	var known string
	if _, err := s.store.GetState(ctx, createKey(r.From, r.ClientID), func(v []byte) { known = string(v) }); err != nil {
		return Result{Err: err}
	}
	if known != "" {
		s.clientIx.put(key, known)
		return Result{Data: appendField(nil, "group_id", known)}
	}
	now := b.now.UnixMilli()
	id := s.ids.Next(b.now)
	for !s.owns(groupInbox(id)) {
		// Partitioned: the group is created by its creator's partition,
		// so its id must be one that partition owns (PartitionOf); a
		// few tries in n.
		id = s.ids.Next(b.now)
	}
	g := &groupState{id: id, name: name, createdBy: r.From, created: now,
		members: make(map[string]*member, len(users))}
	for _, u := range users {
		g.members[u] = &member{admin: u == r.From, joined: now}
		g.buckets[0].add(0)
		g.buckets[1].add(0)
	}
	s.groups.put(g.id, g)
	b.newClient[key] = g.id
	b.c.batch.State = append(b.c.batch.State, KV{Key: createKey(r.From, r.ClientID), Value: []byte(g.id)})
	res := s.groupChange(ctx, b, g, r, "created", users)
	if res.Err == nil {
		res.Data = appendField(nil, "group_id", g.id)
	}
	return res
}

// groupChange applies a membership or name change to g (already checked)
// and tells the members: one group frame, stored once, in the inbox of
// every member before and after the change.
func (s *Service) groupChange(ctx context.Context, b *building, g *groupState, r *Request, event string, users []string) Result {
	if len(users) == 0 && event != "renamed" && event != "icon" {
		return Result{} // nothing changes: the ack is enough
	}
	c := b.c
	now := b.now.UnixMilli()
	head, err := s.headSeq(ctx, groupInbox(g.id))
	if err != nil {
		b.fatal = err
		return Result{Err: err}
	}
	// Who hears of it: every member before and after the change.
	audience := g.sortedMembers()
	switch event {
	case "added":
		for _, u := range users {
			mem := &member{joined: now, joinSeq: head}
			mem.wm[0].seq, mem.wm[1].seq = head, head
			g.members[u] = mem
			g.buckets[0].add(head)
			g.buckets[1].add(head)
			if err := s.setInGroup(ctx, b, u, g.id, true); err != nil {
				b.fatal = err
				return Result{Err: err}
			}
		}
		audience = g.sortedMembers()
	case "created":
		for _, u := range users {
			if err := s.setInGroup(ctx, b, u, g.id, true); err != nil {
				b.fatal = err
				return Result{Err: err}
			}
		}
	case "removed", "left":
		for _, u := range users {
			mem := g.members[u]
			g.buckets[0].remove(mem.wm[0].seq)
			g.buckets[1].remove(mem.wm[1].seq)
			delete(g.members, u)
			c.batch.State = append(c.batch.State, KV{Key: wmKey(g.id, u)})
			if err := s.setInGroup(ctx, b, u, g.id, false); err != nil {
				b.fatal = err
				return Result{Err: err}
			}
		}
	case "promoted", "demoted":
		for _, u := range users {
			g.members[u].admin = event == "promoted"
		}
	}
	if err := s.groupEvent(ctx, b, g, audience, event, r.From, users); err != nil {
		return Result{Err: err}
	}
	ev := NewEvent("group."+event, r.From, now).Str("group", g.id)
	if len(users) > 0 && event != "left" {
		ev.Strs("members", users)
	}
	if event == "created" || event == "renamed" {
		ev.Str("name", g.name)
	}
	if event == "icon" {
		ev.Str("icon", g.icon)
	}
	b.analytics(r.From, ev)
	if len(g.members) > 0 && g.admins() == 0 {
		// The last admin left: the longest-standing member takes over.
		next := ""
		for _, u := range g.sortedMembers() {
			if next == "" || g.members[u].joined < g.members[next].joined {
				next = u
			}
		}
		g.members[next].admin = true
		if err := s.groupEvent(ctx, b, g, g.sortedMembers(), "promoted", r.From, []string{next}); err != nil {
			return Result{Err: err}
		}
	}
	g.recordDirty = true
	b.touch(g) // a member leaving may complete other messages' receipts
	return Result{}
}

// groupEvent stores one group frame for every user of audience.
func (s *Service) groupEvent(ctx context.Context, b *building, g *groupState, audience []string, event, by string, users []string) error {
	c := b.c
	key := s.ids.Next(b.now) // the shared part's key
	n := len(c.arena)
	name := ""
	if event == "created" || event == "renamed" {
		name = g.name
	}
	c.arena = protocol.AppendGroupEventTail(c.arena, g.id, event, by, users, name, g.icon, b.now.UnixMilli())
	c.batch.Shared = append(c.batch.Shared, SharedPart{Key: key, Data: c.arena[n:]})
	for _, u := range audience {
		if err := s.addEntry(ctx, b, u, "group", nil, key); err != nil {
			b.fatal = err
			return err
		}
	}
	return nil
}

// headSeq returns the last seq of user's inbox without taking a new one.
func (s *Service) headSeq(ctx context.Context, user string) (uint64, error) {
	if seq, ok := s.heads.get(user); ok {
		return seq, nil
	}
	seq, err := s.store.LastSeq(ctx, user)
	if err == nil {
		s.heads.put(user, seq)
	}
	return seq, err
}

// addGroupSend stores a message once, in the group's log, and adds an
// entry for it to the inbox of every member, the sender included (for
// their other devices).
func (s *Service) addGroupSend(ctx context.Context, b *building, r *Request, key clientKey) Result {
	g, err := s.group(ctx, string(r.Group))
	if err != nil {
		return Result{Err: err}
	}
	if g.members[r.From] == nil {
		return Result{Err: ErrNotMember}
	}
	var attachment []byte
	var asset *assetRecord
	if len(r.AssetID) > 0 {
		if attachment, asset, err = s.attach(ctx, r); err != nil {
			return Result{Err: err}
		}
	}
	c := b.c
	log := groupInbox(g.id)
	gseq, err := s.nextSeq(ctx, log)
	if err != nil {
		return Result{Err: err}
	}
	m := s.addMessage(b, r, key, log, gseq, g.id, attachment)
	if asset != nil {
		if err := s.grant(b, asset, "", g); err != nil {
			b.fatal = err
			return Result{Err: err}
		}
	}
	s.addHead(c, log, gseq, "msg", m.ID)
	for u := range g.members {
		if err := s.addEntry(ctx, b, u, "msg", nil, m.ID); err != nil {
			b.fatal = err
			return Result{Err: err}
		}
	}
	if b.events {
		b.analytics(r.From, NewEvent("message.sent", r.From, m.TS).Str("msg_id", m.ID).Str("group", g.id).
			Int("recipients", int64(len(g.members)-1)).Int("bytes", int64(len(r.Body))))
	}
	g.pend = append(g.pend, pendingMsg{seq: gseq, id: m.ID, from: r.From})
	if len(g.pend) > pendCap {
		g.pend = slices.Delete(g.pend, 0, len(g.pend)-pendCap)
	}
	b.touch(g) // a group of one has all its recipients already
	return Result{MsgID: m.ID, TS: m.TS}
}

// groupReceipt moves reader's watermarks in the group of message m.
// Receipts of non-members, of the reader's own messages and of messages
// from before the reader joined are ignored, like other stale receipts.
func (s *Service) groupReceipt(ctx context.Context, b *building, reader string, m *MessageMeta, st Status) error {
	g, err := s.group(ctx, m.To[len(groupInboxPrefix):])
	if errors.Is(err, ErrGroupNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	mem := g.members[reader]
	if mem == nil || m.From == reader || m.Seq <= mem.joinSeq {
		return nil
	}
	ts := b.now.UnixMilli()
	for k := range 2 {
		if k == wmRead && st < StatusRead {
			break
		}
		if w := &mem.wm[k]; m.Seq > w.seq {
			g.buckets[k].remove(w.seq)
			w.advance(m.Seq, ts)
			g.buckets[k].add(w.seq)
			mem.dirty = true
			b.touch(g)
		}
	}
	return nil
}

// finishGroups runs once per batch, after its requests: it moves the
// "every recipient has it" marks of the groups the batch touched, adds
// one receipt entry per sender and status for the messages that reached
// all (coalesced: not one per member), and writes the changed state.
func (s *Service) finishGroups(ctx context.Context, b *building) error {
	if b.fatal != nil {
		return b.fatal
	}
	c := b.c
	type tick struct {
		sender, group string
		k             int
	}
	var ticks map[tick][]string
	for _, g := range b.touched {
		g.inBatch = false
		for k := range 2 {
			for {
				if err := s.fillPending(ctx, g, k); err != nil {
					return err
				}
				i := sort.Search(len(g.pend), func(i int) bool { return g.pend[i].seq > g.all[k] })
				if i == len(g.pend) {
					break
				}
				p := g.pend[i]
				if p.seq > g.all[k]+1 {
					g.all[k] = p.seq - 1 // the ones between expired
				}
				sender := g.members[p.from]
				var sv uint64
				if sender != nil {
					sv = sender.wm[k].seq
				}
				if g.buckets[k].minExcept(sv, sender != nil) < p.seq {
					break
				}
				g.all[k] = p.seq
				g.aggDirty = true
				if ticks == nil {
					ticks = make(map[tick][]string)
				}
				t := tick{p.from, g.id, k}
				ticks[t] = append(ticks[t], p.id)
			}
		}
		if lo := min(g.all[0], g.all[1]); len(g.pend) > 0 && g.pend[0].seq <= lo {
			i := sort.Search(len(g.pend), func(i int) bool { return g.pend[i].seq > lo })
			g.pend = slices.Delete(g.pend, 0, i)
		}
		if g.recordDirty {
			v, err := json.Marshal(g.record())
			if err != nil {
				return err
			}
			if len(g.members) == 0 {
				v = nil // the last member left: the group is gone
				s.groups.del(g.id)
			}
			c.batch.State = append(c.batch.State, KV{Key: groupKey(g.id), Value: v})
			g.recordDirty = false
		}
		if g.aggDirty && len(g.members) == 0 {
			c.batch.State = append(c.batch.State, KV{Key: aggKey(g.id)})
			g.aggDirty = false
		}
		if g.aggDirty {
			v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), g.all[0])
			c.batch.State = append(c.batch.State, KV{Key: aggKey(g.id), Value: binary.BigEndian.AppendUint64(v, g.all[1])})
			g.aggDirty = false
		}
		for u, mem := range g.members {
			if mem.dirty {
				c.batch.State = append(c.batch.State, KV{Key: wmKey(g.id, u), Value: appendWatermarks(nil, &mem.wm)})
				mem.dirty = false
			}
		}
	}
	// Deterministic order: entries of one user must be in seq order.
	keys := make([]tick, 0, len(ticks))
	for t := range ticks {
		keys = append(keys, t)
	}
	slices.SortFunc(keys, func(a, b tick) int {
		if a.sender != b.sender {
			return cmpString(a.sender, b.sender)
		}
		if a.group != b.group {
			return cmpString(a.group, b.group)
		}
		return a.k - b.k
	})
	for _, t := range keys {
		status := StatusDelivered
		if t.k == wmRead {
			status = StatusRead
		}
		// One entry per MaxMsgIDs ids, as a client's receipt frame holds.
		for ids := range slices.Chunk(ticks[t], protocol.MaxMsgIDs) {
			b.scratch = protocol.AppendGroupReceipt(b.scratch[:0], 0, status.String(), ids, t.group, b.now.UnixMilli())
			if err := s.addEntry(ctx, b, t.sender, "receipt", b.scratch[headLen("receipt", 0):], ""); err != nil {
				return err
			}
		}
	}
	for u := range b.users {
		ids, _ := s.ugroups.get(u)
		var v []byte
		if len(ids) > 0 {
			var err error
			if v, err = json.Marshal(ids); err != nil {
				return err
			}
		}
		c.batch.State = append(c.batch.State, KV{Key: userGroupsKey(u), Value: v})
	}
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fillPending makes sure g.pend holds the messages right after all[k]
// that are still in the group log, reading them back if they are not in
// memory (after a restart, or pushed out by pendCap).
func (s *Service) fillPending(ctx context.Context, g *groupState, k int) error {
	after := g.all[k]
	i := sort.Search(len(g.pend), func(i int) bool { return g.pend[i].seq > after })
	if i < len(g.pend) && g.pend[i].seq == after+1 {
		return nil
	}
	head, err := s.headSeq(ctx, groupInbox(g.id))
	if err != nil || head <= after {
		return err
	}
	upto := head // read up to what memory holds next, or the log's head
	if i < len(g.pend) {
		upto = g.pend[i].seq - 1
	}
	var read []pendingMsg
	err = s.store.ReadInbox(ctx, groupInbox(g.id), after, int(min(upto-after, pendCap)), func(seq uint64, frame []byte) error {
		if seq > upto {
			return nil
		}
		id, from, ok := s.dec.MsgFields(frame)
		if ok {
			read = append(read, pendingMsg{seq: seq, id: string(id), from: string(from)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(read) == 0 && i == len(g.pend) {
		g.all[k] = head // everything after it expired
		g.aggDirty = true
		return nil
	}
	// With nothing read, what lies between expired: the caller skips it.
	g.pend = slices.Insert(g.pend, i, read...)
	return nil
}

// groupList answers group.list: the groups r.From is in.
func (s *Service) groupList(ctx context.Context, r *Request) Result {
	ids, err := s.userGroups(ctx, r.From)
	if err != nil {
		return Result{Err: err}
	}
	d := append([]byte(nil), `,"groups":[`...)
	n := 0
	for _, id := range ids {
		g, err := s.group(ctx, id)
		if errors.Is(err, ErrGroupNotFound) {
			continue
		}
		if err != nil {
			return Result{Err: err}
		}
		if n > 0 {
			d = append(d, ',')
		}
		n++
		d = append(d, `{"group_id":`...)
		d = protocol.AppendString(d, id)
		d = append(d, `,"name":`...)
		d = protocol.AppendString(d, g.name)
		d = append(d, `,"members":`...)
		d = strconv.AppendInt(d, int64(len(g.members)), 10)
		d = append(d, '}')
	}
	return Result{Data: append(d, ']')}
}

// appendGroupInfo appends ,"group":…,"name":…,"created":…,"created_by":…,
// "members":[…] for group.info's ack.
func appendGroupInfo(d []byte, g *groupState) []byte {
	d = append(d, `,"group":`...)
	d = protocol.AppendString(d, g.id)
	d = append(d, `,"name":`...)
	d = protocol.AppendString(d, g.name)
	if g.icon != "" {
		d = appendField(d, "icon", g.icon)
	}
	d = append(d, `,"created":`...)
	d = strconv.AppendInt(d, g.created, 10)
	d = append(d, `,"created_by":`...)
	d = protocol.AppendString(d, g.createdBy)
	d = append(d, `,"members":[`...)
	for i, u := range g.sortedMembers() {
		if i > 0 {
			d = append(d, ',')
		}
		d = append(d, `{"user":`...)
		d = protocol.AppendString(d, u)
		if g.members[u].admin {
			d = append(d, `,"admin":true`...)
		}
		d = append(d, '}')
	}
	return append(d, ']')
}

func appendField(d []byte, key, value string) []byte {
	d = append(d, ',', '"')
	d = append(d, key...)
	d = append(d, '"', ':')
	return protocol.AppendString(d, value)
}

// msgInfo answers msg.info for one of r.From's messages: per member of a
// group, when it was delivered and read; for a one-to-one message, its
// status.
func (s *Service) msgInfo(ctx context.Context, b *building, r *Request) Result {
	if len(r.MsgIDs) != 1 {
		return Result{Err: badRequest(`"msg_id" is required`)}
	}
	m, ok, err := s.lookupMeta(ctx, b, string(r.MsgIDs[0]))
	if err != nil {
		return Result{Err: err}
	}
	if !ok || m.From != r.From {
		return Result{Err: ErrMsgNotFound}
	}
	d := appendField(nil, "msg_id", m.ID)
	if s.cfg.Partitions > 1 && !isGroupInbox(m.To) {
		// Partitioned, a one-to-one message's status is written by its
		// recipient's partition: read what is durable, not a cache.
		if m, ok, err = s.store.Message(ctx, m.ID); err != nil {
			return Result{Err: err}
		} else if !ok {
			return Result{Err: ErrMsgNotFound}
		}
	}
	if !isGroupInbox(m.To) {
		d = appendField(d, "to", m.To)
		return Result{Data: appendField(d, "status", m.Status.String())}
	}
	g, err := s.group(ctx, m.To[len(groupInboxPrefix):])
	if err != nil {
		return Result{Err: err}
	}
	d = appendField(d, "group", g.id)
	d = append(d, `,"members":[`...)
	n := 0
	for _, u := range g.sortedMembers() {
		mem := g.members[u]
		if u == m.From || mem.joinSeq >= m.Seq {
			continue // the sender, or joined after the message
		}
		if n > 0 {
			d = append(d, ',')
		}
		n++
		d = append(d, `{"user":`...)
		d = protocol.AppendString(d, u)
		for k, name := range [2]string{`,"delivered":`, `,"read":`} {
			if ts, ok := mem.wm[k].covered(m.Seq); ok {
				d = append(d, name...)
				d = strconv.AppendInt(d, ts, 10)
			}
		}
		d = append(d, '}')
	}
	return Result{Data: append(d, ']')}
}

// typing queues a typing frame for the open connections of r.To, or of
// every other member of r.Group. It is never stored.
func (s *Service) typing(ctx context.Context, b *building, r *Request) error {
	c := b.c
	var users []string
	group := ""
	if len(r.Group) > 0 {
		g, err := s.group(ctx, string(r.Group))
		if err != nil {
			return err
		}
		if g.members[r.From] == nil {
			return ErrNotMember
		}
		group = g.id
		users = make([]string, 0, len(g.members)-1)
		for u := range g.members {
			if u != r.From {
				users = append(users, u)
			}
		}
	} else {
		users = []string{string(r.To)}
	}
	n := len(c.arena)
	c.arena = protocol.AppendTyping(c.arena, r.From, string(r.To), group, r.Stop)
	c.eph = append(c.eph, ephemeral{frame: c.arena[n:], users: users})
	return nil
}

// groupIcon sets (or, with no AssetID, removes) g's icon: an image its
// admin r.From uploaded, which the members may then download.
func (s *Service) groupIcon(ctx context.Context, b *building, g *groupState, r *Request) Result {
	icon := string(r.AssetID)
	if icon == g.icon {
		return Result{}
	}
	grantee := "#" + g.id
	if !s.control() {
		// Asset records are ControlPartition's: check the new icon here
		// from the store, and have it pin and unpin.
		if icon != "" {
			if err := checkPin(ctx, s.store, icon, r.From); err != nil {
				return Result{Err: err}
			}
			b.forwardPin(icon, r.From, grantee)
		}
		if g.icon != "" {
			b.forwardUnpin(g.icon, grantee)
		}
		g.icon = icon
		return s.groupChange(ctx, b, g, r, "icon", nil)
	}
	if icon != "" {
		if err := s.pin(ctx, b, icon, r.From, grantee); err != nil {
			return Result{Err: err}
		}
	}
	if g.icon != "" {
		if err := s.unpin(ctx, b, g.icon, grantee); err != nil {
			b.fatal = err
			return Result{Err: err}
		}
	}
	g.icon = icon
	return s.groupChange(ctx, b, g, r, "icon", nil)
}
