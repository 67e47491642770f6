// Package presencetest is the conformance suite for presence.Store. Every
// backend runs it from its own tests, so that memory, disk and the
// distributed engines agree on what the contract in presence/presence.go
// means:
//
//	func TestPresenceStore(t *testing.T) {
//		presencetest.Run(t, func(t *testing.T) presence.Store { return memory.NewPresenceStore() })
//	}
//
// Run covers the behaviour of a live store; RunDurable adds what a store
// that survives a restart must keep. Tests use only the presence.Store
// methods and an optional io.Closer, never backend internals.
package presencetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/presence"
)

// Run runs the presence.Store conformance suite. open returns a new, empty
// store for one subtest; it registers its own cleanup.
func Run(t *testing.T, open func(t *testing.T) presence.Store) {
	t.Run("LoadMissing", func(t *testing.T) { testLoadMissing(t, open(t)) })
	t.Run("Privacy", func(t *testing.T) { testPrivacy(t, open(t)) })
	t.Run("Contacts", func(t *testing.T) { testContacts(t, open(t)) })
	t.Run("LastSeen", func(t *testing.T) { testLastSeen(t, open(t)) })
	t.Run("FieldsIndependent", func(t *testing.T) { testFieldsIndependent(t, open(t)) })
	t.Run("UsersIsolated", func(t *testing.T) { testUsersIsolated(t, open(t)) })
	t.Run("CallerOwnsSlices", func(t *testing.T) { testCallerOwnsSlices(t, open(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceledContext(t, open(t)) })
	t.Run("InvalidUser", func(t *testing.T) { testInvalidUser(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
}

// RunDurable runs the restart part of the suite. open opens (or reopens)
// the store kept in dir; the suite closes it through io.Closer before
// opening the same dir again, so a durable store must implement it.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("UseAfterClose", func(t *testing.T) { testUseAfterClose(t, open) })
}

var ctx = context.Background()

func load(t *testing.T, s presence.Store, user string) (presence.Record, bool) {
	t.Helper()
	rec, found, err := s.Load(ctx, user)
	if err != nil {
		t.Fatalf("Load(%q): %v", user, err)
	}
	return rec, found
}

// want checks user's record; nil and empty Contacts are equal.
func want(t *testing.T, s presence.Store, user string, w presence.Record) {
	t.Helper()
	got, found := load(t, s, user)
	if !found {
		t.Fatalf("Load(%q): not found, want %+v", user, w)
	}
	if len(got.Contacts) == 0 && len(w.Contacts) == 0 {
		got.Contacts, w.Contacts = nil, nil
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("Load(%q) = %+v, want %+v", user, got, w)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testLoadMissing(t *testing.T, s presence.Store) {
	rec, found := load(t, s, "nobody-here")
	if found || !reflect.DeepEqual(rec, presence.Record{}) {
		t.Fatalf("Load of an unknown user = %+v, %v; want a zero record, not found", rec, found)
	}
}

func testPrivacy(t *testing.T, s presence.Store) {
	vs := []presence.Visibility{presence.Everyone, presence.Contacts, presence.Nobody}
	for _, ls := range vs {
		for _, on := range vs {
			p := presence.Privacy{LastSeen: ls, Online: on}
			must(t, s.SavePrivacy(ctx, "alice", p))
			want(t, s, "alice", presence.Record{Privacy: p})
		}
	}
}

func testContacts(t *testing.T, s presence.Store) {
	must(t, s.AddContacts(ctx, "alice", []string{"carol", "bob", "zoë", "bo"}))
	want(t, s, "alice", presence.Record{Contacts: []string{"bo", "bob", "carol", "zoë"}})
	// Adding again keeps one of each.
	must(t, s.AddContacts(ctx, "alice", []string{"bob", "dave"}))
	want(t, s, "alice", presence.Record{Contacts: []string{"bo", "bob", "carol", "dave", "zoë"}})
	// Removing what is not there is harmless.
	must(t, s.RemoveContacts(ctx, "alice", []string{"bob", "nobody", "b"}))
	want(t, s, "alice", presence.Record{Contacts: []string{"bo", "carol", "dave", "zoë"}})
	must(t, s.RemoveContacts(ctx, "nobody-here", []string{"x"}))
	must(t, s.AddContacts(ctx, "alice", nil))
	must(t, s.RemoveContacts(ctx, "alice", []string{"bo", "carol", "dave", "zoë"}))
	if rec, _ := load(t, s, "alice"); len(rec.Contacts) != 0 {
		t.Fatalf("after removing all, Contacts = %q", rec.Contacts)
	}

	// Many contacts, with ids of every printable shape, come back sorted.
	var many []string
	for i := range 3000 {
		many = append(many, fmt.Sprintf("u%d-\x01\xff", i*7919%3000))
	}
	must(t, s.AddContacts(ctx, "bob", many))
	slices.Sort(many)
	want(t, s, "bob", presence.Record{Contacts: many})
}

func testLastSeen(t *testing.T, s presence.Store) {
	must(t, s.SaveLastSeen(ctx, nil))
	var seen []presence.Seen
	for i := range 2000 {
		seen = append(seen, presence.Seen{User: fmt.Sprintf("user-%d", i), LastSeen: 1_764_170_000_000 + int64(i)})
	}
	must(t, s.SaveLastSeen(ctx, seen))
	for _, x := range seen {
		want(t, s, x.User, presence.Record{LastSeen: x.LastSeen})
	}
	// A later save replaces, even with a smaller value: the Service
	// decides what last seen is.
	must(t, s.SaveLastSeen(ctx, []presence.Seen{{User: "user-1", LastSeen: 5}, {User: "user-2", LastSeen: 1 << 62}}))
	want(t, s, "user-1", presence.Record{LastSeen: 5})
	want(t, s, "user-2", presence.Record{LastSeen: 1 << 62})
	want(t, s, "user-3", presence.Record{LastSeen: seen[3].LastSeen})
}

// testFieldsIndependent checks that writing one part of a record keeps the
// others.
func testFieldsIndependent(t *testing.T, s presence.Store) {
	p := presence.Privacy{LastSeen: presence.Nobody, Online: presence.Contacts}
	must(t, s.SavePrivacy(ctx, "alice", p))
	must(t, s.AddContacts(ctx, "alice", []string{"bob"}))
	must(t, s.SaveLastSeen(ctx, []presence.Seen{{User: "alice", LastSeen: 42}}))
	want(t, s, "alice", presence.Record{Privacy: p, Contacts: []string{"bob"}, LastSeen: 42})
	must(t, s.SavePrivacy(ctx, "alice", presence.Privacy{}))
	want(t, s, "alice", presence.Record{Contacts: []string{"bob"}, LastSeen: 42})
	must(t, s.RemoveContacts(ctx, "alice", []string{"bob"}))
	must(t, s.SaveLastSeen(ctx, []presence.Seen{{User: "alice", LastSeen: 43}}))
	want(t, s, "alice", presence.Record{LastSeen: 43})
}

// testUsersIsolated writes users whose ids extend one another: no write
// to one may show in another.
func testUsersIsolated(t *testing.T, s presence.Store) {
	users := []string{"bo", "bob", "bob\x01", "bobby", "b", "bob c"}
	for i, u := range users {
		must(t, s.SavePrivacy(ctx, u, presence.Privacy{LastSeen: presence.Visibility(i % 3), Online: presence.Visibility((i + 1) % 3)}))
		must(t, s.AddContacts(ctx, u, []string{"c-" + u}))
		must(t, s.SaveLastSeen(ctx, []presence.Seen{{User: u, LastSeen: int64(100 + i)}}))
	}
	for i, u := range users {
		want(t, s, u, presence.Record{
			Privacy:  presence.Privacy{LastSeen: presence.Visibility(i % 3), Online: presence.Visibility((i + 1) % 3)},
			Contacts: []string{"c-" + u},
			LastSeen: int64(100 + i),
		})
	}
}

// testCallerOwnsSlices checks that the store keeps no slice of the
// caller's, and that the caller may change what Load returned.
func testCallerOwnsSlices(t *testing.T, s presence.Store) {
	in := []string{"bob", "carol"}
	must(t, s.AddContacts(ctx, "alice", in))
	in[0] = "mallory"
	rec, _ := load(t, s, "alice")
	rec.Contacts[1] = "eve"
	want(t, s, "alice", presence.Record{Contacts: []string{"bob", "carol"}})
	seen := []presence.Seen{{User: "alice", LastSeen: 7}}
	must(t, s.SaveLastSeen(ctx, seen))
	seen[0].User = "bob"
	if _, found := load(t, s, "bob"); found {
		t.Fatal("bob found: the store kept the caller's Seen slice")
	}
}

func testCanceledContext(t *testing.T, s presence.Store) {
	c, cancel := context.WithCancel(ctx)
	cancel()
	for name, err := range map[string]error{
		"SavePrivacy":    s.SavePrivacy(c, "alice", presence.Privacy{Online: presence.Nobody}),
		"AddContacts":    s.AddContacts(c, "alice", []string{"bob"}),
		"RemoveContacts": s.RemoveContacts(c, "alice", []string{"bob"}),
		"SaveLastSeen":   s.SaveLastSeen(c, []presence.Seen{{User: "alice", LastSeen: 1}}),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", name, err)
		}
	}
	if _, _, err := s.Load(c, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a canceled context = %v, want context.Canceled", err)
	}
	if rec, found := load(t, s, "alice"); found {
		t.Fatalf("a call with a canceled context wrote %+v", rec)
	}
}

func testInvalidUser(t *testing.T, s presence.Store) {
	for _, bad := range []string{"", "a\x00b"} {
		for name, err := range map[string]error{
			"SavePrivacy":         s.SavePrivacy(ctx, bad, presence.Privacy{}),
			"AddContacts":         s.AddContacts(ctx, bad, []string{"bob"}),
			"AddContacts contact": s.AddContacts(ctx, "alice", []string{"bob", bad}),
			"RemoveContacts":      s.RemoveContacts(ctx, bad, []string{"bob"}),
			"SaveLastSeen":        s.SaveLastSeen(ctx, []presence.Seen{{User: "alice", LastSeen: 1}, {User: bad, LastSeen: 1}}),
		} {
			if err == nil {
				t.Errorf("%s with user %q succeeded", name, bad)
			}
		}
		if _, _, err := s.Load(ctx, bad); err == nil {
			t.Errorf("Load(%q) succeeded", bad)
		}
	}
	// A rejected call writes nothing, not even its valid part.
	if rec, found := load(t, s, "alice"); found {
		t.Fatalf("a rejected call wrote %+v", rec)
	}
}

// testConcurrent runs writers and readers at once; every write must be
// there at the end.
func testConcurrent(t *testing.T, s presence.Store) {
	const workers, rounds = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*4)
	for w := range workers {
		wg.Go(func() {
			own := fmt.Sprintf("w%d", w)
			for i := range rounds {
				c := fmt.Sprintf("c%d-%d", w, i)
				for _, err := range []error{
					s.AddContacts(ctx, own, []string{c}),
					s.AddContacts(ctx, "shared", []string{c}),
					s.SaveLastSeen(ctx, []presence.Seen{{User: own, LastSeen: int64(i + 1)}, {User: "shared-" + own, LastSeen: int64(i + 1)}}),
					s.SavePrivacy(ctx, own, presence.Privacy{LastSeen: presence.Visibility(i % 3)}),
				} {
					if err != nil {
						errs <- err
					}
				}
				if _, _, err := s.Load(ctx, "shared"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []string
	for w := range workers {
		own := fmt.Sprintf("w%d", w)
		var mine []string
		for i := range rounds {
			mine = append(mine, fmt.Sprintf("c%d-%d", w, i))
		}
		slices.Sort(mine)
		all = append(all, mine...)
		want(t, s, own, presence.Record{
			Privacy:  presence.Privacy{LastSeen: presence.Visibility((rounds - 1) % 3)},
			Contacts: mine, LastSeen: rounds,
		})
		want(t, s, "shared-"+own, presence.Record{LastSeen: rounds})
	}
	slices.Sort(all)
	want(t, s, "shared", presence.Record{Contacts: all})
}

func closeStore(t *testing.T, s presence.Store) {
	t.Helper()
	c, ok := s.(io.Closer)
	if !ok {
		t.Fatal("a durable store must implement io.Closer")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testReopen(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	p := presence.Privacy{LastSeen: presence.Contacts, Online: presence.Nobody}
	must(t, s.SavePrivacy(ctx, "alice", p))
	must(t, s.AddContacts(ctx, "alice", []string{"carol", "bob", "dave"}))
	must(t, s.RemoveContacts(ctx, "alice", []string{"dave"}))
	must(t, s.SaveLastSeen(ctx, []presence.Seen{{User: "alice", LastSeen: 1_764_170_000_123}, {User: "bob", LastSeen: 9}}))
	check := func(s presence.Store) {
		t.Helper()
		want(t, s, "alice", presence.Record{Privacy: p, Contacts: []string{"bob", "carol"}, LastSeen: 1_764_170_000_123})
		want(t, s, "bob", presence.Record{LastSeen: 9})
		if _, found := load(t, s, "carol"); found {
			t.Fatal("carol found: only alice and bob were written")
		}
	}
	check(s)
	closeStore(t, s)

	s = open(t, dir)
	check(s)
	// The reopened store takes writes on top of what it kept.
	must(t, s.SaveLastSeen(ctx, []presence.Seen{{User: "bob", LastSeen: 10}}))
	closeStore(t, s)
	s = open(t, dir)
	want(t, s, "bob", presence.Record{LastSeen: 10})
	want(t, s, "alice", presence.Record{Privacy: p, Contacts: []string{"bob", "carol"}, LastSeen: 1_764_170_000_123})
	closeStore(t, s)
}

func testUseAfterClose(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	s := open(t, t.TempDir())
	closeStore(t, s)
	for name, err := range map[string]error{
		"SavePrivacy":    s.SavePrivacy(ctx, "alice", presence.Privacy{}),
		"AddContacts":    s.AddContacts(ctx, "alice", []string{"bob"}),
		"RemoveContacts": s.RemoveContacts(ctx, "alice", []string{"bob"}),
		"SaveLastSeen":   s.SaveLastSeen(ctx, []presence.Seen{{User: "alice", LastSeen: 1}}),
	} {
		if err == nil {
			t.Errorf("%s after Close succeeded", name)
		}
	}
	if _, _, err := s.Load(ctx, "alice"); err == nil {
		t.Error("Load after Close succeeded")
	}
}
