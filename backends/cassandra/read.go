package cassandra

import (
	"context"
	"errors"
	"sync"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/switchboard/switchboard/chat"
)

const (
	cqlGetHead    = `SELECT seq FROM heads WHERE ns = ? AND uid = ?`
	cqlGetMsg     = `SELECT from_user, to_user, client_id, ts, seq, status FROM messages WHERE ns = ? AND id = ?`
	cqlGetClient  = `SELECT id, to_user, ts, seq, status FROM client_ids WHERE ns = ? AND from_user = ? AND client_id = ?`
	cqlListClient = `SELECT client_id FROM client_ids WHERE ns = ? AND from_user = ?`
	cqlGetEntryID = `SELECT msg_id FROM inbox WHERE ns = ? AND uid = ? AND bucket = ? AND seq = ?`
	cqlReadInbox  = `SELECT seq, frame, shared FROM inbox WHERE ns = ? AND uid = ? AND bucket = ? AND seq > ? AND seq <= ? LIMIT ?`
	cqlGetParts   = `SELECT k, data FROM shared_parts WHERE ns = ? AND k IN ?`
)

// LastSeq reads user's head: the highest seq Apply made visible, 0 for
// none. Heads are written by Apply after the entries and never deleted.
// Safe for concurrent use.
func (s *Store) LastSeq(ctx context.Context, user string) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	head, err := s.lastSeq(ctx, user)
	return head, s.wrap("last seq", err)
}

func (s *Store) lastSeq(ctx context.Context, user string) (uint64, error) {
	var seq int64
	err := s.query(ctx, cqlGetHead, s.ns, []byte(user)).Scan(&seq)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, nil
	}
	return uint64(seq), err
}

// Message reads the message with server id id. Safe for concurrent use.
func (s *Store) Message(ctx context.Context, id string) (chat.MessageMeta, bool, error) {
	if err := s.check(ctx); err != nil {
		return chat.MessageMeta{}, false, err
	}
	m := chat.MessageMeta{ID: id}
	var seq int64
	var status int8
	err := s.query(ctx, cqlGetMsg, s.ns, []byte(id)).Scan(&m.From, &m.To, &m.ClientID, &m.TS, &seq, &status)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.MessageMeta{}, false, nil
	}
	if err != nil {
		return chat.MessageMeta{}, false, s.wrap("message", err)
	}
	m.Seq, m.Status = uint64(seq), max(chat.Status(status), chat.StatusSent) // null: sent
	return m, true, nil
}

// MessageByClientID reads the client-id index of from, then checks that
// the message's inbox entry (To, Seq) is still that message's (for a
// message whose recipient's entry another partition writes, the entry is
// the sender's copy, chat.MessageMeta.EchoSeq, and To and Seq returned
// are the sender's and that copy's): if the
// entry holds another message (the message was written by a writer whose
// epoch lost, see "Fencing"), or holds it above To's head (its Apply
// failed before the head moved), the message is reported not found, so
// that a resend is taken as new. A message whose entry is gone (expired)
// is found. Safe for concurrent use.
func (s *Store) MessageByClientID(ctx context.Context, from, clientID string) (chat.MessageMeta, bool, error) {
	if err := s.check(ctx); err != nil {
		return chat.MessageMeta{}, false, err
	}
	m := chat.MessageMeta{From: from, ClientID: clientID}
	var seq int64
	var status int8
	err := s.query(ctx, cqlGetClient, s.ns, []byte(from), []byte(clientID)).Scan(&m.ID, &m.To, &m.TS, &seq, &status)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.MessageMeta{}, false, nil
	}
	if err != nil {
		return chat.MessageMeta{}, false, s.wrap("message by client id", err)
	}
	m.Seq, m.Status = uint64(seq), max(chat.Status(status), chat.StatusSent) // null: sent
	ok, err := s.entryIsMessage(ctx, m)
	if err != nil || !ok {
		return chat.MessageMeta{}, false, s.wrap("message by client id", err)
	}
	return m, true, nil
}

