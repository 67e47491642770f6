package cassandra

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/switchboard/switchboard/chat"
)

// Items of a batches row: what one batch wrote, each a kind byte then
// uvarint-length strings and uvarint numbers.
const (
	itemEntries = 'e' // user, first seq, last seq
	itemPart    = 'p' // shared part key
	itemMessage = 'm' // id, from, client id ("" for none)
)

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// encodeItems lists what b writes that Expire deletes.
// parts are the keys of the shared parts it stored.
func encodeItems(b *chat.Batch, spans map[string]span, parts []string) []byte {
	var out []byte
	for u, sp := range spans {
		out = append(out, itemEntries)
		out = appendString(out, u)
		out = binary.AppendUvarint(out, sp.first)
		out = binary.AppendUvarint(out, sp.last)
	}
	for _, k := range parts {
		out = append(out, itemPart)
		out = appendString(out, k)
	}
	for i := range b.Messages {
		m := &b.Messages[i]
		out = append(out, itemMessage)
		out = appendString(out, m.ID)
		out = appendString(out, m.From)
		out = appendString(out, m.ClientID)
	}
	return nonNil(out)
}

var errCorruptItems = errors.New("cassandra: corrupt retention row")

// itemReader decodes items; the first error sticks, and makes the
// readers return zeros.
type itemReader struct {
	b   []byte
	err error
}

