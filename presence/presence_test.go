package presence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/presence"
)

var ctx = context.Background()

// frame is a decoded presence frame; nil fields were absent.
type frame struct {
	Type     string `json:"type"`
	User     string `json:"user"`
	Online   *bool  `json:"online"`
	LastSeen *int64 `json:"last_seen"`
}

func (f frame) String() string {
	s := fmt.Sprintf("{%s %s", f.Type, f.User)
	if f.Online != nil {
		s += fmt.Sprintf(" online=%v", *f.Online)
	}
	if f.LastSeen != nil {
		s += fmt.Sprintf(" last_seen=%d", *f.LastSeen)
	}
	return s + "}"
}

func (f frame) equal(g frame) bool {
	return f.Type == g.Type && f.User == g.User &&
		(f.Online == nil) == (g.Online == nil) && (f.Online == nil || *f.Online == *g.Online) &&
		(f.LastSeen == nil) == (g.LastSeen == nil) && (f.LastSeen == nil || *f.LastSeen == *g.LastSeen)
}

// want builds the expected frame; online and lastSeen are left out when
// nil.
func want(user string, online *bool, lastSeen *int64) frame {
	return frame{Type: "presence", User: user, Online: online, LastSeen: lastSeen}
}

func on(b bool) *bool                                { return &b }
func ls(v int64) *int64                              { return &v }
func vis(v presence.Visibility) *presence.Visibility { return &v }

// decode parses a pushed frame strictly: valid JSON, no other fields.
func decode(t testing.TB, raw []byte) frame {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var f frame
	if err := d.Decode(&f); err != nil {
		t.Fatalf("pushed frame %q: %v", raw, err)
	}
	if d.More() {
		t.Fatalf("pushed frame %q: data after the object", raw)
	}
	return f
}

// recorder is a Pusher that keeps every frame, per connection.
type recorder struct {
	t      testing.TB
	mu     sync.Mutex
	frames map[presence.Conn][]frame
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, frames: make(map[presence.Conn][]frame)}
}

func (r *recorder) Push(to presence.Conn, raw []byte) {
	f := decode(r.t, raw)
	r.mu.Lock()
	r.frames[to] = append(r.frames[to], f)
	r.mu.Unlock()
}

// take returns and forgets the frames pushed to c.
func (r *recorder) take(c presence.Conn) []frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.frames[c]
	delete(r.frames, c)
	return f
}

// expect checks that exactly the frames w were pushed to c since the last
// take.
func (r *recorder) expect(t *testing.T, c presence.Conn, w ...frame) {
	t.Helper()
	got := r.take(c)
	if !slices.EqualFunc(got, w, frame.equal) {
		t.Fatalf("pushed to %s/%d: %v, want %v", c.User, c.ID, got, w)
	}
}

// countingStore counts SaveLastSeen calls and can fail them.
type countingStore struct {
	*memory.PresenceStore
	mu    sync.Mutex
	saves [][]presence.Seen
	fail  int // fail this many SaveLastSeen calls
}

func (s *countingStore) SaveLastSeen(ctx context.Context, seen []presence.Seen) error {
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.mu.Unlock()
		return errors.New("disk on fire")
	}
	s.saves = append(s.saves, slices.Clone(seen))
	s.mu.Unlock()
	return s.PresenceStore.SaveLastSeen(ctx, seen)
}

func (s *countingStore) takeSaves() [][]presence.Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.saves
	s.saves = nil
	return v
}

// testConfig never flushes on its own: tests call FlushNow.
var testConfig = presence.Config{FlushInterval: time.Hour}

