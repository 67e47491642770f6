package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/switchboard/switchboard/chat"
)

var (
	_ chat.Store          = (*Store)(nil)
	_ chat.ClientIDLister = (*Store)(nil)
	_ io.Closer           = (*Store)(nil)
)

// Errors of the Store, besides chat.ErrClosed and the migration errors.
var (
	// ErrInvalidBatch is returned (wrapped, with the reason) by Apply for a
	// batch that breaks the chat.Batch contract; nothing of it is written.
	ErrInvalidBatch = errors.New("cassandra: invalid batch")
	// ErrNoWriterEpoch is returned by Apply and Expire on a Store whose
	// writer epoch is 0: call AcquireLease and SetWriterEpoch first (see
	// "Fencing" in the package documentation).
	ErrNoWriterEpoch = errors.New("cassandra: no writer epoch: AcquireLease, then SetWriterEpoch, before writing")
	// ErrEpochExhausted is returned by Apply and Expire when the writer
	// epoch cannot order more writes: the epoch is too large for a write
	// timestamp, or 2^44 µs (203 days) have passed since SetWriterEpoch.
	// Take a new lease.
	ErrEpochExhausted = errors.New("cassandra: writer epoch exhausted: take a new lease")
)

// writeConcurrency bounds the requests one Apply or Expire has in flight.
const writeConcurrency = 32

// Store is the chat.Store (and chat.ClientIDLister) on Cassandra; its
// Presence method returns the presence.Store in the same keyspace. Every
// method is safe for concurrent use. Open it with Open; Close it once.
type Store struct {
	sess   *gocql.Session
	cfg    Config
	ns     []byte
	regNS  []byte // the retention index's namespace: ns, or ns and the partition of a Partition view
	cons   gocql.Consistency
	closed *atomic.Bool // shared with the Partition views
	view   bool         // a Partition view: Close leaves the session open

	clockMu sync.Mutex
	epoch   uint32
	base    time.Time // when the epoch was set; elapsed µs is the timestamp's low part
	lastTS  int64

	firstMu  sync.Mutex
	firstReg int64 // lowest retention bucket this Store registered as "first"; 0: none

	chainMu   sync.Mutex
	chainTail *applyLink // the last batch ApplyAsync started (apply.go)
}

// Open connects to the cluster of cfg and checks that the keyspace holds
// every migration of this binary; it never migrates. A keyspace that is
// missing or behind is ErrSchemaBehind (wrapped, naming what is missing):
// run `switchboard migrate` (or Migrate). The Store writes nothing until
// it has a writer epoch (SetWriterEpoch).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.filled()
	if err != nil {
		return nil, err
	}
	sess, cons, err := connect(&cfg, "")
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, sess, cfg.Keyspace); err != nil {
		sess.Close()
		return nil, err
	}
	sess.Close()
	// A session bound to the keyspace: statements name tables alone, so
	// their text is constant and each is prepared once.
	sess, cons, err = connect(&cfg, cfg.Keyspace)
	if err != nil {
		return nil, err
	}
	ns := []byte(cfg.Namespace)
	return &Store{sess: sess, cfg: cfg, ns: ns, regNS: ns, cons: cons, closed: new(atomic.Bool), base: time.Now()}, nil
}

// Partition returns a Store for the sequencer of partition p of a
// partitioned command log (chat.Config.Partitions > 1). It shares s's
// connections and data, and has its own writer epoch and clock
// (SetWriterEpoch, AcquireLease on the partition's shard), its own
// ApplyAsync pipeline, and its own retention index: its Expire deletes
// only what the partition's batches wrote, with the partition's epoch,
// which is above that of every earlier owner of the partition (a delete
// with a smaller timestamp than the write would be ignored). Partition
// 0's index is s's, which the one sequencer of an unpartitioned
// deployment used (on the same lease): after a move to several
// partitions, partition 0 expires what it wrote. Closing the view does
// nothing; close s.
func (s *Store) Partition(p int) *Store {
	reg := s.ns
	if p != 0 {
		reg = append(append(append([]byte(nil), s.ns...), 0), strconv.Itoa(p)...)
	}
	return &Store{sess: s.sess, cfg: s.cfg, ns: s.ns, regNS: reg, cons: s.cons, closed: s.closed, view: true, base: time.Now()}
}

