package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

// completion receives a request's result (chat.Completer).
type completion chan chat.Result

func (c completion) Complete(_ *chat.Request, res chat.Result) { c <- res }

// newAsset records an upload of owner's, as the asset API does once the
// bytes are stored, and returns its id: one of assets.NewID's, so that it
// passes the gateway's checks.
func (s *server) newAsset(t *testing.T, owner, kind string) string {
	t.Helper()
	id := assets.NewID()
	sum := sha256.Sum256([]byte(id))
	done := make(completion, 1)
	err := s.svc.Submit(&chat.Request{Kind: chat.KindAsset, From: owner, Done: done,
		Asset: &chat.Asset{ID: id, Hash: hex.EncodeToString(sum[:]), Size: 3, Mime: "image/png", Kind: kind}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.Err != nil {
			t.Fatalf("recording asset: %v", res.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("asset not recorded in 5s")
	}
	return id
}

// mayRead reports whether user may download asset id over the asset API.
func (s *server) mayRead(id, user string) bool {
	_, err := s.svc.MayRead(context.Background(), id, user)
	return err == nil
}

// profiles decodes the profiles of a profile.get ack.
func profiles(t *testing.T, f frame) []chat.Profile {
	t.Helper()
	var ack struct{ Profiles []chat.Profile }
	if f.Type != "ack" || json.Unmarshal(f.raw, &ack) != nil {
		t.Fatalf("profile.get: %s", f.raw)
	}
	return ack.Profiles
}

// readEvent reads frames until a group event of kind event arrives.
func (c *wsClient) readEvent(event string) frame {
	c.t.Helper()
	for {
		if f := c.readType("group"); f.Event == event {
			return f
		}
	}
}

func (c *wsClient) setProfile(fields map[string]any) frame {
	c.t.Helper()
	v := map[string]any{"type": "profile.set", "id": "p"}
	for k, x := range fields {
		v[k] = x
	}
	return c.request(v)
}

// TestProfilesOverWebSocket: a profile set is what anyone reads back, and
// its photo becomes readable by everyone, until it is removed.
func TestProfilesOverWebSocket(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice, bob := s.dial(t, "ok:alice"), s.dial(t, "ok:bob")
	photo := s.newAsset(t, "alice", "image")
	if s.mayRead(photo, "bob") {
		t.Fatal("bob may read alice's upload before it is her photo")
	}
	ack := alice.setProfile(map[string]any{"name": "Alice Liddell", "about": "down\nthe hole", "photo": photo})
	var set struct{ Profile chat.Profile }
	if ack.Type != "ack" || json.Unmarshal(ack.raw, &set) != nil {
		t.Fatalf("profile.set: %s", ack.raw)
	}
	want := chat.Profile{User: "alice", Name: "Alice Liddell", About: "down\nthe hole", Photo: photo, Updated: set.Profile.Updated}
	if set.Profile != want || want.Updated == 0 {
		t.Fatalf("profile.set ack %+v, want %+v", set.Profile, want)
	}
	got := profiles(t, bob.request(map[string]any{"type": "profile.get", "id": "g", "users": []string{"alice", "carol"}}))
	if len(got) != 2 || got[0] != want || got[1] != (chat.Profile{User: "carol"}) {
		t.Fatalf("profile.get %+v, want alice's and an empty carol", got)
	}
	if !s.mayRead(photo, "bob") || !s.mayRead(photo, "mallory") {
		t.Fatal("a profile photo is not readable by everyone")
	}

	// A field not sent is kept; an empty photo removes it.
	alice.setProfile(map[string]any{"about": "awake"})
	if p := profiles(t, bob.request(map[string]any{"type": "profile.get", "id": "g", "users": []string{"alice"}})); p[0].Name != "Alice Liddell" || p[0].About != "awake" || p[0].Photo != photo {
		t.Fatalf("after setting about: %+v", p[0])
	}
	alice.setProfile(map[string]any{"photo": ""})
	if p := profiles(t, bob.request(map[string]any{"type": "profile.get", "id": "g", "users": []string{"alice"}})); p[0].Photo != "" || p[0].Name != "Alice Liddell" {
		t.Fatalf("after removing the photo: %+v", p[0])
	}
	if s.mayRead(photo, "bob") {
		t.Fatal("a removed photo is still readable by everyone")
	}
}

// TestProfileBadInput: each refusal is a documented error, and a refused
// profile.set changes nothing.
func TestProfileBadInput(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice := s.dial(t, "ok:alice")
	bobs := s.newAsset(t, "bob", "image")
	file := s.newAsset(t, "alice", "file")
	if f := alice.setProfile(map[string]any{"name": "Alice", "about": "hi"}); f.Type != "ack" {
		t.Fatalf("profile.set: %+v", f)
	}
	users := make([]string, chat.MaxProfileUsers+1)
	for i := range users {
		users[i] = "u" + strings.Repeat("x", i%7)
	}
	for _, tc := range []struct {
		frame string
		code  string
	}{
		{`{"type":"profile.set","name":"x"}`, "bad_request"}, // no id
		{`{"type":"profile.set","id":"` + strings.Repeat("i", 129) + `","name":"x"}`, "bad_request"},
		{`{"type":"profile.set","id":"p"}`, "bad_request"}, // nothing to set
		{`{"type":"profile.set","id":"p","name":"` + strings.Repeat("n", 129) + `"}`, "bad_request"},
		{`{"type":"profile.set","id":"p","about":"` + strings.Repeat("a", 513) + `"}`, "bad_request"},
		{`{"type":"profile.set","id":"p","name":"a\u0007b"}`, "bad_request"},
		{`{"type":"profile.set","id":"p","name":"two\nlines"}`, "bad_request"}, // only about may
		{`{"type":"profile.set","id":"p","about":"tab\there"}`, "bad_request"},
		{`{"type":"profile.set","id":"p","about":"del\u007f"}`, "bad_request"},
		{`{"type":"profile.set","id":"p","name":5}`, "bad_request"},
		{`{"type":"profile.set","id":"p","about":null}`, "bad_request"},
		{`{"type":"profile.set","id":"p","photo":["x"]}`, "bad_request"},
		{`{"type":"profile.set","id":"p","photo":"cat.png"}`, "bad_request"}, // not an asset id
		{`{"type":"profile.set","id":"p","photo":"` + assets.NewID() + `"}`, "not_found"},
		{`{"type":"profile.set","id":"p","photo":"` + bobs + `"}`, "not_found"},   // not hers
		{`{"type":"profile.set","id":"p","photo":"` + file + `"}`, "bad_request"}, // not an image
		{`{"type":"profile.set","id":"p","name":"Mallory","photo":"` + bobs + `"}`, "not_found"},
		{`{"type":"profile.get","id":"g"}`, "bad_request"},
		{`{"type":"profile.get","id":"g","users":[]}`, "bad_request"},
		{`{"type":"profile.get","id":"g","users":"bob"}`, "bad_request"},
		{`{"type":"profile.get","id":"g","users":[""]}`, "bad_request"},
		{`{"type":"profile.get","users":["bob"]}`, "bad_request"},
		{`{"type":"profile.get","id":"g","users":["` + strings.Join(users, `","`) + `"]}`, "bad_request"},
		{`{"type":"profile.del","id":"d"}`, "unknown_type"},
	} {
		alice.sendRaw([]byte(tc.frame))
		f := alice.read()
		if f.Type != "error" || f.Code != tc.code {
			t.Errorf("%.80s: got %s, want error %s", tc.frame, f.raw, tc.code)
		}
	}
	// At the limits, and with newlines in about: accepted.
	long := map[string]any{"name": strings.Repeat("é", 64), "about": strings.Repeat("ab\n", 170) + "ab"}
	if f := alice.setProfile(long); f.Type != "ack" {
		t.Fatalf("a name of 128 bytes and an about of 512: %s", f.raw)
	}
	alice.setProfile(map[string]any{"name": "Alice", "about": "hi"})
	p := profiles(t, alice.request(map[string]any{"type": "profile.get", "id": "g", "users": []string{"alice"}}))
	if p[0] != (chat.Profile{User: "alice", Name: "Alice", About: "hi", Updated: p[0].Updated}) {
		t.Fatalf("refused profile.set frames changed the profile: %+v", p[0])
	}
}

// TestGroupIconOverWebSocket: an admin sets the group's icon, every member
// hears of it and may download it, group.info shows it; a member who is
// not an admin may not.
func TestGroupIconOverWebSocket(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice, bob, carol := s.dial(t, "ok:alice"), s.dial(t, "ok:bob"), s.dial(t, "ok:carol")
	for _, c := range []*wsClient{alice, bob, carol} {
		c.synced()
	}
	g := alice.request(map[string]any{"type": "group.create", "id": "g1", "name": "trip", "members": []string{"bob", "carol"}}).GroupID
	icon := s.newAsset(t, "alice", "image")
	bobs := s.newAsset(t, "bob", "image")

	wantError(t, bob.request(map[string]any{"type": "group.icon", "id": "i", "group": g, "icon": bobs}), "not_admin")
	wantError(t, s.dial(t, "ok:mallory").request(map[string]any{"type": "group.icon", "id": "i", "group": g, "icon": bobs}), "not_member")
	wantError(t, alice.request(map[string]any{"type": "group.icon", "id": "i", "group": g}), "bad_request")
	wantError(t, alice.request(map[string]any{"type": "group.icon", "id": "i", "group": g, "icon": "icon.png"}), "bad_request")
	wantError(t, alice.request(map[string]any{"type": "group.icon", "id": "i", "group": g, "icon": bobs}), "not_found")
	wantError(t, alice.request(map[string]any{"type": "group.icon", "group": g, "icon": icon}), "bad_request")
	if s.mayRead(icon, "bob") {
		t.Fatal("bob may read alice's upload before it is the icon")
	}

	if f := alice.request(map[string]any{"type": "group.icon", "id": "i", "group": g, "icon": icon}); f.Type != "ack" {
		t.Fatalf("group.icon: %+v", f)
	}
	for _, c := range []*wsClient{alice, bob, carol} {
		f := c.readEvent("icon")
		var ev struct{ Icon *string }
		json.Unmarshal(f.raw, &ev)
		if f.Event != "icon" || f.Group != g || f.By != "alice" || ev.Icon == nil || *ev.Icon != icon {
			t.Fatalf("%s: %s", c.user, f.raw)
		}
	}
	if !s.mayRead(icon, "bob") || !s.mayRead(icon, "carol") || s.mayRead(icon, "mallory") {
		t.Fatal("the icon is readable by exactly the members: it is not")
	}
	var info struct{ Icon string }
	json.Unmarshal(bob.request(map[string]any{"type": "group.info", "id": "n", "group": g}).raw, &info)
	if info.Icon != icon {
		t.Fatalf("group.info icon %q, want %q", info.Icon, icon)
	}

	// Removed: members hear "icon" with "", and group.info has none.
	alice.request(map[string]any{"type": "group.icon", "id": "r", "group": g, "icon": ""})
	f := carol.readEvent("icon")
	if !strings.Contains(string(f.raw), `"icon":""`) {
		t.Fatalf("removal: %s", f.raw)
	}
	if raw := bob.request(map[string]any{"type": "group.info", "id": "n", "group": g}).raw; strings.Contains(string(raw), `"icon"`) {
		t.Fatalf("group.info after removal: %s", raw)
	}
}

// The gateway checks asset ids by shape without importing assets: every
// id assets.NewID makes must pass, and what it refuses must not.
func TestAssetIDsPassGateway(t *testing.T) {
	for range 1000 {
		if id := assets.NewID(); !validAssetRef([]byte(id)) {
			t.Fatalf("asset id %q refused", id)
		}
	}
	for _, bad := range []string{"x", "0123456789abcdefghjkmnpqrs", "0123456789ABCDEFGHJKMNPQRSU", "0123456789ABCDEFGHIKMNPQRS"} {
		if validAssetRef([]byte(bad)) || assets.ValidID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