func newService(t testing.TB, cfg presence.Config, store presence.Store, push presence.Pusher) *presence.Service {
	t.Helper()
	s, err := presence.New(cfg, store, push, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func event(kind presence.EventKind, user, node string, conn uint64, ts int64) presence.Event {
	return presence.Event{Kind: kind, User: user, Device: "phone", Node: node, Conn: conn, TS: ts}
}

func wantLastSeen(t *testing.T, s *presence.Service, user string, w int64) {
	t.Helper()
	got, found, err := s.LastSeen(ctx, user)
	if err != nil || found != (w != 0) || got != w {
		t.Fatalf("LastSeen(%s) = %d, %v, %v; want %d", user, got, found, err, w)
	}
}

// TestAppAndUserEvents walks one user through connections and checks what a
// subscriber is pushed: only user events move last seen, and online
// follows the active connections.
func TestAppAndUserEvents(t *testing.T) {
	rec := newRecorder(t)
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	alice := presence.Conn{User: "alice", Node: "gw-1", ID: 1}
	must(t, s.Subscribe(ctx, alice, []string{"bob"}))
	rec.expect(t, alice, want("bob", on(false), nil)) // never seen: no last_seen

	steps := []struct {
		ev       presence.Event
		push     []frame
		lastSeen int64
		online   bool
	}{
		{event(presence.Connected, "bob", "gw-2", 7, 100), nil, 0, false},
		{event(presence.Active, "bob", "gw-2", 7, 200), []frame{want("bob", on(true), ls(200))}, 200, true},
		{event(presence.Inactive, "bob", "gw-2", 7, 300), []frame{want("bob", on(false), ls(300))}, 300, false},
		// Disconnecting an inactive connection is an app event.
		{event(presence.Disconnected, "bob", "gw-2", 7, 400), nil, 300, false},
		{event(presence.Connected, "bob", "gw-2", 8, 500), nil, 300, false},
		{event(presence.Active, "bob", "gw-2", 8, 600), []frame{want("bob", on(true), ls(600))}, 600, true},
		// Disconnecting an active connection is a user event.
		{event(presence.Disconnected, "bob", "gw-2", 8, 700), []frame{want("bob", on(false), ls(700))}, 700, false},
		// Events of a connection that is gone change nothing.
		{event(presence.Disconnected, "bob", "gw-2", 8, 800), nil, 700, false},
		{event(presence.Disconnected, "nobody", "gw-2", 8, 800), nil, 700, false},
		// A connection whose Connected was missed counts from its Active.
		{event(presence.Active, "bob", "gw-3", 1, 900), []frame{want("bob", on(true), ls(900))}, 900, true},
		// An older user event does not move last seen back.
		{event(presence.Inactive, "bob", "gw-3", 1, 850), []frame{want("bob", on(false), ls(900))}, 900, false},
	}
	for i, st := range steps {
		s.Handle(st.ev)
		t.Logf("step %d: %v %s/%d at %d", i, st.ev.Kind, st.ev.Node, st.ev.Conn, st.ev.TS)
		rec.expect(t, alice, st.push...)
		wantLastSeen(t, s, "bob", st.lastSeen)
		if got := s.Online("bob"); got != st.online {
			t.Fatalf("Online(bob) = %v, want %v", got, st.online)
		}
	}
}

// TestMultipleConnections: a user stays online while any connection is
// active, and last seen tracks the latest user event on any of them.
func TestMultipleConnections(t *testing.T) {
	rec := newRecorder(t)
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	alice := presence.Conn{User: "alice", Node: "gw-1", ID: 1}
	must(t, s.Subscribe(ctx, alice, []string{"bob"}))
	rec.take(alice)

	// The same connection id on two nodes is two connections.
	s.Handle(event(presence.Connected, "bob", "gw-1", 5, 100))
	s.Handle(event(presence.Connected, "bob", "gw-2", 5, 100))
	rec.expect(t, alice)
	s.Handle(event(presence.Active, "bob", "gw-1", 5, 200))
	rec.expect(t, alice, want("bob", on(true), ls(200)))
	s.Handle(event(presence.Active, "bob", "gw-2", 5, 300))
	rec.expect(t, alice, want("bob", on(true), ls(300)))
	s.Handle(event(presence.Inactive, "bob", "gw-1", 5, 400))
	rec.expect(t, alice, want("bob", on(true), ls(400)))
	if !s.Online("bob") {
		t.Fatal("bob offline with one active connection left")
	}
	// Active again on an active connection: still online, later last seen.
	s.Handle(event(presence.Active, "bob", "gw-2", 5, 450))
	rec.expect(t, alice, want("bob", on(true), ls(450)))
	s.Handle(event(presence.Disconnected, "bob", "gw-1", 5, 500)) // inactive: app event
	rec.expect(t, alice)
	s.Handle(event(presence.Disconnected, "bob", "gw-2", 5, 600))
	rec.expect(t, alice, want("bob", on(false), ls(600)))
	if s.Online("bob") {
		t.Fatal("bob online with no connection")
	}
}

// admits is the reference rule, written apart from the package's.
func admits(setting presence.Visibility, inContacts bool) bool {
	switch setting {
	case presence.Everyone:
		return true
	case presence.Contacts:
		return inContacts
	}
	return false
}

// TestPrivacyMatrix runs every combination of the target's and the
// viewer's setting, with and without each direction of the contact
// relation, for last seen and for online, with the other part shown or
// hidden. For each, the subscriber's first frame and every later push must
// be exactly what the rule allows: no hidden field, and no push when only
// hidden parts change.
func TestPrivacyMatrix(t *testing.T) {
	all := []presence.Visibility{presence.Everyone, presence.Contacts, presence.Nobody}
	for _, field := range []string{"last_seen", "online"} {
		for _, target := range all {
			for _, viewer := range all {
				for _, rel := range []struct{ targetHasViewer, viewerHasTarget bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
					for _, other := range []presence.Visibility{presence.Everyone, presence.Nobody} {
						name := fmt.Sprintf("%s/bob=%v,alice=%v/bob_has_alice=%v,alice_has_bob=%v/other=%v",
							field, target, viewer, rel.targetHasViewer, rel.viewerHasTarget, other)
						t.Run(name, func(t *testing.T) {
							visible := admits(target, rel.targetHasViewer) && admits(viewer, rel.viewerHasTarget)
							testPrivacyCase(t, field, target, viewer, rel.targetHasViewer, rel.viewerHasTarget, other, visible)
						})
					}
				}
			}
		}
	}
}

func testPrivacyCase(t *testing.T, field string, target, viewer presence.Visibility,
	targetHasViewer, viewerHasTarget bool, other presence.Visibility, visible bool) {
	rec := newRecorder(t)
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	// bob is the target, alice the viewer. The field under test gets the
	// case's settings; the other part is shown (alice Everyone, bob other)
	// or hidden by bob.
	bobP, aliceP := presence.Privacy{}, presence.Privacy{}
	if field == "last_seen" {
		bobP.LastSeen, aliceP.LastSeen, bobP.Online = target, viewer, other
	} else {
		bobP.Online, aliceP.Online, bobP.LastSeen = target, viewer, other
	}
	if _, err := s.SetPrivacy(ctx, "bob", &bobP.LastSeen, &bobP.Online); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPrivacy(ctx, "alice", &aliceP.LastSeen, &aliceP.Online); err != nil {
		t.Fatal(err)
	}
	if targetHasViewer {
		must(t, s.AddContacts(ctx, "bob", []string{"alice"}))
	}
	if viewerHasTarget {
		must(t, s.AddContacts(ctx, "alice", []string{"bob"}))
	}
	showLastSeen, showOnline := visible, other == presence.Everyone
	if field == "online" {
		showLastSeen, showOnline = showOnline, visible
	}
	// The reference model of bob.
	var online bool
	var lastSeen int64
	expected := func() frame {
		f := want("bob", nil, nil)
		if showOnline {
			f.Online = on(online)
		}
		if showLastSeen && lastSeen != 0 {
			f.LastSeen = ls(lastSeen)
		}
		return f
	}

	// bob has a last seen before alice subscribes.
	s.Handle(event(presence.Active, "bob", "gw", 1, 50))
	s.Handle(event(presence.Disconnected, "bob", "gw", 1, 60))
	lastSeen = 60
	alice := presence.Conn{User: "alice", Node: "gw", ID: 100}
	must(t, s.Subscribe(ctx, alice, []string{"bob"}))
	rec.expect(t, alice, expected())

	for _, step := range []struct {
		ev       presence.Event
		online   bool
		lastSeen int64
	}{
		{event(presence.Connected, "bob", "gw", 1, 90), false, 60},
		{event(presence.Active, "bob", "gw", 1, 100), true, 100},
		{event(presence.Active, "bob", "gw", 2, 200), true, 200},   // last seen only
		{event(presence.Inactive, "bob", "gw", 1, 300), true, 300}, // last seen only
		{event(presence.Inactive, "bob", "gw", 2, 400), false, 400},
		{event(presence.Connected, "bob", "gw", 3, 500), false, 400},
		{event(presence.Disconnected, "bob", "gw", 3, 600), false, 400},
		{event(presence.Active, "bob", "gw", 2, 700), true, 700},
		{event(presence.Disconnected, "bob", "gw", 2, 800), false, 800},
	} {
		before := expected()
		online, lastSeen = step.online, step.lastSeen
		s.Handle(step.ev)
		if after := expected(); after.equal(before) {
			rec.expect(t, alice) // nothing visible changed: no push at all
		} else {
			rec.expect(t, alice, after)
		}
	}

	// bob sees all of his own presence, whatever his settings.
	self := presence.Conn{User: "bob", Node: "gw", ID: 101}
	must(t, s.Subscribe(ctx, self, []string{"bob"}))
	rec.expect(t, self, want("bob", on(false), ls(800)))
}

// TestPrivacyChanges checks that changing settings or contacts pushes to
// exactly the subscribers whose view changed, in both directions.
func TestPrivacyChanges(t *testing.T) {
	rec := newRecorder(t)
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	alice := presence.Conn{User: "alice", Node: "gw", ID: 1}
	carol := presence.Conn{User: "carol", Node: "gw", ID: 2}
	bobConn := presence.Conn{User: "bob", Node: "gw", ID: 3}
	s.Handle(event(presence.Active, "bob", "gw", 3, 100))
	s.Handle(event(presence.Active, "alice", "gw", 1, 50))
	if _, err := s.SetPrivacy(ctx, "bob", vis(presence.Contacts), nil); err != nil {
		t.Fatal(err)
	}
	must(t, s.Subscribe(ctx, alice, []string{"bob"}))
	must(t, s.Subscribe(ctx, carol, []string{"bob"}))
	must(t, s.Subscribe(ctx, bobConn, []string{"alice"}))
	rec.expect(t, alice, want("bob", on(true), nil))
	rec.expect(t, carol, want("bob", on(true), nil))
	// bob shows last seen to contacts only, so he sees only theirs.
	rec.expect(t, bobConn, want("alice", on(true), nil))

	// bob adds alice: she now sees his last seen and he hers; carol's view
	// is the same.
	must(t, s.AddContacts(ctx, "bob", []string{"alice"}))
	rec.expect(t, alice, want("bob", on(true), ls(100)))
	rec.expect(t, bobConn, want("alice", on(true), ls(50)))
	rec.expect(t, carol)
	// Adding someone who does not watch changes nobody's view.
	must(t, s.AddContacts(ctx, "bob", []string{"dave"}))
	rec.expect(t, alice)
	rec.expect(t, carol)
	// alice hides her last seen: she no longer sees bob's (reciprocity),
	// and bob no longer sees hers.
	if p, err := s.SetPrivacy(ctx, "alice", vis(presence.Nobody), nil); err != nil || p.LastSeen != presence.Nobody || p.Online != presence.Everyone {
		t.Fatalf("SetPrivacy = %+v, %v", p, err)
	}
	rec.expect(t, alice, want("bob", on(true), nil))
	rec.expect(t, bobConn, want("alice", on(true), nil))
	rec.expect(t, carol)
	// Setting the same again pushes nothing.
	if _, err := s.SetPrivacy(ctx, "alice", vis(presence.Nobody), vis(presence.Everyone)); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, alice)
	rec.expect(t, bobConn)
	if _, err := s.SetPrivacy(ctx, "alice", vis(presence.Everyone), nil); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, alice, want("bob", on(true), ls(100)))
	rec.expect(t, bobConn, want("alice", on(true), ls(50)))
	// bob hides online from everyone.
	if _, err := s.SetPrivacy(ctx, "bob", nil, vis(presence.Nobody)); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, alice, want("bob", nil, ls(100)))
	rec.expect(t, carol, want("bob", nil, nil))
	rec.expect(t, bobConn, want("alice", nil, ls(50)))
	// bob removes alice.
	must(t, s.RemoveContacts(ctx, "bob", []string{"alice", "nobody"}))
	rec.expect(t, alice, want("bob", nil, nil))
	rec.expect(t, bobConn, want("alice", nil, nil))
	rec.expect(t, carol)
	// Now nothing of bob is visible to carol: his events push her nothing.
	s.Handle(event(presence.Inactive, "bob", "gw", 3, 200))
	rec.expect(t, carol)
	rec.expect(t, alice)

	if p, err := s.Privacy(ctx, "bob"); err != nil || p != (presence.Privacy{LastSeen: presence.Contacts, Online: presence.Nobody}) {
		t.Fatalf("Privacy(bob) = %+v, %v", p, err)
	}
	if c, err := s.Contacts(ctx, "bob"); err != nil || !slices.Equal(c, []string{"dave"}) {
		t.Fatalf("Contacts(bob) = %q, %v", c, err)
	}
}

