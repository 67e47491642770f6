package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchboard/switchboard/chat"
)

var _ chat.Store = (*Store)(nil)

// ErrSeq is returned by Store.Apply for an entry whose seq does not
// continue its user's inbox (see chat.Batch); the batch is not applied.
var ErrSeq = errors.New("memory: entry seq does not continue the inbox")

// ErrNoTime is returned by Store.Apply for a non-empty batch with a zero
// Time, which would make it expire at once.
var ErrNoTime = errors.New("memory: batch has no Time")

// ErrNoShared is returned by Store.Apply for an entry whose Shared key
// names no part of its batch.
var ErrNoShared = errors.New("memory: entry names a shared part its batch does not have")

// Store is an in-memory chat.Store. It is not durable: it exists for tests
// and benchmarks. It is stricter than the contract requires: Apply rejects
// entries that do not continue their user's LastSeq exactly.
//
// Readers do not hold the lock while they call back: inbox slices are only
// ever appended to or replaced, so a reader keeps a consistent snapshot.
type Store struct {
	mu       sync.RWMutex
	inboxes  map[string]*inbox
	messages map[string]chat.MessageMeta
	byClient map[clientKey]string // (from, client id) → message id
	state    map[string][]byte
	batches  []*batchRecord // in Apply order
}

type inbox struct {
	head    uint64  // highest seq ever stored
	entries []entry // increasing seq; expiry replaces the slice
}

type entry struct {
	seq    uint64
	frame  []byte // owned, never modified
	shared []byte // appended to frame when read; shared with other entries
}

type clientKey struct{ from, clientID string }

// batchRecord is what Expire removes for one applied batch.
type batchRecord struct {
	time      time.Time
	runs      []run // one per user: its entries in this batch
	ids       []string
	clientIDs []clientKey
}

type run struct {
	user        string
	first, last uint64
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{
		inboxes:  make(map[string]*inbox),
		messages: make(map[string]chat.MessageMeta),
		byClient: make(map[clientKey]string),
		state:    make(map[string][]byte),
	}
}

