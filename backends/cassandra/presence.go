package cassandra

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/switchboard/switchboard/presence"
)

var _ presence.Store = (*PresenceStore)(nil)

// ErrInvalidUser is returned by the PresenceStore for a user id that is
// empty, longer than presence.MaxUserBytes or holds a NUL; nothing of the
// call is written.
var ErrInvalidUser = errors.New("cassandra: invalid user id")

// PresenceStore is the presence.Store in a Store's keyspace: one row per
// user in the presence table (privacy, last seen, contacts as a set).
// Every write is one idempotent statement at the configured consistency
// (the last seen of many users: one per user, in parallel), durable on a
// quorum when it returns. It has no Close: closing the Store closes it,
// after which its methods return chat.ErrClosed. Safe for concurrent use.
type PresenceStore struct {
	s *Store
}

// Presence returns the presence.Store kept in s's keyspace. Safe for
// concurrent use.
func (s *Store) Presence() *PresenceStore { return &PresenceStore{s: s} }

const (
	cqlLoadPresence = `SELECT last_seen_vis, online_vis, last_seen, contacts FROM presence WHERE ns = ? AND uid = ?`
	cqlSetPrivacy   = `UPDATE presence SET last_seen_vis = ?, online_vis = ? WHERE ns = ? AND uid = ?`
	cqlAddContacts  = `UPDATE presence SET contacts = contacts + ? WHERE ns = ? AND uid = ?`
	cqlDelContacts  = `UPDATE presence SET contacts = contacts - ? WHERE ns = ? AND uid = ?`
	cqlSetLastSeen  = `UPDATE presence SET last_seen = ? WHERE ns = ? AND uid = ?`
)

func validUser(u string) bool {
	return u != "" && len(u) <= presence.MaxUserBytes && strings.IndexByte(u, 0) < 0
}

func (p *PresenceStore) begin(ctx context.Context, users ...string) error {
	if err := p.s.check(ctx); err != nil {
		return err
	}
	for _, u := range users {
		if !validUser(u) {
			return fmt.Errorf("%w: %q", ErrInvalidUser, u)
		}
	}
	return nil
}

// Load reads user's row. Safe for concurrent use.
func (p *PresenceStore) Load(ctx context.Context, user string) (presence.Record, bool, error) {
	if err := p.begin(ctx, user); err != nil {
		return presence.Record{}, false, err
	}
	var ls, on int8
	var rec presence.Record
	err := p.s.query(ctx, cqlLoadPresence, p.s.ns, []byte(user)).Scan(&ls, &on, &rec.LastSeen, &rec.Contacts)
	if errors.Is(err, gocql.ErrNotFound) {
		return presence.Record{}, false, nil
	}
	if err != nil {
		return presence.Record{}, false, p.s.wrap("presence: load", err)
	}
	rec.Privacy = presence.Privacy{LastSeen: presence.Visibility(ls), Online: presence.Visibility(on)}
	if !rec.Privacy.Valid() {
		return presence.Record{}, false, fmt.Errorf("cassandra: presence: %q has privacy %d/%d", user, ls, on)
	}
	if len(rec.Contacts) == 0 {
		rec.Contacts = nil
	}
	slices.Sort(rec.Contacts) // a set of blobs is in byte order already
	return rec, true, nil
}

// SavePrivacy sets user's two visibilities. Safe for concurrent use.
func (p *PresenceStore) SavePrivacy(ctx context.Context, user string, pv presence.Privacy) error {
	if err := p.begin(ctx, user); err != nil {
		return err
	}
	if !pv.Valid() {
		return fmt.Errorf("cassandra: presence: %w", presence.ErrInvalidVisibility)
	}
	err := p.s.query(ctx, cqlSetPrivacy, int8(pv.LastSeen), int8(pv.Online), p.s.ns, []byte(user)).Exec()
	return p.s.wrap("presence: save privacy", err)
}

// AddContacts adds to user's set of contacts in one write. Safe for
// concurrent use.
func (p *PresenceStore) AddContacts(ctx context.Context, user string, contacts []string) error {
	return p.contacts(ctx, cqlAddContacts, "add contacts", user, contacts)
}

// RemoveContacts removes from user's set of contacts in one write. Safe
// for concurrent use.
func (p *PresenceStore) RemoveContacts(ctx context.Context, user string, contacts []string) error {
	return p.contacts(ctx, cqlDelContacts, "remove contacts", user, contacts)
}

func (p *PresenceStore) contacts(ctx context.Context, cql, op, user string, contacts []string) error {
	if err := p.begin(ctx, append([]string{user}, contacts...)...); err != nil {
		return err
	}
	if len(contacts) == 0 {
		return nil
	}
	set := make([][]byte, len(contacts))
	for i, c := range contacts {
		set[i] = []byte(c)
	}
	return p.s.wrap("presence: "+op, p.s.query(ctx, cql, set, p.s.ns, []byte(user)).Exec())
}

// SaveLastSeen writes each user's last seen, one statement per user (each
// a different partition), in parallel. Every user is checked before any
// is written. Safe for concurrent use.
func (p *PresenceStore) SaveLastSeen(ctx context.Context, seen []presence.Seen) error {
	users := make([]string, len(seen))
	for i, x := range seen {
		users[i] = x.User
	}
	if err := p.begin(ctx, users...); err != nil {
		return err
	}
	ns := p.s.ns
	err := runAll(len(seen), func(i int) error {
		return p.s.query(ctx, cqlSetLastSeen, seen[i].LastSeen, ns, []byte(seen[i].User)).Exec()
	})
	return p.s.wrap("presence: save last seen", err)
}
