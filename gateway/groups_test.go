package gateway

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// request sends v and reads frames until the reply with v's id.
func (c *wsClient) request(v map[string]any) frame {
	c.t.Helper()
	c.send(v)
	id, _ := v["id"].(string)
	for {
		f := c.read()
		if (f.Type == "ack" || f.Type == "error") && f.ID == id {
			return f
		}
	}
}

func (c *wsClient) synced() {
	c.t.Helper()
	c.send(map[string]any{"type": "sync", "after": 0})
	c.readType("synced")
}

func wantError(t *testing.T, f frame, code string) {
	t.Helper()
	if f.Type != "error" || f.Code != code {
		t.Fatalf("got %+v, want an error %s", f, code)
	}
}

func TestGroupsOverWebSocket(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice, bob, carol, mallory := s.dial(t, "ok:alice"), s.dial(t, "ok:bob"), s.dial(t, "ok:carol"), s.dial(t, "ok:mallory")
	for _, c := range []*wsClient{alice, bob, carol, mallory} {
		c.synced()
	}
	ack := alice.request(map[string]any{"type": "group.create", "id": "g1", "name": "trip", "members": []string{"bob", "carol"}})
	if ack.Type != "ack" || len(ack.GroupID) != 26 {
		t.Fatalf("group.create: %+v", ack)
	}
	g := ack.GroupID
	for _, c := range []*wsClient{bob, carol} {
		if f := c.readType("group"); f.Event != "created" || f.Group != g || f.By != "alice" || len(f.members()) != 3 {
			t.Fatalf("%s: %+v", c.user, f)
		}
	}
	if f := alice.request(map[string]any{"type": "send", "id": "s1", "group": g, "body": "hi all"}); f.Type != "ack" {
		t.Fatalf("group send: %+v", f)
	}
	for _, c := range []*wsClient{bob, carol} {
		if f := c.readType("msg"); f.Group != g || f.From != "alice" || f.Body != "hi all" {
			t.Fatalf("%s: %+v", c.user, f)
		}
	}
	// Bad input, each a documented error.
	wantError(t, mallory.request(map[string]any{"type": "send", "id": "x", "group": g, "body": "spam"}), "not_member")
	wantError(t, alice.request(map[string]any{"type": "send", "id": "x", "group": "01AAAAAAAAAAAAAAAAAAAAAAAA", "body": "?"}), "not_found")
	wantError(t, alice.request(map[string]any{"type": "send", "id": "x", "group": "nope", "body": "?"}), "bad_request")
	wantError(t, bob.request(map[string]any{"type": "group.remove", "id": "r", "group": g, "members": []string{"carol"}}), "not_admin")
	wantError(t, alice.request(map[string]any{"type": "group.add", "id": "a", "group": g}), "bad_request")
	wantError(t, alice.request(map[string]any{"type": "group.info", "group": g}), "bad_request")

	// Carol is removed: she hears of it, then nothing more.
	if f := alice.request(map[string]any{"type": "group.remove", "id": "r1", "group": g, "members": []string{"carol"}}); f.Type != "ack" {
		t.Fatalf("group.remove: %+v", f)
	}
	if f := carol.readType("group"); f.Event != "removed" || f.members()[0] != "carol" {
		t.Fatalf("carol: %+v", f)
	}
	alice.request(map[string]any{"type": "send", "id": "s2", "group": g, "body": "without carol"})
	if f := bob.readType("msg"); f.Body != "without carol" {
		t.Fatalf("bob: %+v", f)
	}
	carol.send(map[string]any{"type": "sync", "after": 0})
	for {
		f := carol.read()
		if f.Type == "synced" {
			break
		}
		if f.Body == "without carol" {
			t.Fatalf("removed carol got %+v", f)
		}
	}
	info := bob.request(map[string]any{"type": "group.info", "id": "i", "group": g})
	var parsed struct {
		Group   string `json:"group"`
		Name    string `json:"name"`
		Members []struct {
			User  string `json:"user"`
			Admin bool   `json:"admin"`
		} `json:"members"`
	}
	json.Unmarshal(info.raw, &parsed)
	if parsed.Group != g || parsed.Name != "trip" || len(parsed.Members) != 2 || !parsed.Members[0].Admin {
		t.Fatalf("group.info: %s", info.raw)
	}
}

