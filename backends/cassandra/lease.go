package cassandra

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Write timestamps are epoch<<epochShift | µs since SetWriterEpoch.
const (
	epochShift = 44
	maxEpoch   = 1<<(63-epochShift) - 1 // the largest epoch whose timestamps stay positive
)

// ErrLeaseContended is returned (wrapped) by AcquireLease when other
// takers kept winning the compare-and-set; try again.
var ErrLeaseContended = errors.New("cassandra: lease contended")

// SetWriterEpoch sets the epoch of every write timestamp this Store issues
// from now on, and restarts the timestamps' clock: each Apply and Expire
// statement carries USING TIMESTAMP epoch<<44 | µs since this call, kept
// strictly increasing across this Store's statements. e is the epoch that
// AcquireLease returned; 0 stops writes (ErrNoWriterEpoch). Safe for
// concurrent use.
func (s *Store) SetWriterEpoch(e uint32) {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	if e != s.epoch {
		s.lastTS = 0
	}
	s.epoch = e
	s.base = time.Now()
}

// WriterEpoch returns the epoch set by SetWriterEpoch, 0 before. Safe for
// concurrent use.
func (s *Store) WriterEpoch() uint32 {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	return s.epoch
}

// nextTS returns the next write timestamp: epoch<<44 | µs since the epoch
// was set, and more than the last one returned.
func (s *Store) nextTS() (int64, error) {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	if s.epoch == 0 {
		return 0, ErrNoWriterEpoch
	}
	if s.epoch > maxEpoch {
		return 0, fmt.Errorf("%w (epoch %d is above %d)", ErrEpochExhausted, s.epoch, maxEpoch)
	}
	el := time.Since(s.base).Microseconds()
	ts := max(int64(s.epoch)<<epochShift|el, s.lastTS+1)
	if el >= 1<<epochShift || ts>>epochShift != int64(s.epoch) {
		return 0, fmt.Errorf("%w (epoch %d has run for 2^44 µs)", ErrEpochExhausted, s.epoch)
	}
	s.lastTS = ts
	return ts, nil
}

const (
	cqlLeaseGet    = `SELECT epoch FROM leases WHERE ns = ? AND shard = ?`
	cqlLeaseCreate = `INSERT INTO leases (ns, shard, epoch, owner, acquired_at) VALUES (?, ?, 1, ?, ?) IF NOT EXISTS`
	cqlLeaseRaise  = `UPDATE leases SET epoch = ?, owner = ?, acquired_at = ? WHERE ns = ? AND shard = ? IF epoch = ?`
)

// leaseAttempts bounds AcquireLease's compare-and-set rounds.
const leaseAttempts = 16

// AcquireLease takes shard for owner: it raises the shard's epoch by one
// with a lightweight transaction (compare-and-set at LOCAL_SERIAL, once
// per takeover, never on the message path) and returns the new epoch, 1
// for a shard never taken. Pass it to SetWriterEpoch; from then on this
// Store's writes beat those of every earlier holder of the shard. Safe for
// concurrent use; concurrent takers each get a distinct epoch.
func (s *Store) AcquireLease(ctx context.Context, shard, owner string) (epoch uint32, err error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	for range leaseAttempts {
		var cur int64
		err := s.sess.Query(cqlLeaseGet, s.ns, shard).Consistency(gocql.LocalSerial).WithContext(ctx).Scan(&cur)
		now := time.Now()
		var applied bool
		switch {
		case errors.Is(err, gocql.ErrNotFound):
			cur = 0
			applied, err = s.sess.Query(cqlLeaseCreate, s.ns, shard, owner, now).WithContext(ctx).MapScanCAS(map[string]any{})
		case err != nil:
			return 0, s.wrap("lease: read", err)
		default:
			if cur >= maxEpoch {
				return 0, fmt.Errorf("%w (shard %q is at epoch %d)", ErrEpochExhausted, shard, cur)
			}
			applied, err = s.sess.Query(cqlLeaseRaise, cur+1, owner, now, s.ns, shard, cur).WithContext(ctx).MapScanCAS(map[string]any{})
		}
		if err != nil {
			return 0, s.wrap("lease: compare-and-set", err)
		}
		if applied {
			return uint32(cur + 1), nil
		}
	}
	return 0, fmt.Errorf("%w: shard %q, %d attempts", ErrLeaseContended, shard, leaseAttempts)
}
