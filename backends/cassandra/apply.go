package cassandra

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/switchboard/switchboard/chat"
)

// bucketShift sets the inbox partition: (user, seq >> bucketShift), 1,024
// entries.
const bucketShift = 10

// retentionBucket is the width of a batches partition.
const retentionBucket = time.Minute

const (
	cqlInsEntry  = `INSERT INTO inbox (ns, uid, bucket, seq, frame, shared, msg_id) VALUES (?, ?, ?, ?, ?, ?, ?)`
	cqlInsPart   = `INSERT INTO shared_parts (ns, k, data) VALUES (?, ?, ?)`
	cqlInsMsg    = `INSERT INTO messages (ns, id, from_user, to_user, client_id, ts, seq, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	cqlInsClient = `INSERT INTO client_ids (ns, from_user, client_id, id, to_user, ts, seq, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	// A new message leaves its status null (read as sent): the status is
	// written only by receipts, so that it has one writer even when the
	// message was stored by another partition's sequencer, whose epoch,
	// in the write timestamp, may be larger (Partition).
	cqlNewMsg    = `INSERT INTO messages (ns, id, from_user, to_user, client_id, ts, seq) VALUES (?, ?, ?, ?, ?, ?, ?)`
	cqlNewClient = `INSERT INTO client_ids (ns, from_user, client_id, id, to_user, ts, seq) VALUES (?, ?, ?, ?, ?, ?, ?)`
	cqlInsState  = `INSERT INTO state (ns, part, k, value) VALUES (?, ?, ?, ?)`
	cqlDelState  = `DELETE FROM state WHERE ns = ? AND part = ? AND k = ?`
	cqlInsHead   = `INSERT INTO heads (ns, uid, seq) VALUES (?, ?, ?)`
	cqlInsBatch  = `INSERT INTO batches (ns, bucket, btime, id, items) VALUES (?, ?, ?, ?, ?)`
	cqlInsBucket = `INSERT INTO batch_buckets (ns, day, bucket) VALUES (?, ?, ?)`
	cqlInsFirst  = `INSERT INTO cursors (ns, name, pos) VALUES (?, 'first', ?) USING TIMESTAMP 1`
)

// userSeq names an inbox entry.
type userSeq struct {
	user string
	seq  uint64
}

// partKey names an inbox partition.
type partKey struct {
	user   string
	bucket int64
}

// span is the seqs a batch writes in one user's inbox.
type span struct{ first, last uint64 }

// Apply writes b in two phases, the second started once the first has
// succeeded at the configured consistency (see "Atomicity" in the package
// documentation):
//
//  1. in parallel: the inbox entries, the shared parts named by more than
//     Config.InlineShared entries (the others are copied into their
//     entries), the batch's retention row, the messages and their
//     client-id index (one request per partition, or multi-partition
//     UNLOGGED batches with Config.BatchEntries); and the state records in
//     LOGGED batches of at most Config.BatchBytes. Readers of an inbox
//     stop at its head, and MessageByClientID at the message's entry;
//  2. the users' heads, in LOGGED batches: this makes the entries visible.
//
// Every statement carries the Store's next write timestamp. A batch that
// breaks the chat.Batch contract is refused (ErrInvalidBatch) before
// anything is written. Safe for concurrent use.
func (s *Store) Apply(ctx context.Context, b *chat.Batch) error {
	ch := make(chan error, 1)
	s.ApplyAsync(ctx, b, func(err error) { ch <- err })
	return <-ch
}

// ApplyAsync starts Apply of b and returns; done gets its result
// (chat.PipelinedStore). Batches are chained in the order of the calls:
// the first phase of a batch starts once the first phase of the one
// before has finished (of two writes of one cell, a message's status,
// the later batch's carries the larger timestamp), and its heads once
// the batch before has returned; so a batch's first phase overlaps the
// heads of the one before, and its heads are never visible before the
// earlier batch's. When a batch fails, those started while it was in
// flight (and those started while these were) fail with
// chat.ErrEarlierBatch, their heads unwritten; one started after it
// returned does not depend on it.
func (s *Store) ApplyAsync(ctx context.Context, b *chat.Batch, done func(error)) {
	s.chainMu.Lock()
	prev := s.chainTail
	if prev != nil {
		select {
		case <-prev.done: // returned before this batch began: no tie
			prev = nil
		default:
		}
	}
	me := &applyLink{wrote: make(chan struct{}), done: make(chan struct{})}
	s.chainTail = me
	s.chainMu.Unlock()
	go func() {
		err := s.applyLinked(ctx, b, prev, me)
		me.err = err
		close(me.done)
		done(err)
	}()
}

// applyLink is one batch in ApplyAsync's chain.
type applyLink struct {
	wrote    chan struct{} // closed when the first phase is over (writeErr set)
	writeErr error
	done     chan struct{} // closed when Apply is over (err set)
	err      error
}

func (s *Store) applyLinked(ctx context.Context, b *chat.Batch, prev, me *applyLink) error {
	var spans map[string]span
	var err error
	if prev != nil {
		<-prev.wrote
		if prev.writeErr != nil {
			err = chat.ErrEarlierBatch
		}
	}
	if err == nil {
		spans, err = s.applyEntries(ctx, b)
	}
	me.writeErr = err
	close(me.wrote)
	if prev != nil {
		<-prev.done
		if err == nil && prev.err != nil {
			err = chat.ErrEarlierBatch
		}
	}
	if err != nil {
		return err
	}
	return s.applyHeads(ctx, spans)
}

// applyEntries is Apply's first phase; it returns the seqs b writes per
// user, for the heads.
func (s *Store) applyEntries(ctx context.Context, b *chat.Batch) (map[string]span, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if b.Empty() {
		return nil, nil
	}
	spans, err := validate(b)
	if err != nil {
		return nil, err
	}
	if s.WriterEpoch() == 0 {
		return nil, ErrNoWriterEpoch
	}

	// Phase 1: entries, shared parts, retention.
	msgAt := make(map[userSeq]string, len(b.Messages))
	for i := range b.Messages {
		m := &b.Messages[i]
		msgAt[userSeq{m.To, m.Seq}] = m.ID
		if m.Seq == 0 && m.EchoSeq != 0 {
			msgAt[userSeq{m.From, m.EchoSeq}] = m.ID
		}
	}
	// A part named by few entries (a one-to-one message: the recipient's
	// and the sender's own copy) is copied into them, so that reading them
	// costs no second request; one named by more (a group message) is
	// stored once.
	refs := make(map[string]int, len(b.Shared))
	for i := range b.Entries {
		if k := b.Entries[i].Shared; k != "" {
			refs[k]++
		}
	}
	inline := func(key string) bool { return refs[key] <= s.cfg.InlineShared }
	tails := make(map[string][]byte, len(b.Shared))
	arenaSize := 0
	for _, p := range b.Shared {
		tails[p.Key] = p.Data
		if inline(p.Key) {
			arenaSize += refs[p.Key] * len(p.Data)
		}
	}
	var arena []byte
	if arenaSize > 0 {
		for i := range b.Entries {
			if k := b.Entries[i].Shared; k != "" && inline(k) {
				arenaSize += len(b.Entries[i].Frame)
			}
		}
		arena = make([]byte, 0, arenaSize)
	}

	var groups [][]stmt
	where := make(map[partKey]int, len(spans))
	for i := range b.Entries {
		e := &b.Entries[i]
		pk := partKey{e.User, int64(e.Seq >> bucketShift)}
		g, ok := where[pk]
		if !ok {
			g = len(groups)
			where[pk] = g
			groups = append(groups, nil)
		}
		var shared, msgID any = gocql.UnsetValue, gocql.UnsetValue
		frame := nonNil(e.Frame)
		switch {
		case e.Shared == "":
		case inline(e.Shared):
			start := len(arena)
			arena = append(append(arena, e.Frame...), tails[e.Shared]...)
			frame = arena[start:len(arena):len(arena)]
		default:
			shared = []byte(e.Shared)
		}
		if id, ok := msgAt[userSeq{e.User, e.Seq}]; ok {
			msgID = []byte(id)
		}
		groups[g] = append(groups[g], newStmt(cqlInsEntry, s.ns, []byte(e.User), pk.bucket, int64(e.Seq), frame, shared, msgID))
	}
	var stored []string
	for _, p := range b.Shared {
		if refs[p.Key] > 0 && !inline(p.Key) {
			stored = append(stored, p.Key)
			groups = append(groups, []stmt{newStmt(cqlInsPart, s.ns, []byte(p.Key), nonNil(p.Data))})
		}
	}
	retention, bucket := s.retentionStmts(b, spans, stored)
	groups = append(groups, retention...)

	// The messages and their client ids: each its own partition (the
	// client ids of one sender share one). Of two writes of one key in b
	// only the last is sent: in one batch both would carry the same
	// timestamp, and Cassandra would keep the larger value, not the later.
	lastMsg := make(map[string]int, len(b.Messages))
	for i := range b.Messages {
		lastMsg[b.Messages[i].ID] = i
	}
	bySender := make(map[string]int)
	for i := range b.Messages {
		m := &b.Messages[i]
		if lastMsg[m.ID] != i {
			continue
		}
		if m.Status <= chat.StatusSent {
			groups = append(groups, []stmt{newStmt(cqlNewMsg, s.ns, []byte(m.ID), []byte(m.From), []byte(m.To), []byte(m.ClientID), m.TS, int64(m.Seq))})
		} else {
			groups = append(groups, []stmt{newStmt(cqlInsMsg, s.ns, []byte(m.ID), []byte(m.From), []byte(m.To), []byte(m.ClientID), m.TS, int64(m.Seq), int8(m.Status))})
		}
		if m.ClientID == "" {
			continue
		}
		g, ok := bySender[m.From]
		if !ok {
			g = len(groups)
			bySender[m.From] = g
			groups = append(groups, nil)
		}
		if m.Status <= chat.StatusSent {
			// The index names the entry that commits the message
			// (MessageByClientID checks it): the recipient's, or for a
			// message another partition delivers, the sender's copy.
			entryUser, entrySeq := m.To, m.Seq
			if m.Seq == 0 && m.EchoSeq != 0 {
				entryUser, entrySeq = m.From, m.EchoSeq
			}
			groups[g] = append(groups[g], newStmt(cqlNewClient, s.ns, []byte(m.From), []byte(m.ClientID), []byte(m.ID), []byte(entryUser), m.TS, int64(entrySeq)))
		} else {
			groups[g] = append(groups[g], newStmt(cqlInsClient, s.ns, []byte(m.From), []byte(m.ClientID), []byte(m.ID), []byte(m.To), m.TS, int64(m.Seq), int8(m.Status)))
		}
	}
	if s.cfg.BatchEntries {
		var flat []stmt
		for _, g := range groups {
			flat = append(flat, g...)
		}
		groups = chunks(flat, s.cfg.BatchBytes)
	}
	// The state records go in LOGGED batches (usually one): a command's
	// records (a group and its members' watermarks) all or none.
	lastKey := make(map[string]int, len(b.State))
	for i, kv := range b.State {
		lastKey[kv.Key] = i
	}
	var state []stmt
	for i, kv := range b.State {
		if lastKey[kv.Key] != i {
			continue
		}
		part, key := statePart(kv.Key)
		if kv.Value == nil {
			state = append(state, newStmt(cqlDelState, s.ns, []byte(part), []byte(key)))
		} else {
			state = append(state, newStmt(cqlInsState, s.ns, []byte(part), []byte(key), nonNil(kv.Value)))
		}
	}
	unlogged := len(groups)
	groups = append(groups, chunks(state, s.cfg.BatchBytes)...)
	err = runAll(len(groups), func(i int) error {
		if i >= unlogged {
			return s.execBatch(ctx, gocql.LoggedBatch, groups[i])
		}
		// By default one partition's rows go in one UNLOGGED batch: a
		// single-partition batch is one mutation, applied atomically
		// and exempt from the batch size thresholds.
		return s.execBatch(ctx, gocql.UnloggedBatch, groups[i])
	})
	if err != nil {
		return nil, s.wrap("apply: entries, messages and state", err)
	}
	s.noteFirst(bucket)
	return spans, nil
}

// applyHeads is Apply's second phase: the heads of spans, which make the
// entries visible.
func (s *Store) applyHeads(ctx context.Context, spans map[string]span) error {
	if len(spans) == 0 {
		return nil
	}
	heads := make([]stmt, 0, len(spans))
	for u, sp := range spans {
		heads = append(heads, newStmt(cqlInsHead, s.ns, []byte(u), int64(sp.last)))
	}
	hc := chunks(heads, s.cfg.BatchBytes)
	if err := runAll(len(hc), func(i int) error { return s.execBatch(ctx, gocql.LoggedBatch, hc[i]) }); err != nil {
		return s.wrap("apply: heads", err)
	}
	return nil
}

// validate checks b against the chat.Batch contract and returns the seqs
// it writes per user.
func validate(b *chat.Batch) (map[string]span, error) {
	if b.Time.IsZero() {
		return nil, fmt.Errorf("%w: Time is not set", ErrInvalidBatch)
	}
	parts := make(map[string]bool, len(b.Shared))
	for _, p := range b.Shared {
		if p.Key == "" {
			return nil, fmt.Errorf("%w: a shared part has no key", ErrInvalidBatch)
		}
		parts[p.Key] = true
	}
	spans := make(map[string]span)
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.User == "" || e.Seq == 0 || e.Seq > math.MaxInt64 {
			return nil, fmt.Errorf("%w: entry %q seq %d", ErrInvalidBatch, e.User, e.Seq)
		}
		if e.Shared != "" && !parts[e.Shared] {
			return nil, fmt.Errorf("%w: entry (%q, %d) names shared part %q, not in the batch", ErrInvalidBatch, e.User, e.Seq, e.Shared)
		}
		sp, ok := spans[e.User]
		switch {
		case !ok:
			sp = span{e.Seq, e.Seq}
		case e.Seq != sp.last+1:
			return nil, fmt.Errorf("%w: entry (%q, %d) after seq %d", ErrInvalidBatch, e.User, e.Seq, sp.last)
		default:
			sp.last = e.Seq
		}
		spans[e.User] = sp
	}
	for i := range b.Messages {
		m := &b.Messages[i]
		if m.ID == "" || m.Seq > math.MaxInt64 {
			return nil, fmt.Errorf("%w: message %q", ErrInvalidBatch, m.ID)
		}
	}
	return spans, nil
}