// entryIsMessage reports whether m's inbox entry is absent, or holds m at
// or below its inbox's head.
func (s *Store) entryIsMessage(ctx context.Context, m chat.MessageMeta) (bool, error) {
	var id []byte
	err := s.query(ctx, cqlGetEntryID, s.ns, []byte(m.To), int64(m.Seq>>bucketShift), int64(m.Seq)).Scan(&id)
	if errors.Is(err, gocql.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if string(id) != m.ID {
		return false, nil
	}
	head, err := s.lastSeq(ctx, m.To)
	return err == nil && m.Seq <= head, err
}

// ClientIDs lists the client ids indexed for from (chat.ClientIDLister):
// one partition of the client_ids table. Safe for concurrent use.
func (s *Store) ClientIDs(ctx context.Context, from string, fn func(clientID []byte)) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	it := s.query(ctx, cqlListClient, s.ns, []byte(from)).Iter()
	var id []byte
	for it.Scan(&id) {
		fn(id)
	}
	return s.wrap("client ids", it.Close())
}

// inboxRow is one entry read, before its shared part is appended.
type inboxRow struct {
	seq    uint64
	frame  []byte
	shared string
}

// partsPerRequest bounds the keys of one IN request for shared parts: the
// coordinator reads each key's partition, so larger requests are split and
// sent in parallel.
const partsPerRequest = 128

// readParts reads the shared parts named keys into parts.
func (s *Store) readParts(ctx context.Context, keys []string, parts map[string][]byte) error {
	var mu sync.Mutex
	n := (len(keys) + partsPerRequest - 1) / partsPerRequest
	return runAll(n, func(i int) error {
		chunk := keys[i*partsPerRequest : min(len(keys), (i+1)*partsPerRequest)]
		bkeys := make([][]byte, len(chunk))
		for j, k := range chunk {
			bkeys[j] = []byte(k)
		}
		it := s.query(ctx, cqlGetParts, s.ns, bkeys).Iter()
		var k, data []byte
		for it.Scan(&k, &data) {
			mu.Lock()
			parts[string(k)] = nonNil(data)
			mu.Unlock()
			k, data = nil, nil
		}
		return it.Close()
	})
}

// ReadInbox reads user's head, then the entries above after and at most
// the head, one inbox partition (1,024 seqs) at a time, with the shared
// parts they name in one request per partition. Reading no further than
// the head is what keeps readers from entries of a batch still being
// applied. Safe for concurrent use.
func (s *Store) ReadInbox(ctx context.Context, user string, after uint64, limit int,
	fn func(seq uint64, frame []byte) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	head, err := s.lastSeq(ctx, user)
	if err != nil {
		return s.wrap("read inbox: head", err)
	}
	var (
		rows  []inboxRow
		keys  []string
		parts = map[string][]byte{}
		buf   []byte
	)
	for limit > 0 && after < head {
		bucket := (after + 1) >> bucketShift
		hi := min(head, (bucket+1)<<bucketShift-1)
		rows, keys = rows[:0], keys[:0]
		clear(parts)
		want := min(limit, 1<<20)
		it := s.query(ctx, cqlReadInbox, s.ns, []byte(user), int64(bucket), int64(after), int64(hi), want).Iter()
		var r inboxRow
		var seq int64
		var shared []byte
		for it.Scan(&seq, &r.frame, &shared) {
			r.seq, r.shared = uint64(seq), string(shared)
			if r.shared != "" {
				if _, ok := parts[r.shared]; !ok {
					parts[r.shared] = nil
					keys = append(keys, r.shared)
				}
			}
			rows = append(rows, r)
			r, shared = inboxRow{}, nil
		}
		if err := it.Close(); err != nil {
			return s.wrap("read inbox", err)
		}
		if err := s.readParts(ctx, keys, parts); err != nil {
			return s.wrap("read inbox: shared parts", err)
		}
		if len(rows) == want {
			hi = rows[len(rows)-1].seq // the LIMIT stopped the read: go on from there
		}
		for _, r := range rows {
			frame := r.frame
			if r.shared != "" {
				tail := parts[r.shared]
				if tail == nil {
					continue // the part expired
				}
				buf = append(append(buf[:0], r.frame...), tail...)
				frame = buf
			}
			if err := fn(r.seq, frame); err != nil {
				return err
			}
			limit--
		}
		after = hi
	}
	return nil
}
