package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

// done is a Completer for one request.
type done chan chat.Result

func (d done) Complete(_ *chat.Request, res chat.Result) { d <- res }

// do submits r and waits for its result.
func do(t *testing.T, svc *chat.Service, r *chat.Request) chat.Result {
	t.Helper()
	d := make(done, 1)
	r.Done = d
	if err := svc.Submit(r); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case res := <-d:
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("request not completed in 5s")
		return chat.Result{}
	}
}

func bytesList(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func groupReq(op chat.GroupOp, from, group string, members ...string) *chat.Request {
	return &chat.Request{Kind: chat.KindGroup, Op: op, From: from, ClientID: []byte("g-" + from),
		Group: []byte(group), Members: bytesList(members...)}
}

// data decodes a result's ack fields.
func data(t *testing.T, res chat.Result) map[string]any {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("request failed: %v", res.Err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte("{"+string(res.Data[min(1, len(res.Data)):])+"}"), &m); err != nil {
		t.Fatalf("ack fields %s: %v", res.Data, err)
	}
	return m
}

func wantCode(t *testing.T, res chat.Result, code string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(res.Err, &pe) || pe.Code != code {
		t.Fatalf("result %+v, want error code %s", res, code)
	}
}

func createGroup(t *testing.T, svc *chat.Service, from string, members ...string) string {
	t.Helper()
	r := groupReq(chat.GroupCreate, from, "", members...)
	r.Name = []byte("friends")
	id, _ := data(t, do(t, svc, r))["group_id"].(string)
	if len(id) != chat.IDLen {
		t.Fatalf("group_id %q", id)
	}
	return id
}

func groupSend(from, id, group, body string) *chat.Request {
	return &chat.Request{Kind: chat.KindSend, From: from, ClientID: []byte(id), Group: []byte(group), Body: []byte(body)}
}

// msgs returns the bodies of the msg frames of user's inbox for group.
func msgs(t *testing.T, svc *chat.Service, user, group string) []string {
	t.Helper()
	var out []string
	for _, f := range inbox(t, svc, user) {
		if f["type"] == "msg" && f["group"] == group {
			out = append(out, f["body"].(string))
		}
	}
	return out
}

func TestGroupMembershipAndDelivery(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	g := createGroup(t, svc, "alice", "bob", "carol")
	if res := do(t, svc, groupSend("alice", "m1", g, "hello")); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if got := msgs(t, svc, u, g); !slices.Equal(got, []string{"hello"}) {
			t.Fatalf("%s has %q", u, got)
		}
	}
	// Non-members can neither send nor look.
	wantCode(t, do(t, svc, groupSend("mallory", "x", g, "spam")), protocol.CodeNotMember)
	wantCode(t, do(t, svc, groupReq(chat.GroupInfo, "mallory", g)), protocol.CodeNotMember)
	wantCode(t, do(t, svc, groupSend("alice", "y", "01NOSUCHGROUP0000000000000", "?")), protocol.CodeNotFound)
	// Only admins change membership.
	wantCode(t, do(t, svc, groupReq(chat.GroupRemove, "bob", g, "carol")), protocol.CodeNotAdmin)
	if res := do(t, svc, groupReq(chat.GroupRemove, "alice", g, "carol")); res.Err != nil {
		t.Fatal(res.Err)
	}
	do(t, svc, groupSend("bob", "m2", g, "after"))
	if got := msgs(t, svc, "carol", g); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("removed carol has %q, want only what was sent before removal", got)
	}
	wantCode(t, do(t, svc, groupSend("carol", "m3", g, "let me in")), protocol.CodeNotMember)
	// Carol learned of her removal through her inbox.
	var events []string
	for _, f := range inbox(t, svc, "carol") {
		if f["type"] == "group" {
			events = append(events, f["event"].(string))
		}
	}
	if !slices.Equal(events, []string{"created", "removed"}) {
		t.Fatalf("carol's group events %q", events)
	}
	info := data(t, do(t, svc, groupReq(chat.GroupInfo, "bob", g)))
	members := info["members"].([]any)
	if len(members) != 2 || members[0].(map[string]any)["admin"] != true {
		t.Fatalf("group.info members %v", members)
	}
	list := data(t, do(t, svc, groupReq(chat.GroupList, "bob", "")))
	if gs := list["groups"].([]any); len(gs) != 1 || gs[0].(map[string]any)["group_id"] != g {
		t.Fatalf("bob's group.list %v", list)
	}
	if gs := data(t, do(t, svc, groupReq(chat.GroupList, "carol", "")))["groups"].([]any); len(gs) != 0 {
		t.Fatalf("carol's group.list %v after removal", gs)
	}
}