// retentionStmts returns the requests that index b for Expire: its row in
// the batches table (what it wrote), its minute bucket in batch_buckets,
// and, when its bucket is below every bucket this Store has registered,
// the "first" cursor (noteFirst records it once they succeeded).
func (s *Store) retentionStmts(b *chat.Batch, spans map[string]span, parts []string) (_ [][]stmt, bucket int64) {
	bt := b.Time.UnixNano()
	bucket = retentionBucketOf(bt)
	out := [][]stmt{
		{newStmt(cqlInsBatch, s.regNS, bucket, bt, int64(rand.Uint64()), encodeItems(b, spans, parts))},
		{newStmt(cqlInsBucket, s.regNS, dayOf(bucket), bucket)},
	}
	s.firstMu.Lock()
	defer s.firstMu.Unlock()
	if s.firstReg == 0 || bucket < s.firstReg {
		// A min-register: every Store writes it at timestamp 1, and of
		// cells with equal timestamps Cassandra keeps the larger value, so
		// MaxInt64-bucket keeps the lowest bucket ever written.
		out = append(out, []stmt{newStmt(cqlInsFirst, s.regNS, math.MaxInt64-bucket)})
	}
	return out, bucket
}

// noteFirst records that bucket is registered in the "first" cursor.
func (s *Store) noteFirst(bucket int64) {
	s.firstMu.Lock()
	defer s.firstMu.Unlock()
	if s.firstReg == 0 || bucket < s.firstReg {
		s.firstReg = bucket
	}
}

// retentionBucketOf is the minute bucket of a time in unix ns, at least 1
// (times before 1970 share bucket 1).
func retentionBucketOf(ns int64) int64 {
	return max(ns/int64(retentionBucket), 1)
}

// dayOf is the batch_buckets partition of a bucket.
func dayOf(bucket int64) int64 { return bucket / (24 * 60) }

// nonNil returns b, or an empty slice for nil: a nil blob is a null (a
// tombstone), an empty one is a value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