// TestGroupReceiptsAndMsgInfo: members' receipts become one "all" tick
// for the sender, and msg.info shows each member.
func TestGroupReceiptsAndMsgInfo(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice, bob, carol := s.dial(t, "ok:alice"), s.dial(t, "ok:bob"), s.dial(t, "ok:carol")
	for _, c := range []*wsClient{alice, bob, carol} {
		c.synced()
	}
	g := alice.request(map[string]any{"type": "group.create", "id": "g1", "name": "x", "members": []string{"bob", "carol"}}).GroupID
	m := alice.request(map[string]any{"type": "send", "id": "s1", "group": g, "body": "read me"}).MsgID
	for _, c := range []*wsClient{bob, carol} {
		c.readType("msg")
		c.request(map[string]any{"type": "receipt", "id": "r", "status": "read", "msg_ids": []string{m}})
	}
	var ticks []string
	for len(ticks) < 2 {
		f := alice.readType("receipt")
		if !f.All || f.Group != g || f.MsgIDs[0] != m {
			t.Fatalf("tick: %+v", f)
		}
		ticks = append(ticks, f.Status)
	}
	if ticks[0] != "delivered" || ticks[1] != "read" {
		t.Fatalf("ticks %q, want delivered then read, once each", ticks)
	}
	info := alice.request(map[string]any{"type": "msg.info", "id": "i", "msg_id": m})
	var parsed struct {
		Members []struct {
			User      string `json:"user"`
			Delivered int64  `json:"delivered"`
			Read      int64  `json:"read"`
		} `json:"members"`
	}
	json.Unmarshal(info.raw, &parsed)
	if len(parsed.Members) != 2 || parsed.Members[0].User != "bob" || parsed.Members[1].Read == 0 {
		t.Fatalf("msg.info: %s", info.raw)
	}
	wantError(t, bob.request(map[string]any{"type": "msg.info", "id": "i", "msg_id": m}), "not_found")
}