func TestGroupLimitAndAdmins(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{MaxGroupMembers: 3})
	g := createGroup(t, svc, "alice", "bob")
	wantCode(t, do(t, svc, groupReq(chat.GroupAdd, "alice", g, "carol", "dave")), protocol.CodeGroupFull)
	if res := do(t, svc, groupReq(chat.GroupAdd, "alice", g, "carol", "bob")); res.Err != nil {
		t.Fatalf("adding one new member and one existing: %v", res.Err)
	}
	wantCode(t, do(t, svc, groupReq(chat.GroupDemote, "alice", g, "alice")), protocol.CodeBadRequest)
	// The last admin leaves: the longest-standing member takes over.
	if res := do(t, svc, groupReq(chat.GroupLeave, "alice", g)); res.Err != nil {
		t.Fatal(res.Err)
	}
	info := data(t, do(t, svc, groupReq(chat.GroupInfo, "bob", g)))
	admins := 0
	for _, m := range info["members"].([]any) {
		if m.(map[string]any)["admin"] == true {
			admins++
		}
	}
	if admins != 1 {
		t.Fatalf("after the only admin left: %v", info)
	}
	r := groupReq(chat.GroupCreate, "alice", "")
	r.Name = []byte("")
	wantCode(t, do(t, svc, r), protocol.CodeBadRequest)
}

