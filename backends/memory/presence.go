package memory

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/switchboard/switchboard/presence"
)

var _ presence.Store = (*PresenceStore)(nil)

// ErrInvalidUser is returned by PresenceStore for a user or contact id that
// is empty or holds a NUL byte.
var ErrInvalidUser = errors.New("memory: user id is empty or holds a NUL byte")

// PresenceStore is an in-memory presence.Store. It is not durable: it
// exists for tests and benchmarks. All methods are safe for concurrent use.
type PresenceStore struct {
	mu    sync.RWMutex
	users map[string]*presenceRecord
}

type presenceRecord struct {
	privacy  presence.Privacy
	contacts map[string]struct{}
	lastSeen int64
}

// NewPresenceStore returns an empty PresenceStore.
func NewPresenceStore() *PresenceStore {
	return &PresenceStore{users: make(map[string]*presenceRecord)}
}

// Load returns a copy of user's record. Safe for concurrent use.
func (s *PresenceStore) Load(ctx context.Context, user string) (presence.Record, bool, error) {
	if err := checkPresence(ctx, user, nil); err != nil {
		return presence.Record{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.users[user]
	if r == nil {
		return presence.Record{}, false, nil
	}
	rec := presence.Record{Privacy: r.privacy, LastSeen: r.lastSeen}
	if len(r.contacts) > 0 {
		rec.Contacts = slices.Sorted(maps.Keys(r.contacts))
	}
	return rec, true, nil
}

// SavePrivacy replaces user's settings. Safe for concurrent use.
func (s *PresenceStore) SavePrivacy(ctx context.Context, user string, p presence.Privacy) error {
	if err := checkPresence(ctx, user, nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(user).privacy = p
	return nil
}

// AddContacts adds contacts to user's. Safe for concurrent use.
func (s *PresenceStore) AddContacts(ctx context.Context, user string, contacts []string) error {
	if err := checkPresence(ctx, user, contacts); err != nil {
		return err
	}
	if len(contacts) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.record(user)
	if r.contacts == nil {
		r.contacts = make(map[string]struct{}, len(contacts))
	}
	for _, c := range contacts {
		r.contacts[strings.Clone(c)] = struct{}{}
	}
	return nil
}

// RemoveContacts removes contacts from user's. Safe for concurrent use.
func (s *PresenceStore) RemoveContacts(ctx context.Context, user string, contacts []string) error {
	if err := checkPresence(ctx, user, contacts); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.users[user]; r != nil {
		for _, c := range contacts {
			delete(r.contacts, c)
		}
	}
	return nil
}

// SaveLastSeen replaces the last seen of each user in seen, all at once.
// Safe for concurrent use.
func (s *PresenceStore) SaveLastSeen(ctx context.Context, seen []presence.Seen) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, x := range seen {
		if !validPresenceUser(x.User) {
			return ErrInvalidUser
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range seen {
		s.record(x.User).lastSeen = x.LastSeen
	}
	return nil
}

// record returns user's record, creating it. s.mu must be held.
func (s *PresenceStore) record(user string) *presenceRecord {
	r := s.users[user]
	if r == nil {
		r = &presenceRecord{}
		s.users[strings.Clone(user)] = r
	}
	return r
}

func checkPresence(ctx context.Context, user string, contacts []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validPresenceUser(user) {
		return ErrInvalidUser
	}
	for _, c := range contacts {
		if !validPresenceUser(c) {
			return ErrInvalidUser
		}
	}
	return nil
}

func validPresenceUser(u string) bool {
	return u != "" && strings.IndexByte(u, 0) < 0
}