// TestOneChangeManyViews: one event of bob reaches subscribers that see
// different parts of him, each with its own frame, and none to the one
// who sees nothing.
func TestOneChangeManyViews(t *testing.T) {
	rec := newRecorder(t)
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	if _, err := s.SetPrivacy(ctx, "bob", vis(presence.Contacts), nil); err != nil {
		t.Fatal(err)
	}
	must(t, s.AddContacts(ctx, "bob", []string{"alice"}))
	if _, err := s.SetPrivacy(ctx, "dave", vis(presence.Nobody), vis(presence.Nobody)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPrivacy(ctx, "erin", nil, vis(presence.Nobody)); err != nil {
		t.Fatal(err)
	}
	must(t, s.AddContacts(ctx, "bob", []string{"erin"}))
	conns := map[string]presence.Conn{}
	for i, u := range []string{"alice", "carol", "dave", "erin", "alice2"} {
		conns[u] = presence.Conn{User: strings.TrimSuffix(u, "2"), Node: "gw", ID: uint64(i)}
		must(t, s.Subscribe(ctx, conns[u], []string{"bob"}))
		rec.take(conns[u])
	}
	s.Handle(event(presence.Active, "bob", "gw", 9, 100))
	rec.expect(t, conns["alice"], want("bob", on(true), ls(100)))
	rec.expect(t, conns["alice2"], want("bob", on(true), ls(100)))
	rec.expect(t, conns["carol"], want("bob", on(true), nil))
	rec.expect(t, conns["dave"])
	rec.expect(t, conns["erin"], want("bob", nil, ls(100)))
}

// TestUnknownLastSeenHidden: a last seen that is not known is left out
// whatever the settings, so making it visible pushes nothing.
func TestUnknownLastSeenHidden(t *testing.T) {
	rec := newRecorder(t)
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	alice := presence.Conn{User: "alice", Node: "gw", ID: 1}
	if _, err := s.SetPrivacy(ctx, "bob", vis(presence.Nobody), vis(presence.Nobody)); err != nil {
		t.Fatal(err)
	}
	must(t, s.Subscribe(ctx, alice, []string{"bob"}))
	rec.expect(t, alice, want("bob", nil, nil))
	if _, err := s.SetPrivacy(ctx, "bob", vis(presence.Everyone), nil); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, alice)
}