// Close closes the connections. Later calls return chat.ErrClosed. Safe
// for concurrent use; a second Close does nothing.
func (s *Store) Close() error {
	if s.view {
		return nil
	}
	if s.closed.CompareAndSwap(false, true) {
		s.sess.Close()
	}
	return nil
}

// query returns a statement at the configured consistency, marked
// idempotent (the retry policy retries only those), with ctx.
func (s *Store) query(ctx context.Context, stmt string, args ...any) *gocql.Query {
	return s.sess.Query(stmt, args...).Consistency(s.cons).Idempotent(true).WithContext(ctx)
}

// check returns chat.ErrClosed after Close, else ctx's error.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return chat.ErrClosed
	}
	return ctx.Err()
}

// wrap names the operation in a driver error, and turns the error of a
// call racing Close into chat.ErrClosed.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		return fmt.Errorf("cassandra: %s: %w", op, chat.ErrClosed)
	}
	return fmt.Errorf("cassandra: %s: %w", op, err)
}

// runAll runs n calls of fn, at most writeConcurrency at a time, and
// returns the first error; after one, the calls not started are skipped.
func runAll(n int, fn func(i int) error) error {
	if n == 1 {
		return fn(0)
	}
	var (
		next  atomic.Int64
		first atomic.Value
		wg    sync.WaitGroup
	)
	for range min(n, writeConcurrency) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return nil
}

// stmt is one statement of a write, with its estimated size: what the
// server counts against batch_size_fail_threshold is the mutations' size,
// which adds to the values a timestamp and flags per cell and the keys; 16
// bytes a value plus 32 a statement overestimates it (measured: the 500
// messages and client ids of storetest's ManyUsers, counted 73 KiB by the
// server, are estimated at about twice that).
type stmt struct {
	cql  string
	args []any
	size int
}

func newStmt(cql string, args ...any) stmt {
	n := 32
	for _, a := range args {
		n += 16
		switch v := a.(type) {
		case []byte:
			n += len(v)
		case string:
			n += len(v)
		}
	}
	return stmt{cql: cql, args: args, size: n}
}

// exec runs one statement with its own write timestamp.
func (s *Store) exec(ctx context.Context, st stmt, ts int64) error {
	return s.query(ctx, st.cql, st.args...).WithTimestamp(ts).Exec()
}

// execBatch runs stmts as one batch of type typ, with one write
// timestamp, or as a single statement when there is one.
func (s *Store) execBatch(ctx context.Context, typ gocql.BatchType, stmts []stmt) error {
	ts, err := s.nextTS()
	if err != nil {
		return err
	}
	if len(stmts) == 1 {
		return s.exec(ctx, stmts[0], ts)
	}
	b := s.sess.Batch(typ).Consistency(s.cons).WithTimestamp(ts).WithContext(ctx)
	b.Entries = make([]gocql.BatchEntry, len(stmts))
	for i, st := range stmts {
		b.Entries[i] = gocql.BatchEntry{Stmt: st.cql, Args: st.args, Idempotent: true}
	}
	return b.Exec()
}

// chunks splits stmts into runs whose estimated size stays under limit
// (a statement larger than limit is a run of its own).
func chunks(stmts []stmt, limit int) [][]stmt {
	var out [][]stmt
	start, size := 0, 0
	for i, st := range stmts {
		if i > start && size+st.size > limit {
			out = append(out, stmts[start:i])
			start, size = i, 0
		}
		size += st.size
	}
	if start < len(stmts) {
		out = append(out, stmts[start:])
	}
	return out
}