// Apply stores b atomically: it is validated in full before anything
// changes. Frames are copied. Safe for concurrent use.
func (s *Store) Apply(ctx context.Context, b *chat.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	if b.Time.IsZero() {
		return ErrNoTime
	}
	rec := &batchRecord{time: b.Time}
	var frames int
	for _, e := range b.Entries {
		frames += len(e.Frame)
	}
	shared := make(map[string][]byte, len(b.Shared))
	for _, p := range b.Shared {
		frames += len(p.Data)
	}
	arena := make([]byte, 0, frames) // one allocation for the batch's frames
	for _, p := range b.Shared {
		start := len(arena)
		arena = append(arena, p.Data...)
		shared[p.Key] = arena[start:len(arena):len(arena)]
	}
	for _, e := range b.Entries {
		if _, ok := shared[e.Shared]; e.Shared != "" && !ok {
			return fmt.Errorf("%w: %q", ErrNoShared, e.Shared)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	// Validate: each user's entries continue its head without a gap.
	runs := make(map[string]int, 8) // user → index in rec.runs
	for _, e := range b.Entries {
		i, ok := runs[e.User]
		if !ok {
			var head uint64
			if ib := s.inboxes[e.User]; ib != nil {
				head = ib.head
			}
			i = len(rec.runs)
			runs[e.User] = i
			rec.runs = append(rec.runs, run{user: e.User, first: head + 1, last: head})
		}
		if e.Seq != rec.runs[i].last+1 {
			return fmt.Errorf("%w: user %q seq %d after %d", ErrSeq, e.User, e.Seq, rec.runs[i].last)
		}
		rec.runs[i].last = e.Seq
	}

	for _, e := range b.Entries {
		ib := s.inboxes[e.User]
		if ib == nil {
			ib = &inbox{}
			s.inboxes[e.User] = ib
		}
		start := len(arena)
		arena = append(arena, e.Frame...)
		ib.entries = append(ib.entries, entry{seq: e.Seq, frame: arena[start:len(arena):len(arena)],
			shared: shared[e.Shared]})
		ib.head = e.Seq
	}
	for _, m := range b.Messages {
		s.messages[m.ID] = m
		rec.ids = append(rec.ids, m.ID)
		if m.ClientID != "" {
			k := clientKey{m.From, m.ClientID}
			s.byClient[k] = m.ID
			rec.clientIDs = append(rec.clientIDs, k)
		}
	}
	for _, kv := range b.State {
		if kv.Value == nil {
			delete(s.state, kv.Key)
		} else {
			s.state[kv.Key] = slices.Clone(kv.Value)
		}
	}
	s.batches = append(s.batches, rec)
	return nil
}

// GetState calls fn with the value of key, if any. Safe for concurrent use.
func (s *Store) GetState(ctx context.Context, key string, fn func(value []byte)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.RLock()
	v, ok := s.state[key]
	s.mu.RUnlock()
	if ok {
		fn(v) // values are replaced, never modified
	}
	return ok, nil
}

// ScanState calls fn for the state records under prefix, in key order,
// without holding the store's lock. Safe for concurrent use.
func (s *Store) ScanState(ctx context.Context, prefix string, fn func(key, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type kv struct {
		k string
		v []byte
	}
	var found []kv
	s.mu.RLock()
	for k, v := range s.state {
		if strings.HasPrefix(k, prefix) {
			found = append(found, kv{k, v})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(found, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	for _, x := range found {
		if err := fn([]byte(x.k), x.v); err != nil {
			return err
		}
	}
	return nil
}

// LastSeq returns the highest seq ever stored for user, or 0. Safe for
// concurrent use.
func (s *Store) LastSeq(ctx context.Context, user string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ib := s.inboxes[user]; ib != nil {
		return ib.head, nil
	}
	return 0, nil
}

// Message returns the message with server id id. Safe for concurrent use.
func (s *Store) Message(ctx context.Context, id string) (chat.MessageMeta, bool, error) {
	if err := ctx.Err(); err != nil {
		return chat.MessageMeta{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.messages[id]
	return m, ok, nil
}

// MessageByClientID returns the message that from sent with clientID.
// Safe for concurrent use.
func (s *Store) MessageByClientID(ctx context.Context, from, clientID string) (chat.MessageMeta, bool, error) {
	if err := ctx.Err(); err != nil {
		return chat.MessageMeta{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byClient[clientKey{from, clientID}]
	if !ok {
		return chat.MessageMeta{}, false, nil
	}
	m, ok := s.messages[id]
	return m, ok, nil
}

// ReadInbox calls fn for up to limit entries of user with seq > after, in
// seq order, without holding the store's lock: fn may call the store.
// Safe for concurrent use.
func (s *Store) ReadInbox(ctx context.Context, user string, after uint64, limit int,
	fn func(seq uint64, frame []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var entries []entry
	s.mu.RLock()
	if ib := s.inboxes[user]; ib != nil {
		entries = ib.entries
	}
	s.mu.RUnlock()

	i := sort.Search(len(entries), func(i int) bool { return entries[i].seq > after })
	var buf []byte
	for _, e := range entries[i:min(len(entries), i+max(limit, 0))] {
		frame := e.frame
		if e.shared != nil {
			buf = append(append(buf[:0], e.frame...), e.shared...)
			frame = buf
		}
		if err := fn(e.seq, frame); err != nil {
			return err
		}
	}
	return nil
}

// Expire removes the batches whose Time is before before and what they
// wrote. A message or client id written again by a later batch is removed
// with the first batch that wrote it. Safe for concurrent use.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	kept := s.batches[:0]
	for _, rec := range s.batches {
		if !rec.time.Before(before) {
			kept = append(kept, rec)
			continue
		}
		n++
		for _, r := range rec.runs {
			ib := s.inboxes[r.user]
			// Build a new slice: readers may hold the old one.
			ib.entries = slices.DeleteFunc(slices.Clone(ib.entries), func(e entry) bool {
				return e.seq >= r.first && e.seq <= r.last
			})
		}
		for _, id := range rec.ids {
			delete(s.messages, id)
		}
		for _, k := range rec.clientIDs {
			delete(s.byClient, k)
		}
	}
	clear(s.batches[len(kept):])
	s.batches = kept
	return n, nil
}