func TestSubscriptions(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig
	cfg.MaxSubscriptions = 3
	s := newService(t, cfg, memory.NewPresenceStore(), rec)
	c1 := presence.Conn{User: "alice", Node: "gw", ID: 1}
	c2 := presence.Conn{User: "alice", Node: "gw", ID: 2}

	// Duplicates count once; each new user gets one frame.
	must(t, s.Subscribe(ctx, c1, []string{"u1", "u2", "u1"}))
	rec.expect(t, c1, want("u1", on(false), nil), want("u2", on(false), nil))
	// Already watched: no frame.
	must(t, s.Subscribe(ctx, c1, []string{"u2", "u3"}))
	rec.expect(t, c1, want("u3", on(false), nil))
	// A fourth is refused, and nothing of the call is subscribed.
	if err := s.Subscribe(ctx, c1, []string{"u3", "u4"}); !errors.Is(err, presence.ErrTooManySubscriptions) {
		t.Fatalf("Subscribe over the limit = %v", err)
	}
	rec.expect(t, c1)
	s.Handle(event(presence.Active, "u4", "gw", 9, 100))
	rec.expect(t, c1)
	// Too many in one call on a new connection: refused too.
	if err := s.Subscribe(ctx, c2, []string{"u1", "u2", "u3", "u4"}); !errors.Is(err, presence.ErrTooManySubscriptions) {
		t.Fatalf("Subscribe of 4 = %v", err)
	}
	rec.expect(t, c2)
	// The limit is per connection.
	must(t, s.Subscribe(ctx, c2, []string{"u4"}))
	rec.expect(t, c2, want("u4", on(true), ls(100)))

	// Unsubscribe stops the pushes to that connection only.
	must(t, s.Subscribe(ctx, c2, []string{"u1"}))
	rec.take(c2)
	s.Unsubscribe(c1, []string{"u1", "not-watched"})
	s.Handle(event(presence.Active, "u1", "gw", 9, 200))
	rec.expect(t, c1)
	rec.expect(t, c2, want("u1", on(true), ls(200)))
	// Room again for a fourth.
	must(t, s.Subscribe(ctx, c1, []string{"u4"}))
	rec.expect(t, c1, want("u4", on(true), ls(100)))

	// Drop removes everything of the connection.
	s.Drop(c1)
	s.Drop(c1)
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		s.Handle(event(presence.Inactive, u, "gw", 9, 300))
	}
	rec.expect(t, c1)
	rec.expect(t, c2, want("u1", on(false), ls(300)), want("u4", on(false), ls(300)))
	// A dropped connection id can subscribe afresh.
	must(t, s.Subscribe(ctx, c1, []string{"u1", "u2", "u3"}))
	if got := rec.take(c1); len(got) != 3 {
		t.Fatalf("resubscribe pushed %v", got)
	}
	// Unsubscribing all of them leaves nothing behind.
	s.Unsubscribe(c1, []string{"u1", "u2", "u3"})
	s.Handle(event(presence.Active, "u2", "gw", 9, 400))
	rec.expect(t, c1)
}

