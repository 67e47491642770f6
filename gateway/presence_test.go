package gateway

import (
	"fmt"
	"testing"
)

// TestPresenceOverWebSocket: online and last seen move with user events
// (active, inactive, closing an active app), not with a background
// connect; privacy hides them, reciprocally; subscriptions are bounded.
func TestPresenceOverWebSocket(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice, bob := s.dial(t, "ok:alice"), s.dial(t, "ok:bob")
	alice.synced()
	bob.synced()
	// The current state at once: connected in the background is not online.
	if f := alice.subscribe("p", "bob"); f.User != "bob" || !shown(f) || online(f) {
		t.Fatalf("first presence: %s", f.raw)
	}
	bob.send(map[string]any{"type": "active"})
	f := alice.readType("presence")
	if !shown(f) || !online(f) || f.LastSeen == nil || string(f.LastSeen) == "0" {
		t.Fatalf("after active: %+v", f)
	}
	bob.send(map[string]any{"type": "inactive"})
	if f := alice.readType("presence"); !shown(f) || online(f) || f.LastSeen == nil {
		t.Fatalf("after inactive: %+v", f)
	}
	// Bob hides his last seen and online from everyone: alice is told
	// that she sees nothing any more.
	if f := bob.request(map[string]any{"type": "privacy.set", "id": "ps", "last_seen": "nobody", "online": "nobody"}); f.Type != "ack" {
		t.Fatalf("privacy.set: %+v", f)
	}
	if f := alice.readType("presence"); f.Online != nil || f.LastSeen != nil {
		t.Fatalf("after bob hid everything: %s", f.raw)
	}
	// Nothing leaks afterwards: bob's activity pushes nothing to alice.
	bob.send(map[string]any{"type": "active"})
	bob.send(map[string]any{"type": "inactive"})
	bob.request(map[string]any{"type": "privacy.get", "id": "b-fence"}) // bob's events are handled
	alice.send(map[string]any{"type": "privacy.get", "id": "fence"})
	for {
		f := alice.read()
		if f.Type == "presence" {
			t.Fatalf("a presence frame reached alice while bob hides everything: %s", f.raw)
		}
		if f.ID == "fence" {
			break
		}
	}
	// Reciprocity: bob, hiding his own, sees no one's.
	if f := bob.subscribe("p2", "alice"); f.User != "alice" || f.Online != nil || f.LastSeen != nil {
		t.Fatalf("bob sees alice's presence while hiding his own: %s", f.raw)
	}
	// Contacts.
	bob.request(map[string]any{"type": "contacts.add", "id": "c1", "users": []string{"carol", "alice"}})
	if f := bob.request(map[string]any{"type": "contacts.list", "id": "c2"}); string(f.raw) != `{"type":"ack","id":"c2","users":["alice","carol"]}` {
		t.Fatalf("contacts.list: %s", f.raw)
	}
	// Bad input.
	wantError(t, bob.request(map[string]any{"type": "privacy.set", "id": "x", "last_seen": "friends"}), "bad_request")
	many := make([]string, 20)
	for i := range many {
		many[i] = fmt.Sprint("u", i)
	}
	wantError(t, alice.request(map[string]any{"type": "presence.sub", "id": "flood", "users": many}), "too_many_subscriptions")
	wantError(t, alice.request(map[string]any{"type": "presence.sub", "id": "x"}), "bad_request")
}

// subscribe sends presence.sub for one user and returns the presence frame
// it brings (which may come before or after the ack).
func (c *wsClient) subscribe(id, user string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": "presence.sub", "id": id, "users": []string{user}})
	var pres frame
	acked := false
	for !acked || pres.Type == "" {
		switch f := c.read(); {
		case f.Type == "ack" && f.ID == id:
			acked = true
		case f.Type == "presence" && f.User == user:
			pres = f
		case f.Type == "error":
			c.t.Fatalf("presence.sub: %s", f.raw)
		}
	}
	return pres
}

func shown(f frame) bool  { s, _ := f.online(); return s }
func online(f frame) bool { _, o := f.online(); return o }

// TestPrivacyMatrixOverWebSocket runs every combination of the target's
// and the viewer's setting (everyone, contacts, nobody) and of who has
// whom in their contacts, and checks that the viewer sees online and last
// seen exactly when both settings admit the other (reciprocity), and that
// nothing is pushed to a viewer who may not see: a hidden change pushes no
// frame at all.
func TestPrivacyMatrixOverWebSocket(t *testing.T) {
	s := startServer(t, Config{}, nil)
	settings := []string{"everyone", "contacts", "nobody"}
	admits := func(setting string, inContacts bool) bool {
		return setting == "everyone" || setting == "contacts" && inContacts
	}
	n := 0
	for _, ts := range settings {
		for _, vs := range settings {
			for rel := range 4 { // bit 0: viewer in target's contacts; bit 1: target in viewer's
				n++
				tu, vu := fmt.Sprintf("t%d", n), fmt.Sprintf("v%d", n)
				target, witness, viewer := s.dial(t, "ok:"+tu+":phone"), s.dial(t, "ok:"+tu+":laptop"), s.dial(t, "ok:"+vu)
				for _, c := range []*wsClient{target, witness, viewer} {
					c.synced()
				}
				target.request(map[string]any{"type": "privacy.set", "id": "p", "last_seen": ts, "online": ts})
				viewer.request(map[string]any{"type": "privacy.set", "id": "p", "last_seen": vs, "online": vs})
				if rel&1 != 0 {
					target.request(map[string]any{"type": "contacts.add", "id": "c", "users": []string{vu}})
				}
				if rel&2 != 0 {
					viewer.request(map[string]any{"type": "contacts.add", "id": "c", "users": []string{tu}})
				}
				visible := admits(ts, rel&1 != 0) && admits(vs, rel&2 != 0)
				name := fmt.Sprintf("target %s, viewer %s, contacts %02b", ts, vs, rel)

				witness.subscribe("w", tu) // a user always sees their own presence
				first := viewer.subscribe("v", tu)
				if shown(first) != visible || (first.LastSeen != nil && !visible) {
					t.Fatalf("%s: first frame %s, want visible=%v", name, first.raw, visible)
				}
				// Two changes, handled one after the other by the presence
				// worker: once the witness has seen the second, every push
				// of the first is queued, so the viewer's fence reply comes
				// after any frame the first brought it.
				target.send(map[string]any{"type": "active"})
				if f := witness.readType("presence"); !online(f) {
					t.Fatalf("%s: witness got %s", name, f.raw)
				}
				target.send(map[string]any{"type": "inactive"})
				if f := witness.readType("presence"); online(f) {
					t.Fatalf("%s: witness got %s", name, f.raw)
				}
				viewer.send(map[string]any{"type": "privacy.get", "id": "fence"})
				var pushed []frame
				for {
					f := viewer.read()
					if f.Type == "presence" {
						pushed = append(pushed, f)
						continue
					}
					if f.ID == "fence" {
						break
					}
				}
				switch {
				case visible && (len(pushed) == 0 || !online(pushed[0]) || pushed[0].LastSeen == nil):
					t.Fatalf("%s: viewer may see, got %v", name, pushed)
				case !visible && len(pushed) > 0:
					t.Fatalf("%s: hidden change pushed %s", name, pushed[0].raw)
				}
				for _, c := range []*wsClient{target, witness, viewer} {
					c.close()
				}
			}
		}
	}
}