func (r *itemReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errCorruptItems, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *itemReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = errCorruptItems, nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

const (
	cqlDelEntries  = `DELETE FROM inbox WHERE ns = ? AND uid = ? AND bucket = ? AND seq >= ? AND seq <= ?`
	cqlDelPart     = `DELETE FROM shared_parts WHERE ns = ? AND k = ?`
	cqlDelMsg      = `DELETE FROM messages WHERE ns = ? AND id = ?`
	cqlDelClient   = `DELETE FROM client_ids WHERE ns = ? AND from_user = ? AND client_id = ?`
	cqlDelBatch    = `DELETE FROM batches WHERE ns = ? AND bucket = ? AND btime = ? AND id = ?`
	cqlDelBucket   = `DELETE FROM batch_buckets WHERE ns = ? AND day = ? AND bucket = ?`
	cqlGetCursor   = `SELECT pos FROM cursors WHERE ns = ? AND name = ?`
	cqlSetExpire   = `INSERT INTO cursors (ns, name, pos) VALUES (?, 'expire', ?)`
	cqlListBuckets = `SELECT bucket FROM batch_buckets WHERE ns = ? AND day = ? AND bucket >= ? AND bucket <= ?`
	cqlListBatches = `SELECT btime, id, items FROM batches WHERE ns = ? AND bucket = ? AND btime < ?`
)

// deleteStmts turns a batches row's items into the deletes that undo it.
func (s *Store) deleteStmts(items []byte) ([]stmt, error) {
	var out []stmt
	r := itemReader{b: items}
	for len(r.b) > 0 {
		kind := r.b[0]
		r.b = r.b[1:]
		switch kind {
		case itemEntries:
			u, first, last := r.bytes(), r.uvarint(), r.uvarint()
			if r.err != nil || first > last || last > math.MaxInt64 {
				return nil, errCorruptItems
			}
			// One range tombstone per inbox partition the span covers.
			for bk := first >> bucketShift; bk <= last>>bucketShift; bk++ {
				lo, hi := max(first, bk<<bucketShift), min(last, (bk+1)<<bucketShift-1)
				out = append(out, newStmt(cqlDelEntries, s.ns, u, int64(bk), int64(lo), int64(hi)))
			}
		case itemPart:
			out = append(out, newStmt(cqlDelPart, s.ns, r.bytes()))
		case itemMessage:
			id, from, cid := r.bytes(), r.bytes(), r.bytes()
			out = append(out, newStmt(cqlDelMsg, s.ns, id))
			if len(cid) > 0 {
				out = append(out, newStmt(cqlDelClient, s.ns, from, cid))
			}
		default:
			return nil, errCorruptItems
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// cursor reads a named position; ok is false when there is none.
func (s *Store) cursor(ctx context.Context, name string) (pos int64, ok bool, err error) {
	err = s.query(ctx, cqlGetCursor, s.regNS, name).Scan(&pos)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, false, nil
	}
	return pos, err == nil, err
}

// Expire deletes what the batches with Time before before wrote, found
// through the retention index, and returns how many batches it removed
// (see "Retention" in the package documentation). For each such batch it
// deletes the inbox entries (one range tombstone per inbox partition),
// shared parts, messages and client ids, then the batch's row, so an
// Expire that fails part way is finished by the next. Heads are never
// deleted: LastSeq is unaffected. Deletes carry the Store's write
// timestamps, so it needs a writer epoch like Apply. Safe for concurrent
// use, though two concurrent Expires may both count a batch.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	if s.WriterEpoch() == 0 {
		return 0, ErrNoWriterEpoch
	}
	start, ok, err := s.cursor(ctx, "expire")
	if err == nil && !ok {
		var first int64
		first, ok, err = s.cursor(ctx, "first")
		start = math.MaxInt64 - first
	}
	if err != nil {
		return 0, s.wrap("expire: cursor", err)
	}
	if !ok {
		return 0, nil // no batch was ever written
	}
	cut := before.UnixNano()
	cutBucket := retentionBucketOf(cut)
	n := 0
	for day := dayOf(start); day <= dayOf(cutBucket); day++ {
		var buckets []int64
		it := s.query(ctx, cqlListBuckets, s.regNS, day, start, cutBucket).Iter()
		var bk int64
		for it.Scan(&bk) {
			buckets = append(buckets, bk)
		}
		if err := it.Close(); err != nil {
			return n, s.wrap("expire: buckets", err)
		}
		for _, bk := range buckets {
			m, err := s.expireBucket(ctx, bk, cut)
			n += m
			if err != nil {
				return n, err
			}
			if bk < cutBucket { // every batch in it was before the cut
				if err := s.write(ctx, newStmt(cqlDelBucket, s.regNS, day, bk)); err != nil {
					return n, s.wrap("expire: bucket", err)
				}
			}
		}
	}
	if cutBucket > start {
		if err := s.write(ctx, newStmt(cqlSetExpire, s.regNS, cutBucket)); err != nil {
			return n, s.wrap("expire: cursor", err)
		}
	}
	return n, nil
}

// write runs one statement with the next write timestamp.
func (s *Store) write(ctx context.Context, st stmt) error {
	ts, err := s.nextTS()
	if err != nil {
		return err
	}
	return s.exec(ctx, st, ts)
}

// expireBucket expires the batches of one minute bucket with a time before
// cut.
func (s *Store) expireBucket(ctx context.Context, bucket, cut int64) (int, error) {
	type row struct {
		btime, id int64
		items     []byte
	}
	var rows []row
	it := s.query(ctx, cqlListBatches, s.regNS, bucket, cut).Iter()
	var r row
	for it.Scan(&r.btime, &r.id, &r.items) {
		rows = append(rows, r)
		r = row{}
	}
	if err := it.Close(); err != nil {
		return 0, s.wrap("expire: batches", err)
	}
	n := 0
	for _, r := range rows {
		dels, err := s.deleteStmts(r.items)
		if err != nil {
			return n, fmt.Errorf("%w (bucket %d, time %d, id %d)", err, bucket, r.btime, r.id)
		}
		if err := runAll(len(dels), func(i int) error { return s.write(ctx, dels[i]) }); err != nil {
			return n, s.wrap("expire: delete", err)
		}
		if err := s.write(ctx, newStmt(cqlDelBatch, s.regNS, bucket, r.btime, r.id)); err != nil {
			return n, s.wrap("expire: batch row", err)
		}
		n++
	}
	return n, nil
}