// TestGroupReceipts checks watermarks: "delivered to all" and "read by
// all" reach the sender once every other member has the message, as one
// coalesced receipt, and msg.info reports each member.
func TestGroupReceipts(t *testing.T) {
	store := memory.NewStore()
	svc, _, _ := newService(t, store, chat.Config{})
	g := createGroup(t, svc, "alice", "bob", "carol")
	var ids []string
	for i := range 3 {
		res := do(t, svc, groupSend("alice", fmt.Sprint("m", i), g, fmt.Sprint(i)))
		ids = append(ids, res.MsgID)
	}
	receipt := func(by string, st chat.Status, ids ...string) {
		t.Helper()
		r := &chat.Request{Kind: chat.KindReceipt, From: by, Status: st, MsgIDs: bytesList(ids...)}
		if res := do(t, svc, r); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	allTicks := func() []string {
		var out []string
		for _, f := range inbox(t, svc, "alice") {
			if f["type"] == "receipt" && f["all"] == true {
				out = append(out, fmt.Sprintf("%v %v", f["status"], f["msg_ids"]))
			}
		}
		return out
	}
	receipt("bob", chat.StatusDelivered, ids[2]) // a watermark: covers 0..2
	if got := allTicks(); len(got) != 0 {
		t.Fatalf("ticks before carol has anything: %q", got)
	}
	receipt("carol", chat.StatusDelivered, ids[1])
	receipt("carol", chat.StatusRead, ids[0])
	receipt("alice", chat.StatusRead, ids[2]) // her own message: ignored
	want := []string{fmt.Sprintf("delivered %v", []any{ids[0], ids[1]})}
	if got := allTicks(); !slices.Equal(got, want) {
		t.Fatalf("ticks %q, want %q", got, want)
	}
	info := data(t, do(t, svc, &chat.Request{Kind: chat.KindMsgInfo, From: "alice", MsgIDs: bytesList(ids[0])}))
	members := info["members"].([]any)
	if len(members) != 2 {
		t.Fatalf("msg.info members %v", members)
	}
	bob, carol := members[0].(map[string]any), members[1].(map[string]any)
	if bob["user"] != "bob" || bob["delivered"] == nil || bob["read"] != nil ||
		carol["user"] != "carol" || carol["delivered"] == nil || carol["read"] == nil {
		t.Fatalf("msg.info %v", members)
	}
	wantCode(t, do(t, svc, &chat.Request{Kind: chat.KindMsgInfo, From: "bob", MsgIDs: bytesList(ids[0])}), protocol.CodeNotFound)

	// A restarted service reloads the group, its watermarks and the
	// messages still waiting, and finishes the ticks.
	svc.Close()
	svc2, _, _ := newService(t, store, chat.Config{})
	svc = svc2
	receipt("carol", chat.StatusDelivered, ids[2])
	receipt("bob", chat.StatusRead, ids[2])
	receipt("carol", chat.StatusRead, ids[2])
	want = append(want, fmt.Sprintf("delivered %v", []any{ids[2]}),
		fmt.Sprintf("read %v", []any{ids[0]}), // carol had read it: bob's read completes it
		fmt.Sprintf("read %v", []any{ids[1], ids[2]}))
	if got := allTicks(); !slices.Equal(got, want) {
		t.Fatalf("ticks after restart %q, want %q", got, want)
	}
}

func TestTypingIsNeverStored(t *testing.T) {
	svc, bus, dir := newService(t, memory.NewStore(), chat.Config{})
	_ = dir
	g := createGroup(t, svc, "alice", "bob")
	before := len(inbox(t, svc, "bob"))
	if res := do(t, svc, &chat.Request{Kind: chat.KindTyping, From: "alice", Group: []byte(g)}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := do(t, svc, &chat.Request{Kind: chat.KindTyping, From: "alice", To: []byte("bob")}); res.Err != nil {
		t.Fatal(res.Err)
	}
	wantCode(t, do(t, svc, &chat.Request{Kind: chat.KindTyping, From: "carol", Group: []byte(g)}), protocol.CodeNotMember)
	if got := len(inbox(t, svc, "bob")); got != before {
		t.Fatalf("bob's inbox grew from %d to %d entries after typing", before, got)
	}
	_ = bus
}

// TestAnalyticsEvents: user actions reach the bus's events stream once
// durable, as documented JSON.
func TestAnalyticsEvents(t *testing.T) {
	svc, bus, _ := newService(t, memory.NewStore(), chat.Config{})
	g := createGroup(t, svc, "alice", "bob")
	do(t, svc, groupSend("alice", "m1", g, "hi"))
	m := do(t, svc, send("alice", "m2", "bob", "hey", nil))
	do(t, svc, &chat.Request{Kind: chat.KindReceipt, From: "bob", Status: chat.StatusRead, MsgIDs: bytesList(m.MsgID)})
	do(t, svc, groupSend("mallory", "m3", g, "refused")) // not a member: no event
	bus.mu.Lock()
	defer bus.mu.Unlock()
	var types []string
	for _, e := range bus.events {
		var v map[string]any
		if err := json.Unmarshal([]byte(e), &v); err != nil {
			t.Fatalf("event %s: %v", e, err)
		}
		if v["ts"] == nil || v["user"] == nil {
			t.Fatalf("event without ts or user: %s", e)
		}
		types = append(types, v["type"].(string)+":"+v["user"].(string))
	}
	want := []string{"group.created:alice", "message.sent:alice", "message.sent:alice", "receipt:bob"}
	if !slices.Equal(types, want) {
		t.Fatalf("events %q, want %q", types, want)
	}
}

// TestGroupCreateIsIdempotent: group.create again with the same id, even
// after a restart, returns the same group and creates nothing.
func TestGroupCreateIsIdempotent(t *testing.T) {
	store := memory.NewStore()
	svc, _, _ := newService(t, store, chat.Config{})
	r := groupReq(chat.GroupCreate, "alice", "", "bob")
	r.Name = []byte("once")
	first := data(t, do(t, svc, r))["group_id"]
	again := groupReq(chat.GroupCreate, "alice", "", "bob")
	again.Name = []byte("once")
	if id := data(t, do(t, svc, again))["group_id"]; id != first {
		t.Fatalf("second create: %v, first %v", id, first)
	}
	svc.Close()
	svc2, _, _ := newService(t, store, chat.Config{})
	again = groupReq(chat.GroupCreate, "alice", "", "bob")
	again.Name = []byte("once")
	if id := data(t, do(t, svc2, again))["group_id"]; id != first {
		t.Fatalf("create after restart: %v, first %v", id, first)
	}
	if gs := data(t, do(t, svc2, groupReq(chat.GroupList, "bob", "")))["groups"].([]any); len(gs) != 1 {
		t.Fatalf("bob is in %d groups, want 1", len(gs))
	}
}

// TestGroupReceiptsBeyondMemory: more messages wait for "everyone has it"
// than a group keeps in memory; one watermark jump still ticks every one
// of them (those pushed out of memory are read back from the group's
// log), in receipt entries of at most 256 ids.
func TestGroupReceiptsBeyondMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("9,000 messages")
	}
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	g := createGroup(t, svc, "alice", "bob")
	const n = 9000 // over the 8,192 kept in memory
	d := make(done, n)
	for i := range n {
		r := groupSend("alice", fmt.Sprint("m", i), g, "x")
		r.Done = d
		for svc.Submit(r) != nil {
			time.Sleep(time.Millisecond) // the queue is full: let it drain
		}
	}
	var last string
	for range n {
		res := <-d
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		last = max(last, res.MsgID)
	}
	if res := do(t, svc, &chat.Request{Kind: chat.KindReceipt, From: "bob", Status: chat.StatusDelivered, MsgIDs: bytesList(last)}); res.Err != nil {
		t.Fatal(res.Err)
	}
	seen := map[string]bool{}
	err := svc.ReadInbox(context.Background(), "alice", n, 1000, func(_ uint64, frame []byte) error {
		var f struct {
			Type   string
			All    bool
			MsgIDs []string `json:"msg_ids"`
		}
		if err := json.Unmarshal(frame, &f); err != nil {
			return err
		}
		if f.Type == "receipt" && f.All {
			if len(f.MsgIDs) > 256 {
				t.Fatalf("a receipt entry with %d ids", len(f.MsgIDs))
			}
			for _, id := range f.MsgIDs {
				seen[id] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d of %d messages ticked delivered to everyone", len(seen), n)
	}
}
