package disk

// Presence keys, in the same database as the chat keys (doc.go), in table p/:
//
//	p/<user>\x00c<contact>  → empty                                  one per contact
//	p/<user>\x00l           → last seen (u64, unix ms)               written by the flusher
//	p/<user>\x00p           → version (1), last seen, online visibility (one byte each)
//
// No other user's key starts with p/<user>\x00 (ids hold no NUL), so Load
// is one bounded scan of [p/<user>\x00, p/<user>\x01), which returns the
// contacts already sorted. Contacts are keys rather than one value so that
// adding or removing one writes one key, not a list of up to 10,000. The
// last seen is the u64 of the int64. Every write is one Pebble batch
// committed with Sync.

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/switchboard/switchboard/presence"
)

var _ presence.Store = (*PresenceStore)(nil)

// privacyVersion is the first byte of a p/<user>\x00p value.
const privacyVersion = 1

// PresenceStore is the durable presence.Store in a Store's database. All
// methods are safe for concurrent use; writes are durable (synced) when
// they return. It has no Close: closing the Store closes it, after which
// its methods return chat.ErrClosed.
type PresenceStore struct {
	s *Store
}

// Presence returns the presence.Store kept in s's database. Safe for
// concurrent use.
func (s *Store) Presence() *PresenceStore { return &PresenceStore{s: s} }

// Load reads user's record with one bounded scan. Safe for concurrent use.
func (p *PresenceStore) Load(ctx context.Context, user string) (presence.Record, bool, error) {
	var rec presence.Record
	if err := ctx.Err(); err != nil {
		return rec, false, err
	}
	if !validUser(user) {
		return rec, false, ErrInvalidUser
	}
	db, err := p.s.acquire()
	if err != nil {
		return rec, false, err
	}
	defer p.s.mu.RUnlock()

	lower := appendPresenceKey(nil, user, "")
	upper := append(lower[:len(lower)-1:len(lower)-1], 1)
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return rec, false, fmt.Errorf("disk: load presence: %w", err)
	}
	found := false
	for valid := it.First(); valid; valid = it.Next() {
		found = true
		field := it.Key()[len(lower):]
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return presence.Record{}, false, fmt.Errorf("disk: load presence: %w", err)
		}
		switch {
		case len(field) > 1 && field[0] == 'c':
			rec.Contacts = append(rec.Contacts, string(field[1:]))
		case string(field) == "l" && len(v) == 8:
			rec.LastSeen = int64(binary.BigEndian.Uint64(v))
		case string(field) == "p" && len(v) == 3 && v[0] == privacyVersion:
			rec.Privacy = presence.Privacy{LastSeen: presence.Visibility(v[1]), Online: presence.Visibility(v[2])}
			if !rec.Privacy.Valid() {
				err = ErrCorrupt
			}
		default:
			err = ErrCorrupt
		}
		if err != nil {
			it.Close()
			return presence.Record{}, false, fmt.Errorf("%w: presence key %q", err, it.Key())
		}
	}
	if err := it.Close(); err != nil {
		return presence.Record{}, false, fmt.Errorf("disk: load presence: %w", err)
	}
	return rec, found, nil
}

// SavePrivacy writes user's settings. Safe for concurrent use.
func (p *PresenceStore) SavePrivacy(ctx context.Context, user string, pr presence.Privacy) error {
	return p.write(ctx, user, nil, func(wb *pebble.Batch) {
		wb.Set(appendPresenceKey(nil, user, "p"), []byte{privacyVersion, byte(pr.LastSeen), byte(pr.Online)}, nil)
	})
}

// AddContacts writes one key per contact. Safe for concurrent use.
func (p *PresenceStore) AddContacts(ctx context.Context, user string, contacts []string) error {
	return p.write(ctx, user, contacts, func(wb *pebble.Batch) {
		var key []byte
		for _, c := range contacts {
			key = appendContactKey(key[:0], user, c)
			wb.Set(key, nil, nil)
		}
	})
}

// RemoveContacts deletes one key per contact. Safe for concurrent use.
func (p *PresenceStore) RemoveContacts(ctx context.Context, user string, contacts []string) error {
	return p.write(ctx, user, contacts, func(wb *pebble.Batch) {
		var key []byte
		for _, c := range contacts {
			key = appendContactKey(key[:0], user, c)
			wb.Delete(key, nil)
		}
	})
}

// SaveLastSeen writes every user's last seen in one batch. Safe for
// concurrent use.
func (p *PresenceStore) SaveLastSeen(ctx context.Context, seen []presence.Seen) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, x := range seen {
		if !validUser(x.User) {
			return fmt.Errorf("%w: %q", ErrInvalidUser, x.User)
		}
	}
	return p.commit(func(wb *pebble.Batch) {
		var key, val []byte
		for _, x := range seen {
			key = appendPresenceKey(key[:0], x.User, "l")
			val = binary.BigEndian.AppendUint64(val[:0], uint64(x.LastSeen))
			wb.Set(key, val, nil)
		}
	})
}

// write validates user and contacts, then commits fill's batch.
func (p *PresenceStore) write(ctx context.Context, user string, contacts []string, fill func(*pebble.Batch)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validUser(user) {
		return fmt.Errorf("%w: %q", ErrInvalidUser, user)
	}
	for _, c := range contacts {
		if !validUser(c) {
			return fmt.Errorf("%w: contact %q", ErrInvalidUser, c)
		}
	}
	return p.commit(fill)
}

func (p *PresenceStore) commit(fill func(*pebble.Batch)) error {
	db, err := p.s.acquire()
	if err != nil {
		return err
	}
	defer p.s.mu.RUnlock()
	wb := db.NewBatch()
	defer wb.Close()
	fill(wb) // Batch.Set and Delete copy key and value
	if wb.Empty() {
		return nil
	}
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("disk: presence: %w", err)
	}
	return nil
}

// appendPresenceKey appends p/<user>\x00<field>.
func appendPresenceKey(dst []byte, user, field string) []byte {
	dst = append(dst, "p/"...)
	dst = append(dst, user...)
	dst = append(dst, 0)
	return append(dst, field...)
}

func appendContactKey(dst []byte, user, contact string) []byte {
	return append(appendPresenceKey(dst, user, "c"), contact...)
}
