package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The user's own messages come back to all the user's devices: the
// sending one knows them by ClientID, the others as Own without one, and
// neither sends receipts for them.
func TestOwnCopies(t *testing.T) {
	fs := newFakeServer(t)
	phone := startClient(t, fs, "alice#phone", "")
	laptop := startClient(t, fs, "alice#laptop", "")
	bob := startClient(t, fs, "bob", "")
	waitFor(t, "three connections", func() bool { return fs.Connected("alice") == 2 && fs.Connected("bob") == 1 })

	id := send(t, phone, "bob", "from my phone")
	for _, c := range []*testClient{phone, laptop, bob} {
		waitFor(t, "the message", func() bool { return c.rec.nMsgs() == 1 })
	}
	onPhone, _, acks := phone.rec.snapshot()
	onLaptop, _, _ := laptop.rec.snapshot()
	atBob, _, _ := bob.rec.snapshot()
	msgID := acks[0].MsgID
	if m := onPhone[0]; !m.Own || m.ClientID != id || m.MsgID != msgID {
		t.Errorf("on the sending device: %+v, want Own with client id %s", m, id)
	}
	if m := onLaptop[0]; !m.Own || m.ClientID != "" || m.MsgID != msgID || m.To != "bob" {
		t.Errorf("on the other device: %+v, want Own without a client id", m)
	}
	if m := atBob[0]; m.Own || m.ClientID != "" {
		t.Errorf("at bob: %+v, want not Own", m)
	}

	// No receipts for one's own messages, from either device.
	ctx := context.Background()
	for _, c := range []*testClient{phone, laptop} {
		if err := c.MarkDelivered(ctx, msgID); err != nil {
			t.Fatal(err)
		}
		if n := c.Pending(); n != 0 {
			t.Errorf("a receipt for an own message was queued (%d pending)", n)
		}
	}
	// Mixed with others' ids, only those go out.
	send(t, bob, "alice", "reply")
	waitFor(t, "bob's reply", func() bool { return laptop.rec.nMsgs() == 2 })
	msgs, _, _ := laptop.rec.snapshot()
	if err := laptop.MarkRead(ctx, msgID, msgs[1].MsgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's read tick", func() bool { return bob.rec.nReceipts() == 1 })
	_, receipts, _ := bob.rec.snapshot()
	if got := receipts[0].MsgIDs; !slices.Equal(got, []string{msgs[1].MsgID}) {
		t.Fatalf("bob's receipt names %v, want only his message %s", got, msgs[1].MsgID)
	}
}

// A send stored just before the connection died comes back through the
// sync before the resend's ack; the Client still knows it as its own.
func TestOwnCopyBeforeAck(t *testing.T) {
	fs := newFakeServer(t)
	fs.With(func() {
		fs.KillAfter = func(user string, sends int) bool { return user == "alice" && sends == 1 }
	})
	alice := startClient(t, fs, "alice", t.TempDir())
	id := send(t, alice, "bob", "stored, then the line dropped")
	waitFor(t, "the ack after the reconnect", func() bool { return alice.rec.nAcks() == 1 })
	waitFor(t, "the own copy", func() bool { return alice.rec.nMsgs() == 1 })
	msgs, _, acks := alice.rec.snapshot()
	if m := msgs[0]; !m.Own || m.ClientID != id || m.MsgID != acks[0].MsgID {
		t.Fatalf("own copy %+v, want client id %s and msg id %s", m, id, acks[0].MsgID)
	}
	if alice.rec.nState(StateDisconnected) == 0 {
		t.Fatal("the test did not drop the connection")
	}
}

func TestGroupLifecycle(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", "")
	carol := startClient(t, fs, "carol", "")
	waitFor(t, "connections", func() bool { return alice.Connected() && bob.Connected() && carol.Connected() })
	ctx := context.Background()

	gid, err := alice.CreateGroup(ctx, "Trip", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testClient{alice, bob, carol} {
		waitFor(t, "the created event", func() bool { return c.rec.count(func(r *recorder) int { return len(r.groups) }) == 1 })
		c.rec.mu.Lock()
		ev := c.rec.groups[0]
		c.rec.mu.Unlock()
		if ev.Group != gid || ev.Event != GroupCreated || ev.By != "alice" || ev.Name != "Trip" ||
			!slices.Equal(ev.Members, []string{"alice", "bob", "carol"}) || ev.Seq != 1 {
			t.Fatalf("created event %+v", ev)
		}
	}

	id, err := alice.SendGroup(ctx, gid, "hello all")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ack", func() bool { return alice.rec.nAcks() == 1 })
	_, _, acks := alice.rec.snapshot()
	if a := acks[0]; a.ClientID != id || a.Group != gid || a.To != "" || a.Body != "hello all" {
		t.Fatalf("ack %+v", a)
	}
	msgID := acks[0].MsgID
	var got []string
	for _, c := range []*testClient{bob, carol} {
		waitFor(t, "the group message", func() bool { return c.rec.nMsgs() == 1 })
		msgs, _, _ := c.rec.snapshot()
		m := msgs[0]
		if m.Group != gid || m.To != gid || m.From != "alice" || m.MsgID != msgID || m.Own {
			t.Fatalf("group message %+v", m)
		}
		got = append(got, m.Body)
	}
	if !slices.Equal(got, []string{"hello all", "hello all"}) {
		t.Fatalf("bodies %q", got)
	}

	// The group ticks come once each status is everyone's.
	if err := bob.MarkDelivered(ctx, msgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's receipt to be acked", func() bool { return bob.Pending() == 0 })
	if err := carol.MarkRead(ctx, msgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all delivered", func() bool { return alice.rec.nReceipts() == 1 })
	if err := bob.MarkRead(ctx, msgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all read", func() bool { return alice.rec.nReceipts() == 2 })
	_, receipts, _ := alice.rec.snapshot()
	for i, want := range []Status{StatusDelivered, StatusRead} {
		r := receipts[i]
		if r.Status != want || r.Group != gid || !r.All || r.By != "" || !slices.Equal(r.MsgIDs, []string{msgID}) {
			t.Fatalf("group receipt %d = %+v, want %s by all", i, r, want)
		}
	}

	info, err := alice.MsgInfo(ctx, msgID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Group != gid || len(info.Members) != 2 || info.Members[0].User != "bob" || info.Members[1].User != "carol" {
		t.Fatalf("msg info %+v", info)
	}
	for _, m := range info.Members {
		if m.Status() != StatusRead || m.Delivered.IsZero() || m.Read.Before(m.Delivered) {
			t.Errorf("member %+v: want delivered and read times", m)
		}
	}
	var se *ServerError
	if _, err := bob.MsgInfo(ctx, msgID); !errors.As(err, &se) || se.Code != CodeNotFound {
		t.Fatalf("msg.info of someone else's message = %v, want %s", err, CodeNotFound)
	}
}

func TestGroupMembership(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", "")
	dave := startClient(t, fs, "dave", "")
	waitFor(t, "connections", func() bool { return alice.Connected() && bob.Connected() && dave.Connected() })
	ctx := context.Background()
	gid, err := alice.CreateGroup(ctx, "Team", "bob")
	if err != nil {
		t.Fatal(err)
	}

	var se *ServerError
	if err := bob.AddMembers(ctx, gid, "dave"); !errors.As(err, &se) || se.Code != CodeNotAdmin || IsRetriable(err) {
		t.Fatalf("a member adding = %v, want %s", err, CodeNotAdmin)
	}
	if err := alice.AddMembers(ctx, gid, "dave"); err != nil {
		t.Fatal(err)
	}
	if err := alice.PromoteMembers(ctx, gid, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RenameGroup(ctx, gid, "The team"); err != nil {
		t.Fatal(err)
	}
	info, err := dave.GroupInfo(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupMember{{User: "alice", Admin: true}, {User: "bob", Admin: true}, {User: "dave"}}
	if info.ID != gid || info.Name != "The team" || info.CreatedBy != "alice" || info.Created.IsZero() || !slices.Equal(info.Members, want) {
		t.Fatalf("group info %+v", info)
	}
	if err := bob.RemoveMembers(ctx, gid, "dave"); err != nil {
		t.Fatal(err)
	}
	if err := alice.LeaveGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	groups, err := bob.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0] != (GroupSummary{ID: gid, Name: "The team", Members: 1}) {
		t.Fatalf("bob's groups %+v", groups)
	}
	if groups, err := dave.Groups(ctx); err != nil || len(groups) != 0 {
		t.Fatalf("dave's groups after removal = %+v, %v", groups, err)
	}

	// Every event reached the members before and after it.
	events := func(c *testClient) []string {
		c.rec.mu.Lock()
		defer c.rec.mu.Unlock()
		var evs []string
		for _, e := range c.rec.groups {
			evs = append(evs, e.Event+":"+strings.Join(e.Members, ",")+e.Name)
		}
		return evs
	}
	waitFor(t, "bob's events", func() bool { return len(events(bob)) == 6 })
	if got, want := events(bob), []string{"created:alice,bobTeam", "added:dave", "promoted:bob", "renamed:The team", "removed:dave", "left:alice"}; !slices.Equal(got, want) {
		t.Fatalf("bob's group events %q, want %q", got, want)
	}
	waitFor(t, "dave's events", func() bool { return len(events(dave)) == 4 })
	if got, want := events(dave), []string{"added:dave", "promoted:bob", "renamed:The team", "removed:dave"}; !slices.Equal(got, want) {
		t.Fatalf("dave's group events %q, want %q", got, want)
	}

	// A send by someone no longer in the group is refused for good.
	bad, err := dave.SendGroup(ctx, gid, "still here?")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { return dave.Pending() == 0 })
	dave.rec.mu.Lock()
	defer dave.rec.mu.Unlock()
	if len(dave.rec.errs) != 1 || dave.rec.errs[0].ID != bad || dave.rec.errs[0].Code != CodeNotMember {
		t.Fatalf("dave's errors %v, want %s for %s", dave.rec.errs, CodeNotMember, bad)
	}
}

func TestRequest(t *testing.T) {
	fs := newFakeServer(t)
	alice := newTestClient(t, fs, "alice", "")
	ctx := context.Background()
	if _, err := alice.Request(ctx, map[string]any{"type": "group.list"}); !errors.Is(err, ErrNotConnected) || !IsRetriable(err) {
		t.Fatalf("Request before Run = %v, want a retriable ErrNotConnected", err)
	}
	if _, err := alice.CreateGroup(ctx, "x"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("CreateGroup before Run = %v, want ErrNotConnected", err)
	}
	if _, err := alice.Request(ctx, map[string]any{"id": "x"}); err == nil {
		t.Fatal("Request without a type succeeded")
	}
	alice.start(t)
	waitFor(t, "the connection", alice.Connected)

	frame := map[string]any{"type": "group.list"}
	ack, err := alice.Request(ctx, frame)
	if err != nil || !strings.Contains(string(ack), `"groups":[]`) || !strings.Contains(string(ack), `"type":"ack"`) {
		t.Fatalf("Request = %s, %v", ack, err)
	}
	if _, ok := frame["id"]; ok {
		t.Fatal("Request modified the caller's frame")
	}
	ack, err = alice.Request(ctx, map[string]any{"type": "group.list", "id": "mine"})
	if err != nil || !strings.Contains(string(ack), `"id":"mine"`) {
		t.Fatalf("Request with an id = %s, %v", ack, err)
	}

	// An error reply is returned, typed, and not handed to the Handler.
	_, err = alice.Request(ctx, map[string]any{"type": "teleport"})
	var se *ServerError
	if !errors.As(err, &se) || se.Code != CodeUnknownType {
		t.Fatalf("unknown type = %v, want a *ServerError %s", err, CodeUnknownType)
	}
	if n := alice.rec.count(func(r *recorder) int { return len(r.errs) }); n != 0 {
		t.Fatalf("%d errors handed to the Handler, want 0", n)
	}

	// A connection lost before the reply ends the wait.
	fs.With(func() { fs.Ignore = func(_ string, f *Frame) bool { return f.Type == "devices.list" } })
	errc := make(chan error, 1)
	go func() { _, err := alice.Devices(ctx); errc <- err }()
	waitFor(t, "the request to reach the server", func() bool {
		n := 0
		fs.With(func() { n = fs.Received["alice"]["devices.list"] })
		return n == 1
	})
	fs.KillUser("alice")
	select {
	case err := <-errc:
		if !errors.Is(err, ErrNotConnected) {
			t.Fatalf("request on a lost connection = %v, want ErrNotConnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request on a lost connection did not return")
	}

	// A context that ends, ends the wait.
	waitFor(t, "the reconnection", alice.Connected)
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := alice.Devices(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request past its deadline = %v", err)
	}
}

// Frame is the fake server's client frame, for hooks.
type Frame = fakeFrame

// SetActive and Subscribe are per connection on the server: the Client
// restores them on every connect.
func TestPresenceRestoredOnReconnect(t *testing.T) {
	fs := newFakeServer(t)
	alice := newTestClient(t, fs, "alice", "")
	bob := newTestClient(t, fs, "bob", "")
	ctx := context.Background()
	if err := alice.SetActive(ctx, true); err != nil {
		t.Fatalf("SetActive offline: %v", err)
	}
	if err := bob.Subscribe(ctx, "alice"); err != nil {
		t.Fatalf("Subscribe offline: %v", err)
	}
	alice.start(t)
	bob.start(t)
	online := func(want bool) func() bool {
		return func() bool {
			bob.rec.mu.Lock()
			defer bob.rec.mu.Unlock()
			if n := len(bob.rec.presence); n > 0 {
				p := bob.rec.presence[n-1]
				return p.User == "alice" && p.Online != nil && *p.Online == want && p.LastSeen != nil
			}
			return false
		}
	}
	waitFor(t, "alice online", online(true))

	// Alice's connection drops: offline; she reconnects: active again.
	fs.SetReject(503) // until bob has seen her offline
	fs.KillUser("alice")
	waitFor(t, "alice offline", online(false))
	fs.SetReject(0)
	waitFor(t, "alice online again", online(true))

	// Bob's connection drops: the subscription is made again.
	n := bob.rec.count(func(r *recorder) int { return len(r.presence) })
	fs.KillUser("bob")
	waitFor(t, "a presence frame on bob's new connection", func() bool {
		return bob.rec.count(func(r *recorder) int { return len(r.presence) }) > n
	})
	fs.With(func() {
		if got := fs.Received["bob"]["presence.sub"]; got != 2 {
			t.Errorf("bob subscribed %d times, want 2 (once per connection)", got)
		}
	})

	if err := bob.Unsubscribe(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := bob.Subscriptions(); len(got) != 0 {
		t.Fatalf("subscriptions after Unsubscribe: %v", got)
	}
	if err := alice.SetActive(ctx, false); err != nil {
		t.Fatal(err)
	}
}

func TestPrivacyContactsDevicesTyping(t *testing.T) {
	fs := newFakeServer(t)
	phone := startClient(t, fs, "alice#phone", "")
	laptop := startClient(t, fs, "alice#laptop", "")
	bob := startClient(t, fs, "bob", "")
	waitFor(t, "connections", func() bool { return phone.Connected() && laptop.Connected() && bob.Connected() })
	ctx := context.Background()

	p, err := phone.SetPrivacy(ctx, Privacy{LastSeen: VisibleContacts})
	if err != nil || p != (Privacy{LastSeen: VisibleContacts, Online: VisibleEveryone}) {
		t.Fatalf("SetPrivacy = %+v, %v", p, err)
	}
	if p, err := laptop.Privacy(ctx); err != nil || p.LastSeen != VisibleContacts {
		t.Fatalf("Privacy = %+v, %v", p, err)
	}
	var se *ServerError
	if _, err := phone.SetPrivacy(ctx, Privacy{Online: "friends"}); !errors.As(err, &se) || se.Code != CodeBadRequest {
		t.Fatalf("bad visibility = %v", err)
	}

	// Last seen for contacts only: bob sees alice's once she adds him.
	if err := phone.SetActive(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := bob.Subscribe(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's presence", func() bool { return bob.rec.count(func(r *recorder) int { return len(r.presence) }) == 1 })
	bob.rec.mu.Lock()
	first := bob.rec.presence[0]
	bob.rec.mu.Unlock()
	if first.LastSeen != nil || first.Online == nil || !*first.Online {
		t.Fatalf("presence %+v: want online and no last seen", first)
	}
	if err := phone.AddContacts(ctx, "bob", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := phone.RemoveContacts(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if users, err := laptop.Contacts(ctx); err != nil || !slices.Equal(users, []string{"bob"}) {
		t.Fatalf("Contacts = %v, %v", users, err)
	}
	if err := phone.SetActive(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's last seen", func() bool {
		bob.rec.mu.Lock()
		defer bob.rec.mu.Unlock()
		return bob.rec.presence[len(bob.rec.presence)-1].LastSeen != nil
	})

	devs, err := laptop.Devices(ctx)
	want := []Device{{Name: "laptop", Connections: 1, Current: true}, {Name: "phone", Connections: 1}}
	if err != nil || !slices.Equal(devs, want) {
		t.Fatalf("Devices = %+v, %v; want %+v", devs, err, want)
	}

	if err := bob.TypingTo(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	gid, err := bob.CreateGroup(ctx, "g", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.TypingInGroup(ctx, gid, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testClient{phone, laptop} {
		waitFor(t, "typing", func() bool { return c.rec.count(func(r *recorder) int { return len(r.typing) }) == 2 })
		c.rec.mu.Lock()
		got := fmt.Sprintf("%+v %+v", withoutRaw(c.rec.typing[0]), withoutRaw(c.rec.typing[1]))
		c.rec.mu.Unlock()
		if want := fmt.Sprintf("%+v %+v", Typing{From: "bob", To: "alice"}, Typing{From: "bob", Group: gid, Stop: true}); got != want {
			t.Fatalf("typing %s, want %s", got, want)
		}
	}
}

func withoutRaw(t Typing) Typing {
	t.Raw = nil
	return t
}

func TestUserFromToken(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(`{"sub":"alice","exp":1}`)) + ".sig"
	if got := tokenSubject(tok); got != "alice" {
		t.Fatalf("tokenSubject = %q", got)
	}
	for _, bad := range []string{"", "alice", "a.b", "a.!!!.c", "a." + enc([]byte("[]")) + ".c"} {
		if got := tokenSubject(bad); got != "" {
			t.Errorf("tokenSubject(%q) = %q, want \"\"", bad, got)
		}
	}
	c, err := New(Config{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.User() != "alice" {
		t.Fatalf("User() = %q, want the token's subject", c.User())
	}
	if _, err := New(Config{Token: tok, User: "bob"}); err == nil || !strings.Contains(err.Error(), `"alice"`) {
		t.Fatalf("New with a User that is not the token's = %v", err)
	}
}

func TestRecentOwnIsBounded(t *testing.T) {
	var r recentOwn
	for i := range maxRecentOwn + 10 {
		r.add(fmt.Sprint("m", i), "")
	}
	r.add("m20", "c20") // known: updated, not added
	if _, ok := r.get("m9"); ok {
		t.Fatal("the oldest ids are still remembered")
	}
	if id, ok := r.get("m20"); !ok || id != "c20" {
		t.Fatalf("m20 = %q, %v", id, ok)
	}
	if len(r.ids) != maxRecentOwn {
		t.Fatalf("%d ids remembered, want %d", len(r.ids), maxRecentOwn)
	}
}

// A group message queued offline is kept on disk, like any send, and goes
// out after a restart with its group.
func TestSendGroupSurvivesRestart(t *testing.T) {
	fs := newFakeServer(t)
	dir := t.TempDir()
	bob := startClient(t, fs, "bob", "")
	a1 := startClient(t, fs, "alice", dir)
	waitFor(t, "the connection", a1.Connected)
	gid, err := a1.CreateGroup(context.Background(), "g", "bob")
	if err != nil {
		t.Fatal(err)
	}
	a1.stop(t)

	a2 := newTestClient(t, fs, "alice", dir)
	id, err := a2.SendGroup(context.Background(), gid, "written offline")
	if err != nil {
		t.Fatal(err)
	}
	a2.stop(t)
	a3 := newTestClient(t, fs, "alice", dir)
	if n := a3.Pending(); n != 1 {
		t.Fatalf("Pending after restart = %d, want 1", n)
	}
	a3.start(t)
	waitFor(t, "the ack", func() bool { return a3.rec.nAcks() == 1 })
	_, _, acks := a3.rec.snapshot()
	if a := acks[0]; a.ClientID != id || a.Group != gid || a.To != "" || a.Body != "written offline" {
		t.Fatalf("ack after restart %+v", a)
	}
	waitFor(t, "bob's message", func() bool { return bob.rec.nMsgs() == 1 })
	msgs, _, _ := bob.rec.snapshot()
	if msgs[0].Group != gid || msgs[0].Body != "written offline" {
		t.Fatalf("bob got %+v", msgs[0])
	}
}
