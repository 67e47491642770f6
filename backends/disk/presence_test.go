package disk

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard/switchboard/presence"
	"github.com/switchboard/switchboard/presence/presencetest"
)

func TestPresenceStore(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) presence.Store { return openTest(t, t.TempDir()).Presence() })
}

// closingPresence closes the Store that holds the presence keys.
type closingPresence struct {
	*PresenceStore
	io.Closer
}

func TestPresenceStoreDurable(t *testing.T) {
	presencetest.RunDurable(t, func(t *testing.T, dir string) presence.Store {
		s := openTest(t, dir)
		return closingPresence{s.Presence(), s}
	})
}

// TestPresenceCorrupt checks that Load refuses a value it cannot read
// rather than guess.
func TestPresenceCorrupt(t *testing.T) {
	ctx := context.Background()
	for name, kv := range map[string][2]string{
		"PrivacyVersion": {"p", "\x02\x00\x00"},
		"PrivacyValue":   {"p", "\x01\x03\x00"},
		"PrivacyLength":  {"p", "\x01\x00"},
		"LastSeenLength": {"l", "1234"},
		"UnknownField":   {"x", ""},
		"EmptyContact":   {"c", ""},
	} {
		t.Run(name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			if err := s.db.Set(appendPresenceKey(nil, "alice", kv[0]), []byte(kv[1]), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Presence().Load(ctx, "alice"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestPresenceKeysApart checks that presence keys do not disturb the chat
// tables in the same database.
func TestPresenceKeysApart(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	p := s.Presence()
	if err := p.AddContacts(ctx, "bob", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if err := p.SaveLastSeen(ctx, []presence.Seen{{User: "bob", LastSeen: 7}}); err != nil {
		t.Fatal(err)
	}
	if seq, err := s.LastSeq(ctx, "bob"); err != nil || seq != 0 {
		t.Fatalf("LastSeq(bob) = %d, %v after presence writes", seq, err)
	}
	if n, err := s.Expire(ctx, t0.AddDate(10, 0, 0)); err != nil || n != 0 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	rec, _, err := p.Load(ctx, "bob")
	if err != nil || rec.LastSeen != 7 || len(rec.Contacts) != 1 {
		t.Fatalf("after Expire, Load = %+v, %v", rec, err)
	}
}

type noPush struct{}

func (noPush) Push(presence.Conn, []byte) {}

// TestPresenceServiceDurable runs the presence Service on the disk store:
// what a graceful Close leaves survives a reopen; without Close (a crash),
// settings and contacts survive and last seen not yet flushed is lost, as
// documented.
func TestPresenceServiceDurable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := presence.Config{FlushInterval: time.Hour}
	st, err := Open(dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := presence.New(cfg, st.Presence(), noPush{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	svc.Handle(presence.Event{Kind: presence.Active, User: "bob", Node: "gw", Conn: 1, TS: 1000})
	svc.Handle(presence.Event{Kind: presence.Disconnected, User: "bob", Node: "gw", Conn: 1, TS: 2000})
	contacts := presence.Contacts
	if _, err := svc.SetPrivacy(ctx, "bob", &contacts, nil); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddContacts(ctx, "bob", []string{"carol", "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen, then "crash": close the store under a running Service.
	st, err = Open(dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	svc, err = presence.New(cfg, st.Presence(), noPush{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	check := func(svc *presence.Service, lastSeen int64, contacts ...string) {
		t.Helper()
		if got, found, err := svc.LastSeen(ctx, "bob"); err != nil || !found || got != lastSeen {
			t.Fatalf("LastSeen(bob) = %d, %v, %v; want %d", got, found, err, lastSeen)
		}
		if p, err := svc.Privacy(ctx, "bob"); err != nil || p != (presence.Privacy{LastSeen: presence.Contacts}) {
			t.Fatalf("Privacy(bob) = %+v, %v", p, err)
		}
		if c, err := svc.Contacts(ctx, "bob"); err != nil || !slices.Equal(c, contacts) {
			t.Fatalf("Contacts(bob) = %q, %v; want %q", c, err, contacts)
		}
	}
	check(svc, 2000, "alice", "carol")
	svc.Handle(presence.Event{Kind: presence.Active, User: "bob", Node: "gw", Conn: 2, TS: 3000})
	if err := svc.AddContacts(ctx, "bob", []string{"dave"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err == nil {
		t.Fatal("Close flushed into a closed store")
	}

	st = openTest(t, dir)
	svc, err = presence.New(cfg, st.Presence(), noPush{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	check(svc, 2000, "alice", "carol", "dave") // 3000 was never flushed
}