func TestInvalidCalls(t *testing.T) {
	s := newService(t, presence.Config{FlushInterval: time.Hour, MaxContacts: 3}, memory.NewPresenceStore(), newRecorder(t))
	c := presence.Conn{User: "alice", Node: "gw", ID: 1}
	long := strings.Repeat("x", presence.MaxUserBytes+1)
	for name, err := range map[string]error{
		"SubscribeBadSubscriber": s.Subscribe(ctx, presence.Conn{User: "", Node: "gw"}, []string{"bob"}),
		"SubscribeNUL":           s.Subscribe(ctx, c, []string{"bob", "b\x00b"}),
		"SubscribeLong":          s.Subscribe(ctx, c, []string{long}),
		"AddContactsEmpty":       s.AddContacts(ctx, "alice", []string{""}),
		"RemoveContactsUser":     s.RemoveContacts(ctx, "", []string{"bob"}),
	} {
		if !errors.Is(err, presence.ErrInvalidUser) {
			t.Errorf("%s = %v, want ErrInvalidUser", name, err)
		}
	}
	if _, err := s.SetPrivacy(ctx, "alice", vis(3), nil); !errors.Is(err, presence.ErrInvalidVisibility) {
		t.Errorf("SetPrivacy(3) = %v", err)
	}
	if _, err := s.Privacy(ctx, "a\x00"); !errors.Is(err, presence.ErrInvalidUser) {
		t.Errorf("Privacy(NUL) = %v", err)
	}
	must(t, s.AddContacts(ctx, "alice", []string{"b", "c"}))
	if err := s.AddContacts(ctx, "alice", []string{"c", "d", "e"}); !errors.Is(err, presence.ErrTooManyContacts) {
		t.Fatalf("AddContacts over the limit = %v", err)
	}
	if got, _ := s.Contacts(ctx, "alice"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("a refused AddContacts left %q", got)
	}
	must(t, s.AddContacts(ctx, "alice", []string{"c", "d", "d"})) // one new: fits
	if got, _ := s.Contacts(ctx, "alice"); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Fatalf("Contacts = %q", got)
	}

	must(t, s.Close())
	must(t, s.Close())
	if err := s.Subscribe(ctx, c, []string{"bob"}); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("Subscribe after Close = %v", err)
	}
	if _, err := s.SetPrivacy(ctx, "alice", nil, nil); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("SetPrivacy after Close = %v", err)
	}
	if _, _, err := s.LastSeen(ctx, "alice"); !errors.Is(err, presence.ErrClosed) {
		t.Errorf("LastSeen after Close = %v", err)
	}
	s.Handle(event(presence.Active, "alice", "gw", 1, 5))
	if s.Online("alice") {
		t.Error("an event after Close was applied")
	}
}

func TestConfig(t *testing.T) {
	for _, bad := range []presence.Config{
		{FlushInterval: -time.Second}, {MaxSubscriptions: -1}, {MaxContacts: -1}, {MaxUsers: -1},
	} {
		if _, err := presence.New(bad, memory.NewPresenceStore(), newRecorder(t), nil); err == nil {
			t.Errorf("New(%+v) succeeded", bad)
		}
	}
	s := newService(t, presence.Config{}, memory.NewPresenceStore(), newRecorder(t))
	if got, w := s.Config(), (presence.Config{FlushInterval: time.Minute, MaxSubscriptions: 1024, MaxContacts: 10_000, MaxUsers: 1_000_000}); got != w {
		t.Fatalf("defaults = %+v, want %+v", got, w)
	}
}

// TestDebounce checks that last seen is written only by flushes, in one
// batch for many users, each user at most once per flush, and that Close
// writes what is left.
func TestDebounce(t *testing.T) {
	store := &countingStore{PresenceStore: memory.NewPresenceStore()}
	s := newService(t, testConfig, store, newRecorder(t))
	latest := map[string]int64{}
	for i := range 100 {
		u := fmt.Sprintf("user-%d", i)
		for k := range 5 {
			ts := int64(1000*i + k + 1)
			s.Handle(event(presence.Active, u, "gw", uint64(i), ts))
			s.Handle(event(presence.Inactive, u, "gw", uint64(i), ts))
			latest[u] = ts
		}
	}
	if saves := store.takeSaves(); len(saves) != 0 {
		t.Fatalf("last seen written before any flush: %v", saves)
	}
	must(t, presence.FlushNow(s))
	saves := store.takeSaves()
	if len(saves) != 1 || len(saves[0]) != 100 {
		t.Fatalf("flush of 100 users made %d SaveLastSeen calls (first %d users), want 1 of 100", len(saves), len(saves[0]))
	}
	for _, x := range saves[0] {
		if latest[x.User] != x.LastSeen {
			t.Fatalf("saved %s = %d, want %d", x.User, x.LastSeen, latest[x.User])
		}
		delete(latest, x.User)
	}
	if len(latest) != 0 {
		t.Fatalf("not saved: %v", latest)
	}
	// Nothing changed: nothing written.
	must(t, presence.FlushNow(s))
	if saves := store.takeSaves(); len(saves) != 0 {
		t.Fatalf("a flush with nothing changed wrote %v", saves)
	}
	// App events do not make a user dirty.
	s.Handle(event(presence.Connected, "user-1", "gw", 77, 99999))
	s.Handle(event(presence.Disconnected, "user-1", "gw", 77, 99999))
	must(t, presence.FlushNow(s))
	if saves := store.takeSaves(); len(saves) != 0 {
		t.Fatalf("app events were written: %v", saves)
	}
	s.Handle(event(presence.Active, "user-1", "gw", 1, 5000))
	must(t, presence.FlushNow(s))
	if saves := store.takeSaves(); len(saves) != 1 || !slices.Equal(saves[0], []presence.Seen{{User: "user-1", LastSeen: 5000}}) {
		t.Fatalf("saves = %v", saves)
	}
	// Close writes what is pending.
	s.Handle(event(presence.Inactive, "user-1", "gw", 1, 6000))
	must(t, s.Close())
	if saves := store.takeSaves(); len(saves) != 1 || !slices.Equal(saves[0], []presence.Seen{{User: "user-1", LastSeen: 6000}}) {
		t.Fatalf("Close saved %v", saves)
	}
	rec, _, err := store.Load(ctx, "user-1")
	if err != nil || rec.LastSeen != 6000 {
		t.Fatalf("stored = %+v, %v", rec, err)
	}
}

