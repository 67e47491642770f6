package cassandra

import (
	"context"
	"errors"
	"slices"
	"strings"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// scannedTables are the state tables (key prefixes up to their '/') that
// the chat Service scans as a whole, in key order: each is one partition
// (see "State" in the package documentation). Changing this set changes
// where existing keys live: it needs a migration.
var scannedTables = map[string]bool{
	"au/": true, // unsent assets by creation time
	"at/": true, // assets by creation time (media retention)
	"az/": true, // unused blobs
}

// statePart splits a state key into its partition (part) and clustering
// key: a key of a scanned table is (table, rest); a key holding a NUL is
// (up to and including the first NUL, rest), so that the records a prefix
// ending in NUL names share a partition; any other key is its own
// partition (key, "").
func statePart(key string) (part, rest string) {
	if i := strings.IndexByte(key, '/'); i >= 0 && scannedTables[key[:i+1]] {
		return key[:i+1], key[i+1:]
	}
	if i := strings.IndexByte(key, 0); i >= 0 {
		return key[:i+1], key[i+1:]
	}
	return key, ""
}

// scanPart returns the partition that holds every key starting with
// prefix, and the part of prefix within it; ok is false when such keys
// may be in several partitions.
func scanPart(prefix string) (part, rest string, ok bool) {
	if i := strings.IndexByte(prefix, '/'); i >= 0 && scannedTables[prefix[:i+1]] {
		return prefix[:i+1], prefix[i+1:], true
	}
	if i := strings.IndexByte(prefix, 0); i >= 0 {
		// Every key with this prefix has the same first NUL, and no '/'
		// of a scanned table before it (the prefix would have matched
		// above).
		return prefix[:i+1], prefix[i+1:], true
	}
	return "", "", false
}

const (
	cqlGetState      = `SELECT value FROM state WHERE ns = ? AND part = ? AND k = ?`
	cqlScanPart      = `SELECT k, value FROM state WHERE ns = ? AND part = ?`
	cqlScanPartFrom  = `SELECT k, value FROM state WHERE ns = ? AND part = ? AND k >= ?`
	cqlScanPartRange = `SELECT k, value FROM state WHERE ns = ? AND part = ? AND k >= ? AND k < ?`
	cqlScanAll       = `SELECT ns, part, k, value FROM state`
)

// GetState reads one state record: one partition, one row. Safe for
// concurrent use.
func (s *Store) GetState(ctx context.Context, key string, fn func(value []byte)) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, err
	}
	part, rest := statePart(key)
	var v []byte
	err := s.query(ctx, cqlGetState, s.ns, []byte(part), []byte(rest)).Scan(&v)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap("get state", err)
	}
	fn(nonNil(v))
	return true, nil
}

// ScanState calls fn for the state records whose key starts with prefix,
// in key order. Every prefix the chat Service scans (one ending in NUL, or
// one of a scanned table) is one partition read in clustering order, paged
// by the driver. Any other prefix (such as "" or "g/") is served by a scan
// of the whole state table, sorted in memory: correct, but as costly as
// the table is large. Safe for concurrent use.
func (s *Store) ScanState(ctx context.Context, prefix string, fn func(key, value []byte) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	part, rest, ok := scanPart(prefix)
	if !ok {
		return s.scanAll(ctx, prefix, fn)
	}
	var q *gocql.Query
	switch end := prefixEnd(rest); {
	case rest == "":
		q = s.query(ctx, cqlScanPart, s.ns, []byte(part))
	case end == nil:
		q = s.query(ctx, cqlScanPartFrom, s.ns, []byte(part), []byte(rest))
	default:
		q = s.query(ctx, cqlScanPartRange, s.ns, []byte(part), []byte(rest), end)
	}
	it := q.Iter()
	var k, v []byte
	key := []byte(part)
	for it.Scan(&k, &v) {
		key = append(key[:len(part)], k...)
		if err := fn(key, nonNil(v)); err != nil {
			it.Close()
			return err
		}
	}
	return s.wrap("scan state", it.Close())
}

// scanAll serves a prefix that spans partitions: the whole table, this
// namespace's matching records sorted by key.
func (s *Store) scanAll(ctx context.Context, prefix string, fn func(key, value []byte) error) error {
	type kv struct{ k, v []byte }
	var got []kv
	it := s.query(ctx, cqlScanAll).Iter()
	var ns, part, k, v []byte
	for it.Scan(&ns, &part, &k, &v) {
		if string(ns) != string(s.ns) {
			continue
		}
		key := append(part, k...)
		if strings.HasPrefix(string(key), prefix) {
			got = append(got, kv{key, nonNil(v)})
		}
		ns, part, k, v = nil, nil, nil, nil
	}
	if err := it.Close(); err != nil {
		return s.wrap("scan state", err)
	}
	slices.SortFunc(got, func(a, b kv) int { return strings.Compare(string(a.k), string(b.k)) })
	for _, r := range got {
		if err := fn(r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// prefixEnd returns the least byte string greater than every string with
// prefix p, or nil when there is none (p is all 0xff bytes).
func prefixEnd(p string) []byte {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}