// TestThousandMemberGroup: a group of 1,024, all online; every member
// receives every message once, in order.
func TestThousandMemberGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("1,024 connections")
	}
	s := startServer(t, Config{}, nil)
	const members, msgs = 1024, 20
	conns := make([]*wsClient, members)
	names := make([]string, 0, members-1)
	for i := range conns {
		conns[i] = s.dial(t, fmt.Sprintf("ok:m%04d", i))
		conns[i].synced()
		if i > 0 {
			names = append(names, fmt.Sprintf("m%04d", i))
		}
	}
	owner := conns[0]
	ack := owner.request(map[string]any{"type": "group.create", "id": "g", "name": "big", "members": names})
	if ack.Type != "ack" {
		t.Fatalf("create: %+v", ack)
	}
	g := ack.GroupID
	over := owner.request(map[string]any{"type": "group.add", "id": "over", "group": g, "members": []string{"one-too-many"}})
	wantError(t, over, "group_full")
	for i := range msgs {
		owner.send(map[string]any{"type": "send", "id": fmt.Sprint("s", i), "group": g, "body": fmt.Sprint(i)})
	}
	var wg sync.WaitGroup
	errs := make(chan error, members)
	for _, c := range conns[1:] {
		wg.Go(func() {
			next := 0
			var last uint64
			for next < msgs {
				f, err := c.next()
				if err != nil {
					errs <- fmt.Errorf("%s after %d messages: %w", c.user, next, err)
					return
				}
				if f.Seq <= last {
					errs <- fmt.Errorf("%s: seq %d after %d", c.user, f.Seq, last)
					return
				}
				last = f.Seq
				if f.Type != "msg" {
					continue
				}
				if f.Body != fmt.Sprint(next) || f.Group != g {
					errs <- fmt.Errorf("%s: message %d is %+v", c.user, next, f)
					return
				}
				next++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestTwoDevicesStayInSync: a user's phone and laptop each get everything
// addressed to the user, including what the user sent from the other one,
// and the laptop catches up after a disconnect.
func TestTwoDevicesStayInSync(t *testing.T) {
	s := startServer(t, Config{}, nil)
	phone, laptop, bob := s.dial(t, "ok:alice:phone"), s.dial(t, "ok:alice:laptop"), s.dial(t, "ok:bob")
	phone.echoes, laptop.echoes = true, true
	for _, c := range []*wsClient{phone, laptop, bob} {
		c.synced()
	}
	bob.request(map[string]any{"type": "send", "id": "b1", "to": "alice", "body": "from bob"})
	for _, c := range []*wsClient{phone, laptop} {
		if f := c.readType("msg"); f.Body != "from bob" || f.Seq != 1 {
			t.Fatalf("%+v", f)
		}
	}
	phone.request(map[string]any{"type": "send", "id": "p1", "to": "bob", "body": "from phone"})
	for _, c := range []*wsClient{phone, laptop} {
		if f := c.readType("msg"); f.Body != "from phone" || f.From != "alice" || f.Seq != 2 {
			t.Fatalf("%+v", f)
		}
	}
	laptop.close()
	bob.request(map[string]any{"type": "send", "id": "b2", "to": "alice", "body": "while the laptop slept"})
	phone.readType("msg")
	phone.request(map[string]any{"type": "send", "id": "p2", "to": "bob", "body": "phone again"})
	phone.readType("msg")
	laptop = s.dial(t, "ok:alice:laptop")
	laptop.echoes = true
	laptop.send(map[string]any{"type": "sync", "after": 2})
	var got []string
	for {
		f := laptop.read()
		if f.Type == "synced" {
			break
		}
		got = append(got, f.Body)
	}
	if len(got) != 2 || got[0] != "while the laptop slept" || got[1] != "phone again" {
		t.Fatalf("laptop after reconnect: %q", got)
	}
	devs := phone.request(map[string]any{"type": "devices.list", "id": "d"})
	var parsed struct {
		Devices []struct {
			Device  string `json:"device"`
			Current bool   `json:"current"`
		} `json:"devices"`
	}
	json.Unmarshal(devs.raw, &parsed)
	if len(parsed.Devices) != 2 || parsed.Devices[0].Device != "laptop" || !parsed.Devices[1].Current {
		t.Fatalf("devices.list: %s", devs.raw)
	}
}

func TestTooManyDevices(t *testing.T) {
	s := startServer(t, Config{MaxDevices: 2}, nil)
	a, b := s.dial(t, "ok:alice:a"), s.dial(t, "ok:alice:b")
	a.synced()
	b.synced()
	// A new connection of a known device is fine: it replaces the old one.
	again := s.dial(t, "ok:alice:a")
	again.synced()
	if code := a.readClose(); code != CloseReplaced {
		t.Fatalf("old connection of device a: close %d, want %d", code, CloseReplaced)
	}
	third := s.dial(t, "ok:alice:c")
	if f := third.read(); f.Type != "error" || f.Code != "too_many_devices" {
		t.Fatalf("third device: %+v", f)
	}
	if code := third.readClose(); code != CloseTooManyDevices {
		t.Fatalf("close %d, want %d", code, CloseTooManyDevices)
	}
	again.request(map[string]any{"type": "send", "id": "still", "to": "bob", "body": "fine"})
}

func TestTypingIsEphemeralAndLimited(t *testing.T) {
	s := startServer(t, Config{TypingInterval: time.Hour}, nil)
	alice, bob := s.dial(t, "ok:alice"), s.dial(t, "ok:bob")
	alice.synced()
	bob.synced()
	alice.send(map[string]any{"type": "typing", "to": "bob"})
	if f := bob.read(); f.Type != "typing" || f.From != "alice" || f.Seq != 0 {
		t.Fatalf("bob: %+v", f)
	}
	wantError(t, alice.request(map[string]any{"type": "typing", "id": "t2", "to": "bob"}), "rate_limited")
	wantError(t, alice.request(map[string]any{"type": "typing", "id": "t3"}), "bad_request")
	bob.send(map[string]any{"type": "sync", "after": 0})
	if f := bob.read(); f.Type != "synced" || f.Seq != 0 {
		t.Fatalf("typing was stored: %+v", f)
	}
}