// TestFlushBatches: more dirty users than one batch holds are written in
// several calls.
func TestFlushBatches(t *testing.T) {
	store := &countingStore{PresenceStore: memory.NewPresenceStore()}
	s := newService(t, testConfig, store, newRecorder(t))
	const n = 10_000
	for i := range n {
		s.Handle(event(presence.Active, fmt.Sprintf("u%d", i), "gw", uint64(i), int64(i+1)))
	}
	must(t, presence.FlushNow(s))
	seen := map[string]bool{}
	saves := store.takeSaves()
	for _, batch := range saves {
		if len(batch) > 4096 {
			t.Fatalf("one SaveLastSeen of %d users", len(batch))
		}
		for _, x := range batch {
			if seen[x.User] {
				t.Fatalf("%s written twice in one flush", x.User)
			}
			seen[x.User] = true
		}
	}
	if len(seen) != n || len(saves) > 4 {
		t.Fatalf("%d users written in %d calls", len(seen), len(saves))
	}
}

// TestFlushFailure: users whose write failed are written by the next
// flush.
func TestFlushFailure(t *testing.T) {
	store := &countingStore{PresenceStore: memory.NewPresenceStore(), fail: 1}
	s := newService(t, testConfig, store, newRecorder(t))
	s.Handle(event(presence.Active, "bob", "gw", 1, 100))
	if err := presence.FlushNow(s); err == nil {
		t.Fatal("a failed flush returned nil")
	}
	s.Handle(event(presence.Active, "carol", "gw", 2, 200))
	must(t, presence.FlushNow(s))
	saves := store.takeSaves()
	if len(saves) != 1 || len(saves[0]) != 2 {
		t.Fatalf("saves after a failure: %v", saves)
	}
	for _, u := range []string{"bob", "carol"} {
		if rec, _, _ := store.Load(ctx, u); rec.LastSeen == 0 {
			t.Fatalf("%s not written after the retry", u)
		}
	}
}

// notifyingStore reports each SaveLastSeen on a channel.
type notifyingStore struct {
	*memory.PresenceStore
	saved chan []presence.Seen
}

func (s *notifyingStore) SaveLastSeen(ctx context.Context, seen []presence.Seen) error {
	err := s.PresenceStore.SaveLastSeen(ctx, seen)
	s.saved <- slices.Clone(seen)
	return err
}

