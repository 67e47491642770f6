package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
)

// reply is an ack or error, with the raw frame for fields beyond frame's.
type reply struct {
	frame
	raw map[string]any
}

// request sends v and reads until the ack or error with v's id. Frames in
// between are returned too, in order.
func (c *wsConn) request(t *testing.T, v map[string]any) (reply, []map[string]any) {
	t.Helper()
	if err := c.send(v); err != nil {
		t.Fatal(err)
	}
	var other []map[string]any
	for {
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, raw, err := c.readRaw()
		if err != nil {
			t.Fatalf("waiting for the reply to %v: %v", v, err)
		}
		if (f.Type == "ack" || f.Type == "error") && f.ID == v["id"] {
			return reply{f, raw}, other
		}
		other = append(other, raw)
	}
}

// readRaw reads one frame, decoded both ways; it skips the copies of the
// user's own messages.
func (c *wsConn) readRaw() (frame, map[string]any, error) {
	for {
		f, b, err := c.readBytes()
		if err != nil {
			return f, nil, err
		}
		if f.Type == "msg" && f.From == c.user && f.To != c.user {
			continue
		}
		var raw map[string]any
		json.Unmarshal(b, &raw)
		return f, raw, nil
	}
}

// TestGroupsAndPresenceSurviveRestart: groups, privacy, contacts and last
// seen are durable: after a graceful restart of the binary they are all
// there, and the group still delivers.
func TestGroupsAndPresenceSurviveRestart(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir, addr := srv.DataDir(), srv.Addr()
	connect := func(user, device string) *wsConn {
		t.Helper()
		c, err := dial(addr, testserver.Token(t, dir, user, device))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.conn.Close() })
		c.request(t, map[string]any{"type": "privacy.get", "id": "hello"})
		return c
	}
	alice, bob := connect("alice", "phone"), connect("bob", "phone")
	ack, _ := alice.request(t, map[string]any{"type": "group.create", "id": "g", "name": "durable", "members": []string{"bob"}})
	group, _ := ack.raw["group_id"].(string)
	if ack.Type != "ack" || group == "" {
		t.Fatalf("group.create: %v", ack.raw)
	}
	if r, _ := bob.request(t, map[string]any{"type": "privacy.set", "id": "p", "last_seen": "contacts", "online": "contacts"}); r.Type != "ack" {
		t.Fatalf("privacy.set: %v", r.raw)
	}
	bob.request(t, map[string]any{"type": "contacts.add", "id": "c", "users": []string{"alice"}})
	bob.send(map[string]any{"type": "active"})
	bob.send(map[string]any{"type": "inactive"})
	// Alice watches bob: the inactive event leaves his last seen.
	var lastSeen float64
	_, frames := alice.request(t, map[string]any{"type": "presence.sub", "id": "s", "users": []string{"bob"}})
	deadline := time.Now().Add(5 * time.Second)
	for lastSeen == 0 {
		for _, f := range frames {
			if f["type"] == "presence" && f["online"] == false {
				lastSeen, _ = f["last_seen"].(float64)
			}
		}
		if lastSeen != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice never saw bob offline with a last seen")
		}
		_, raw, err := alice.readRaw()
		if err != nil {
			t.Fatal(err)
		}
		frames = []map[string]any{raw}
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	testserver.Start(t, testserver.Options{Addr: addr, DataDir: dir})
	alice, bob = connect("alice", "phone"), connect("bob", "phone")

	_, frames = alice.request(t, map[string]any{"type": "presence.sub", "id": "s2", "users": []string{"bob"}})
	for len(frames) == 0 {
		_, raw, err := alice.readRaw()
		if err != nil {
			t.Fatal(err)
		}
		if raw["type"] == "presence" {
			frames = append(frames, raw)
		}
	}
	if got, _ := frames[0]["last_seen"].(float64); got != lastSeen || frames[0]["online"] != false {
		t.Fatalf("after restart bob's presence is %v, want offline, last seen %v", frames[0], lastSeen)
	}
	if r, _ := bob.request(t, map[string]any{"type": "privacy.get", "id": "p2"}); r.raw["last_seen"] != "contacts" {
		t.Fatalf("bob's privacy after restart: %v", r.raw)
	}
	if r, _ := bob.request(t, map[string]any{"type": "contacts.list", "id": "c2"}); len(r.raw["users"].([]any)) != 1 {
		t.Fatalf("bob's contacts after restart: %v", r.raw)
	}
	if r, _ := alice.request(t, map[string]any{"type": "send", "id": "after", "group": group, "body": "still here"}); r.Type != "ack" {
		t.Fatalf("group send after restart: %v", r.raw)
	}
	bob.send(map[string]any{"type": "sync", "after": 0})
	bob.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for { // the message comes with the sync, or live after it
		f, raw, err := bob.readRaw()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "msg" && raw["group"] == group && f.Body == "still here" {
			break
		}
	}
}