// TestFlusherRuns: without FlushNow, the flusher writes on its own.
func TestFlusherRuns(t *testing.T) {
	store := &notifyingStore{PresenceStore: memory.NewPresenceStore(), saved: make(chan []presence.Seen, 16)}
	s := newService(t, presence.Config{FlushInterval: 5 * time.Millisecond}, store, newRecorder(t))
	s.Handle(event(presence.Active, "bob", "gw", 1, 100))
	select {
	case seen := <-store.saved:
		if !slices.Equal(seen, []presence.Seen{{User: "bob", LastSeen: 100}}) {
			t.Fatalf("flusher saved %v", seen)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("last seen not written by the flusher within 10s")
	}
	must(t, s.Close())
}

// TestLastSeenFromStore: a user not in memory is read from the store, and
// events handled before the read are kept if later.
func TestLastSeenFromStore(t *testing.T) {
	store := memory.NewPresenceStore()
	must(t, store.SaveLastSeen(ctx, []presence.Seen{{User: "bob", LastSeen: 500}, {User: "carol", LastSeen: 500}}))
	rec := newRecorder(t)
	s := newService(t, testConfig, store, rec)
	wantLastSeen(t, s, "bob", 500)
	s.Handle(event(presence.Active, "carol", "gw", 1, 400)) // older than the stored value
	s.Handle(event(presence.Active, "dave", "gw", 1, 400))
	alice := presence.Conn{User: "alice", Node: "gw", ID: 1}
	must(t, s.Subscribe(ctx, alice, []string{"carol", "dave"}))
	rec.expect(t, alice, want("carol", on(true), ls(500)), want("dave", on(true), ls(400)))
	wantLastSeen(t, s, "nobody", 0)
}

// TestEviction: idle users beyond MaxUsers leave memory and come back from
// the store; users with connections or unsaved last seen stay.
func TestEviction(t *testing.T) {
	store := memory.NewPresenceStore()
	s := newService(t, presence.Config{FlushInterval: time.Hour, MaxUsers: 64}, store, newRecorder(t))
	const n = 2000
	for i := range n {
		s.Handle(event(presence.Active, fmt.Sprintf("u%d", i), "gw", 1, int64(i+1)))
		s.Handle(event(presence.Disconnected, fmt.Sprintf("u%d", i), "gw", 1, int64(i+1)))
	}
	if got := presence.Users(s); got != n {
		t.Fatalf("%d users in memory, want all %d: their last seen is not saved", got, n)
	}
	// Once saved, they may go: the flusher trims the shards to one idle
	// user each (MaxUsers 64 over 64 shards), give or take the users that
	// its 16 probes per user miss.
	must(t, presence.FlushNow(s))
	if got := presence.Users(s); got > 2*64 {
		t.Fatalf("%d users in memory after the flush, with MaxUsers 64", got)
	}
	for i := range 64 {
		s.Handle(event(presence.Active, fmt.Sprintf("c%d", i), "gw", 1, 1))
	}
	for i := range n {
		wantLastSeen(t, s, fmt.Sprintf("u%d", i), int64(i+1))
	}
	if got := presence.Users(s); got > 64+2*64 {
		t.Fatalf("%d users in memory with MaxUsers 64 and 64 connected", got)
	}
	for i := range 64 {
		if !s.Online(fmt.Sprintf("c%d", i)) {
			t.Fatalf("connected user c%d was evicted", i)
		}
	}
}

// lastRecorder keeps the last frame pushed to each connection about each
// user.
type lastRecorder struct {
	t    testing.TB
	mu   sync.Mutex
	last map[watch]frame
	n    atomic.Int64
}

type watch struct {
	conn presence.Conn
	user string
}

func (r *lastRecorder) Push(to presence.Conn, raw []byte) {
	f := decode(r.t, raw)
	r.n.Add(1)
	r.mu.Lock()
	r.last[watch{to, f.User}] = f
	r.mu.Unlock()
}

// model is the reference state of one user, kept by the goroutine that
// owns the user.
type model struct {
	conns    map[uint64]bool // conn id → active
	lastSeen int64
	privacy  presence.Privacy
	contacts map[string]bool
}

func (m *model) online() bool {
	for _, a := range m.conns {
		if a {
			return true
		}
	}
	return false
}

func (m *model) apply(ev presence.Event) {
	active, ok := m.conns[ev.Conn]
	switch ev.Kind {
	case presence.Connected:
		if !ok {
			m.conns[ev.Conn] = false
		}
		return
	case presence.Active, presence.Inactive:
		m.conns[ev.Conn] = ev.Kind == presence.Active
	case presence.Disconnected:
		if !ok {
			return
		}
		delete(m.conns, ev.Conn)
		if !active {
			return
		}
	}
	m.lastSeen = max(m.lastSeen, ev.TS)
}

// TestConcurrent runs events, subscriptions, privacy and contacts changes
// from many goroutines at once; then the last frame each connection got
// about each user it watches must be what it may see of that user's final
// state, as computed by a reference model.
func TestConcurrent(t *testing.T) {
	rec := &lastRecorder{t: t, last: make(map[watch]frame)}
	s := newService(t, testConfig, memory.NewPresenceStore(), rec)
	const owners, perOwner, rounds = 8, 4, 400
	var all []string
	for g := range owners {
		for j := range perOwner {
			all = append(all, fmt.Sprintf("o%d-u%d", g, j))
		}
	}
	models := make(map[string]*model)
	subs := make([]map[presence.Conn]map[string]bool, owners)
	for _, u := range all {
		models[u] = &model{conns: map[uint64]bool{}, contacts: map[string]bool{}}
	}
	vs := []presence.Visibility{presence.Everyone, presence.Contacts, presence.Nobody}
	var wg sync.WaitGroup
	for g := range owners {
		subs[g] = make(map[presence.Conn]map[string]bool)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			own := all[g*perOwner : (g+1)*perOwner]
			ts := int64(0)
			for range rounds {
				u := own[rng.IntN(len(own))]
				m := models[u]
				conn := presence.Conn{User: u, Node: "gw", ID: uint64(1 + rng.IntN(2))}
				some := func() []string {
					var us []string
					for range 1 + rng.IntN(3) {
						us = append(us, all[rng.IntN(len(all))])
					}
					return us
				}
				switch op := rng.IntN(100); {
				case op < 40:
					ts++
					ev := event(presence.EventKind(1+rng.IntN(4)), u, "gw", conn.ID, ts)
					m.apply(ev)
					s.Handle(ev)
				case op < 60:
					us := some()
					if err := s.Subscribe(ctx, conn, us); err != nil {
						t.Error(err)
						return
					}
					if subs[g][conn] == nil {
						subs[g][conn] = map[string]bool{}
					}
					for _, x := range us {
						subs[g][conn][x] = true
					}
				case op < 70:
					us := some()
					s.Unsubscribe(conn, us)
					for _, x := range us {
						delete(subs[g][conn], x)
					}
				case op < 74:
					s.Drop(conn)
					delete(subs[g], conn)
				case op < 87:
					p, err := s.SetPrivacy(ctx, u, &vs[rng.IntN(3)], &vs[rng.IntN(3)])
					if err != nil {
						t.Error(err)
						return
					}
					m.privacy = p
				default:
					us := some()
					var err error
					if rng.IntN(2) == 0 {
						err = s.AddContacts(ctx, u, us)
						for _, x := range us {
							m.contacts[x] = true
						}
					} else {
						err = s.RemoveContacts(ctx, u, us)
						for _, x := range us {
							delete(m.contacts, x)
						}
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checked := 0
	for g := range owners {
		for conn, targets := range subs[g] {
			viewer := models[conn.User]
			for target := range targets {
				tm := models[target]
				w := want(target, nil, nil)
				self := conn.User == target
				if self || admits(tm.privacy.Online, tm.contacts[conn.User]) && admits(viewer.privacy.Online, viewer.contacts[target]) {
					w.Online = on(tm.online())
				}
				if tm.lastSeen != 0 && (self || admits(tm.privacy.LastSeen, tm.contacts[conn.User]) && admits(viewer.privacy.LastSeen, viewer.contacts[target])) {
					w.LastSeen = ls(tm.lastSeen)
				}
				got, ok := rec.last[watch{conn, target}]
				if !ok || !got.equal(w) {
					t.Errorf("%s/%d watching %s: last frame %v (pushed %v), want %v", conn.User, conn.ID, target, got, ok, w)
				}
				checked++
			}
		}
	}
	t.Logf("%d pushes, %d subscriptions checked", rec.n.Load(), checked)
	if checked < 50 {
		t.Fatalf("only %d subscriptions left to check", checked)
	}
}

// TestLastSeenWrittenByItsNode: with Config.Node set, a Service applies
// every node's events (its subscribers see them) but writes only the
// last seen of its own node's connections: each is written once in a
// deployment, by one gateway, not by every gateway that read the event.
func TestLastSeenWrittenByItsNode(t *testing.T) {
	store := &countingStore{PresenceStore: memory.NewPresenceStore()}
	cfg := testConfig
	cfg.Node = "gw-1"
	s := newService(t, cfg, store, &countPusher{})
	s.Handle(event(presence.Active, "bob", "gw-2", 1, 100))
	s.Handle(event(presence.Disconnected, "bob", "gw-2", 1, 150))
	s.Handle(event(presence.Active, "carol", "gw-1", 2, 200))
	s.Handle(event(presence.Disconnected, "carol", "gw-1", 2, 250))
	wantLastSeen(t, s, "bob", 150) // known here, from gw-2's events
	must(t, s.Close())
	var written []string
	for _, batch := range store.takeSaves() {
		for _, seen := range batch {
			written = append(written, fmt.Sprintf("%s@%d", seen.User, seen.LastSeen))
		}
	}
	if !slices.Equal(written, []string{"carol@250"}) {
		t.Fatalf("last seen written: %v, want only carol's (gw-1's own connection)", written)
	}
}

// TestSettingsFromAnotherGateway: two gateways' services share the store
// and both apply every event, as with the bus's presence stream. Bob
// hides his presence through gateway 1; gateway 2, whose alice watches
// him, learns it from the Settings event (the gateway emits one after a
// change), not from a stale copy: alice is pushed a frame with nothing
// visible, and bob's later activity reaches her no more. Making alice a
// contact under "contacts" shows him again.
func TestSettingsFromAnotherGateway(t *testing.T) {
	store := memory.NewPresenceStore()
	rec1, rec2 := newRecorder(t), newRecorder(t)
	cfg1, cfg2 := testConfig, testConfig
	cfg1.Node, cfg2.Node = "gw-1", "gw-2"
	gw1, gw2 := newService(t, cfg1, store, rec1), newService(t, cfg2, store, rec2)
	both := func(ev presence.Event) { gw1.Handle(ev); gw2.Handle(ev) }
	settings := presence.Event{Kind: presence.Settings, User: "bob"}
	// Through the stream's encoding, as gateways send it.
	wire, err := presence.DecodeEvent(settings.AppendBinary(nil))
	if err != nil || wire.Kind != presence.Settings || wire.User != "bob" {
		t.Fatalf("the settings event through its encoding: %+v, %v", wire, err)
	}

	both(event(presence.Active, "bob", "gw-1", 1, 100))
	alice := presence.Conn{User: "alice", Node: "gw-2", ID: 7}
	must(t, gw2.Subscribe(ctx, alice, []string{"bob"}))
	rec2.expect(t, alice, want("bob", on(true), ls(100)))

	if _, err := gw1.SetPrivacy(ctx, "bob", vis(presence.Nobody), vis(presence.Nobody)); err != nil {
		t.Fatal(err)
	}
	both(wire)
	waitPushed(t, rec2, alice, want("bob", nil, nil))
	both(event(presence.Inactive, "bob", "gw-1", 1, 200))
	time.Sleep(20 * time.Millisecond)
	rec2.expect(t, alice)
	carol := presence.Conn{User: "carol", Node: "gw-2", ID: 8}
	must(t, gw2.Subscribe(ctx, carol, []string{"bob"}))
	rec2.expect(t, carol, want("bob", nil, nil))

	if _, err := gw1.SetPrivacy(ctx, "bob", vis(presence.Contacts), vis(presence.Contacts)); err != nil {
		t.Fatal(err)
	}
	must(t, gw1.AddContacts(ctx, "bob", []string{"alice"}))
	both(wire)
	waitPushed(t, rec2, alice, want("bob", on(false), ls(200)))
	rec2.expect(t, carol)
}

// waitPushed waits up to 5 s for exactly w to have been pushed to c.
func waitPushed(t *testing.T, r *recorder, c presence.Conn, w ...frame) {
	t.Helper()
	var got []frame
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got = append(got, r.take(c)...); len(got) >= len(w) {
			break
		}
	}
	if !slices.EqualFunc(got, w, frame.equal) {
		t.Fatalf("pushed to %s/%d: %v, want %v", c.User, c.ID, got, w)
	}
}
