package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/switchboard/switchboard/chat"
)

var (
	_ chat.Store          = (*Store)(nil)
	_ chat.ClientIDLister = (*Store)(nil)
	_ io.Closer           = (*Store)(nil)
)

// ErrLocked is returned by Open when another process holds the store (one
// process per data directory).
var ErrLocked = errors.New("disk: store is in use by another process")

// Errors returned by Store. Those from Apply mean that nothing of the batch
// was written.
var (
	// ErrInvalidUser is returned for a user id (an entry's User, a
	// message's From when it has a ClientID, or a read's argument) that is
	// empty or holds a NUL byte.
	ErrInvalidUser = errors.New("disk: user id is empty or holds a NUL byte")
	// ErrInvalidMessage is returned by Apply for a message with no ID.
	ErrInvalidMessage = errors.New("disk: message has no ID")
	// ErrSeq is returned by Apply for an entry with seq 0 or that does not
	// follow the previous entry of its user in the batch by exactly one.
	ErrSeq = errors.New("disk: entry seq out of order")
	// ErrNoTime is returned by Apply for a non-empty batch with a zero
	// Time, which would make it expire at once.
	ErrNoTime = errors.New("disk: batch has no Time")
	// ErrNoShared is returned by Apply for an entry whose Shared key names
	// no part of its batch.
	ErrNoShared = errors.New("disk: entry names a shared part its batch does not have")
	// ErrCorrupt is returned when a stored value cannot be decoded.
	ErrCorrupt = errors.New("disk: corrupt value")
)

// formatVersion is the key layout described in doc.go.
const formatVersion = 1

// expireBatchKeys bounds the deletions in one Pebble batch of Expire.
const expireBatchKeys = 4096

// Options configures a Store. The zero value is the default for each
// field; Validate reports invalid values.
type Options struct {
	// CacheSize is the size in bytes of the block cache (uncompressed
	// sstable blocks) used by reads. Default 512 MiB.
	CacheSize int64 `yaml:"cache_size" help:"block cache for reads (bytes, default 512 MiB)"`

	// MemTableSize is the size in bytes of one memtable; a full one is
	// flushed to L0 in the background. Larger ones absorb bursts and make
	// fewer L0 files, and take longer to replay from the WAL at Open.
	// Below 4 GiB. Default 64 MiB.
	MemTableSize int64 `yaml:"memtable_size" help:"one memtable (bytes, default 64 MiB)"`

	// MemTables is how many memtables, the active one included, may be in
	// memory before writes stall until a flush completes: a burst larger
	// than MemTables×MemTableSize waits for flushes. Default 8.
	MemTables int `yaml:"memtables" help:"memtables in memory before writes stall (default 8)"`

	// BloomBitsPerKey sets the bloom filter on every level: 10 bits give
	// about 1% false positives. Default 10.
	BloomBitsPerKey int `yaml:"bloom_bits_per_key" help:"bloom filter bits per key (default 10)"`

	// Compactions is the most background compactions run at once.
	// Compactions are CPU-bound; more of them than half the cores starve
	// the event loops and the committer. Measured on 2 cores after a burst
	// of 4 million messages: with 4, a following 10,000 msg/s run had a
	// p99 of 730 ms (writes waited behind them); with 1, 7–18 ms, and the
	// highest sustained rate was unchanged (98–101k msg/s). Default: half
	// the CPUs, at least 1.
	Compactions int `yaml:"compactions" help:"concurrent background compactions (default: half the CPUs, at least 1)"`

	// L0CompactionThreshold is how many L0 sublevels accumulate before
	// they are compacted into Lbase. An inbox is append-heavy: letting L0
	// grow and keeping Lbase large (LBaseMaxBytes) rewrites each entry
	// fewer times. Measured here, highest sustained message rate: 2 → 60k,
	// 8 → 72k, 16 → 84k msg/s; with LBaseMaxBytes 512 MiB, 94k. The cost is
	// more files for an inbox read to merge. Default 16.
	L0CompactionThreshold int `yaml:"l0_compaction_threshold" help:"L0 sublevels before compacting into Lbase (default 16)"`

	// LBaseMaxBytes is the size of Lbase, the first level below L0.
	// Default 512 MiB.
	LBaseMaxBytes int64 `yaml:"lbase_max_bytes" help:"size of the first level below L0 (bytes, default 512 MiB)"`

	// MaxOpenFiles bounds the sstables held open. They share the process's
	// open-file limit with client connections. Default 1000.
	MaxOpenFiles int `yaml:"max_open_files" help:"sstables held open; shares the open-file limit with connections (default 1000)"`

	// Logger receives Pebble's log. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports the first invalid field of o.
func (o *Options) Validate() error {
	switch {
	case o.CacheSize < 0:
		return fmt.Errorf("disk: CacheSize %d is negative", o.CacheSize)
	case o.MemTableSize < 0 || o.MemTableSize >= 4<<30:
		return fmt.Errorf("disk: MemTableSize %d is not in [0, 4 GiB)", o.MemTableSize)
	case o.L0CompactionThreshold < 0 || o.LBaseMaxBytes < 0:
		return fmt.Errorf("disk: L0CompactionThreshold %d and LBaseMaxBytes %d must not be negative", o.L0CompactionThreshold, o.LBaseMaxBytes)
	case o.MemTables < 0:
		return fmt.Errorf("disk: MemTables %d is negative", o.MemTables)
	case o.BloomBitsPerKey < 0:
		return fmt.Errorf("disk: BloomBitsPerKey %d is negative", o.BloomBitsPerKey)
	case o.Compactions < 0:
		return fmt.Errorf("disk: Compactions %d is negative", o.Compactions)
	case o.MaxOpenFiles < 0:
		return fmt.Errorf("disk: MaxOpenFiles %d is negative", o.MaxOpenFiles)
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.CacheSize == 0 {
		o.CacheSize = 512 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 64 << 20
	}
	if o.MemTables == 0 {
		o.MemTables = 8
	}
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = 10
	}
	if o.Compactions == 0 {
		o.Compactions = max(1, runtime.NumCPU()/2)
	}
	if o.L0CompactionThreshold == 0 {
		o.L0CompactionThreshold = 16
	}
	if o.LBaseMaxBytes == 0 {
		o.LBaseMaxBytes = 512 << 20
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) pebble() *pebble.Options {
	po := &pebble.Options{
		CacheSize:                   o.CacheSize,
		MemTableSize:                uint64(o.MemTableSize),
		MemTableStopWritesThreshold: o.MemTables,
		MaxOpenFiles:                o.MaxOpenFiles,
		FormatMajorVersion:          pebble.FormatNewest,
		// Let L0 grow before compacting it into a large Lbase, and never
		// stop writes for L0 file count: sends back up behind the WAL
		// instead of stalling outright. See Options.L0CompactionThreshold.
		L0CompactionThreshold: o.L0CompactionThreshold,
		LBaseMaxBytes:         o.LBaseMaxBytes,
		L0StopWritesThreshold: 1000,
		Logger:                pebbleLogger{o.Logger},
		EventListener:         eventListener(o.Logger),
	}
	n := o.Compactions
	po.CompactionConcurrencyRange = func() (int, int) { return 1, n }
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(o.BloomBitsPerKey)
		po.Levels[i].FilterType = pebble.TableFilter
	}
	return po
}

// Store is a durable chat.Store in a Pebble database in one directory.
// All methods are safe for concurrent use, including concurrent Apply
// calls (their fsyncs are merged). Close waits for calls in progress.
type Store struct {
	mu  sync.RWMutex // read-held by every call; Close takes it to close db
	db  *pebble.DB   // nil once closed
	log *slog.Logger

	epoch    uint64        // this Open's number, in x/ keys
	batchSeq atomic.Uint64 // x/ key counter within this Open

	expireMu sync.Mutex // one Expire at a time, so no batch is counted twice

	// Readers see the database through a snapshot taken after the last
	// Apply returned, never the live database: Pebble makes a batch
	// visible before its WAL sync completes, and a reader must not see an
	// entry that a crash could still take back (a device that saw seq n
	// would drop the different message that reuses n after the crash).
	viewMu  sync.Mutex
	view    *readView
	applyMu sync.Mutex // held from an Apply's commit to its publish
}

// readView is a reference-counted snapshot: the store holds one reference
// while it is current, each reader one while it reads.
type readView struct {
	snap *pebble.Snapshot
	refs atomic.Int32
}

func (v *readView) release() {
	if v.refs.Add(-1) == 0 {
		v.snap.Close()
	}
}

// publish makes everything committed so far visible to readers.
func (s *Store) publish(db *pebble.DB) {
	nv := &readView{snap: db.NewSnapshot()}
	nv.refs.Store(1)
	s.viewMu.Lock()
	old := s.view
	s.view = nv
	s.viewMu.Unlock()
	if old != nil {
		old.release()
	}
}

// reader is what reads need of a snapshot.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIterWithContext(ctx context.Context, o *pebble.IterOptions) (*pebble.Iterator, error)
}

// read read-locks s for one call and returns the current view, which the
// caller must release, or chat.ErrClosed (and no lock).
func (s *Store) read() (*readView, error) {
	if _, err := s.acquire(); err != nil {
		return nil, err
	}
	s.viewMu.Lock()
	v := s.view
	v.refs.Add(1)
	s.viewMu.Unlock()
	return v, nil
}

func (s *Store) done(v *readView) {
	v.release()
	s.mu.RUnlock()
}

// Open opens the store in dir, creating it if needed.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	db, err := pebble.Open(dir, opts.pebble())
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("disk: open %s: %w", dir, err)
	}
	s := &Store{db: db, log: opts.Logger}
	if err := s.start(); err != nil {
		db.Close()
		return nil, err
	}
	s.publish(db) // everything replayed from the WAL is durable
	return s, nil
}

// start checks the format and takes the next epoch.
func (s *Store) start() error {
	format, found, err := s.getUint64([]byte("o/format"))
	if err != nil {
		return err
	}
	if found && format != formatVersion {
		return fmt.Errorf("disk: store format %d, this build reads %d", format, formatVersion)
	}
	epoch, _, err := s.getUint64([]byte("o/epoch"))
	if err != nil {
		return err
	}
	s.epoch = epoch + 1
	wb := s.db.NewBatch()
	defer wb.Close()
	wb.Set([]byte("o/format"), binary.BigEndian.AppendUint64(nil, formatVersion), nil)
	wb.Set([]byte("o/epoch"), binary.BigEndian.AppendUint64(nil, s.epoch), nil)
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("disk: write epoch: %w", err)
	}
	return nil
}

// Close closes the store; later calls return chat.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return chat.ErrClosed
	}
	if s.view != nil {
		s.view.release() // no reader holds it: they hold s.mu
		s.view = nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// acquire read-locks s for one call and returns the database, or
// chat.ErrClosed (and no lock).
func (s *Store) acquire() (*pebble.DB, error) {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return nil, chat.ErrClosed
	}
	return s.db, nil
}

// scratch is the per-Apply working memory, pooled.
type scratch struct {
	key     []byte
	val     []byte
	index   []byte                // the x/ value: what this batch writes
	heads   map[string]uint64     // user → last seq in this batch
	entries map[inboxRef]struct{} // inbox entries written by this batch
	covered map[inboxRef]struct{} // entries an M/ item of the x/ value covers
	shared  map[string]sharedRef  // the batch's shared parts, by key
}

type inboxRef struct {
	user string
	seq  uint64
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{heads: make(map[string]uint64), entries: make(map[inboxRef]struct{}),
		covered: make(map[inboxRef]struct{}), shared: make(map[string]sharedRef)}
}}

// Apply writes b in one Pebble batch committed with Sync. It validates b
// first; see the Err values. Safe for concurrent use.
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
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.heads)
		clear(sc.entries)
		clear(sc.covered)
		clear(sc.shared)
		scratchPool.Put(sc)
	}()
	size := 64
	for _, p := range b.Shared {
		sc.shared[p.Key] = sharedRef{data: p.Data}
	}
	for _, e := range b.Entries {
		if !validUser(e.User) {
			return fmt.Errorf("%w: entry for %q", ErrInvalidUser, e.User)
		}
		if last, ok := sc.heads[e.User]; e.Seq == 0 || ok && e.Seq != last+1 {
			return fmt.Errorf("%w: user %q seq %d after %d", ErrSeq, e.User, e.Seq, last)
		}
		sc.heads[e.User] = e.Seq
		size += 2*len(e.User) + len(e.Frame) + 2*len(e.Shared) + 40
		if _, ok := sc.shared[e.Shared]; e.Shared != "" && !ok {
			return fmt.Errorf("%w: %q", ErrNoShared, e.Shared)
		}
	}
	for _, p := range b.Shared {
		size += 2*len(p.Key) + len(p.Data) + 16
	}
	for _, kv := range b.State {
		size += len(kv.Key) + len(kv.Value) + 16
	}
	for i := range b.Messages {
		m := &b.Messages[i]
		if m.ID == "" {
			return ErrInvalidMessage
		}
		if m.ClientID != "" && !validUser(m.From) {
			return fmt.Errorf("%w: message %s from %q", ErrInvalidUser, m.ID, m.From)
		}
		size += 2*len(m.ID) + 2*len(m.From) + len(m.To) + 2*len(m.ClientID) + 48
	}

	db, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()

	wb := db.NewBatchWithSize(size)
	defer wb.Close()
	// The retention index lists what this batch wrote. A message whose
	// inbox entry is in the batch is listed once, as M/<id>: Expire
	// derives its c/ and i/ keys from the metadata. Any other message
	// (a status upsert) lists m/<id> and its c/ key, and any other inbox
	// entry (a receipt) its i/ key.
	for _, e := range b.Entries {
		sc.entries[inboxRef{e.User, e.Seq}] = struct{}{}
	}
	sc.index = sc.index[:0]
	for i := range b.Messages {
		m := &b.Messages[i]
		sc.key = appendMessageKey(sc.key[:0], m.ID)
		sc.val = appendMeta(sc.val[:0], m)
		wb.Set(sc.key, sc.val, nil)
		ref := inboxRef{m.To, m.Seq}
		_, withEntry := sc.entries[ref]
		if withEntry {
			sc.covered[ref] = struct{}{}
			sc.key[0] = 'M'
		}
		sc.index = appendIndexKey(sc.index, sc.key)
		if m.ClientID != "" {
			sc.key = appendClientKey(sc.key[:0], m.From, m.ClientID)
			sc.val = append(sc.val[:0], m.ID...)
			wb.Set(sc.key, sc.val, nil)
			if !withEntry {
				sc.index = appendIndexKey(sc.index, sc.key)
			}
		}
	}
	for _, e := range b.Entries {
		sc.key = appendInboxKey(sc.key[:0], e.User, e.Seq)
		switch {
		case e.Shared == "" && (len(e.Frame) == 0 || e.Frame[0] > refMark):
			wb.Set(sc.key, e.Frame, nil)
		case e.Shared == "":
			wb.Set(sc.key, append(append(sc.val[:0], escapeMark), e.Frame...), nil)
		default:
			// The first entry of a shared part holds it (its whole frame);
			// the others name that entry.
			ref := sc.shared[e.Shared]
			if ref.owner == nil {
				sc.val = append(sc.val[:0], ownerMark)
				sc.val = binary.AppendUvarint(sc.val, uint64(len(e.Frame)))
				sc.val = append(append(sc.val, e.Frame...), ref.data...)
				ref.owner = append([]byte(nil), sc.key...)
				sc.shared[e.Shared] = ref
			} else {
				sc.val = append(sc.val[:0], refMark)
				sc.val = binary.AppendUvarint(sc.val, uint64(len(ref.owner)))
				sc.val = append(append(sc.val, ref.owner...), e.Frame...)
			}
			wb.Set(sc.key, sc.val, nil)
		}
		if _, ok := sc.covered[inboxRef{e.User, e.Seq}]; !ok {
			sc.index = appendIndexKey(sc.index, sc.key)
		}
	}
	for _, kv := range b.State {
		sc.key = appendStateKey(sc.key[:0], kv.Key)
		if kv.Value == nil {
			wb.Delete(sc.key, nil)
		} else {
			wb.Set(sc.key, kv.Value, nil)
		}
	}
	sc.key = appendRetentionKey(sc.key[:0], b.Time, s.epoch, s.batchSeq.Add(1))
	wb.Set(sc.key, sc.index, nil)

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("disk: apply: %w", err)
	}
	s.publish(db)
	return nil
}

// LastSeq returns the head of user's inbox, or 0. Safe for concurrent use.
func (s *Store) LastSeq(ctx context.Context, user string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !validUser(user) {
		return 0, ErrInvalidUser
	}
	v, err := s.read()
	if err != nil {
		return 0, err
	}
	defer s.done(v)
	return lastSeq(ctx, v.snap, user)
}

// lastSeq is the seq of user's last inbox entry, or, when every entry has
// expired, the highest seq that Expire deleted (s/<user>): one reverse
// seek and one Get. Apply does not write s/: each entry's key says it.
func lastSeq(ctx context.Context, db reader, user string) (uint64, error) {
	expired, _, err := getUint64(db, appendHeadKey(nil, user))
	if err != nil {
		return 0, err
	}
	lower := appendInboxKey(nil, user, 0)
	lower = lower[:len(lower)-8]
	upper := append(append([]byte("i/"), user...), 1)
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("disk: last seq: %w", err)
	}
	defer it.Close()
	if it.Last() {
		key := it.Key()
		if len(key) != len(lower)+8 {
			return 0, fmt.Errorf("%w: inbox key %q", ErrCorrupt, key)
		}
		return max(expired, binary.BigEndian.Uint64(key[len(lower):])), nil
	}
	return expired, it.Error()
}

// Message returns the message with server id id. Safe for concurrent use.
func (s *Store) Message(ctx context.Context, id string) (chat.MessageMeta, bool, error) {
	if err := ctx.Err(); err != nil {
		return chat.MessageMeta{}, false, err
	}
	v, err := s.read()
	if err != nil {
		return chat.MessageMeta{}, false, err
	}
	defer s.done(v)
	return message(v.snap, appendMessageKey(nil, id))
}

// MessageByClientID returns the message that from sent with clientID: a
// Get of the c/ index, then of the message. Safe for concurrent use.
func (s *Store) MessageByClientID(ctx context.Context, from, clientID string) (chat.MessageMeta, bool, error) {
	if err := ctx.Err(); err != nil {
		return chat.MessageMeta{}, false, err
	}
	if !validUser(from) {
		return chat.MessageMeta{}, false, ErrInvalidUser
	}
	if clientID == "" {
		return chat.MessageMeta{}, false, nil // never indexed
	}
	v, err := s.read()
	if err != nil {
		return chat.MessageMeta{}, false, err
	}
	defer s.done(v)
	id, closer, err := v.snap.Get(appendClientKey(nil, from, clientID))
	if errors.Is(err, pebble.ErrNotFound) {
		return chat.MessageMeta{}, false, nil
	}
	if err != nil {
		return chat.MessageMeta{}, false, fmt.Errorf("disk: get client id: %w", err)
	}
	key := appendMessageKey(make([]byte, 0, 2+len(id)), string(id))
	closer.Close()
	return message(v.snap, key)
}

// ClientIDs lists the client ids indexed for from (chat.ClientIDLister):
// one prefix scan of c/<from>\x00. Safe for concurrent use.
func (s *Store) ClientIDs(ctx context.Context, from string, fn func(clientID []byte)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validUser(from) {
		return ErrInvalidUser
	}
	v, err := s.read()
	if err != nil {
		return err
	}
	defer s.done(v)
	lower := appendClientKey(nil, from, "")
	upper := append(lower[:len(lower)-1:len(lower)-1], 1)
	it, err := v.snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("disk: client ids: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		fn(it.Key()[len(lower):])
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("disk: client ids: %w", err)
	}
	return nil
}

func message(db reader, key []byte) (chat.MessageMeta, bool, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return chat.MessageMeta{}, false, nil
	}
	if err != nil {
		return chat.MessageMeta{}, false, fmt.Errorf("disk: get message: %w", err)
	}
	defer closer.Close()
	m, err := decodeMeta(v)
	if err != nil {
		return chat.MessageMeta{}, false, fmt.Errorf("%w: message %q", err, key[2:])
	}
	return m, true, nil
}

// ReadInbox scans user's inbox from after+1 with a bounded iterator and
// calls fn with each frame in place: the frame is valid until fn returns.
// Safe for concurrent use.
func (s *Store) ReadInbox(ctx context.Context, user string, after uint64, limit int,
	fn func(seq uint64, frame []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validUser(user) {
		return ErrInvalidUser
	}
	if limit <= 0 || after == ^uint64(0) {
		return nil
	}
	v, err := s.read()
	if err != nil {
		return err
	}
	defer s.done(v)

	// One buffer for both bounds: i/<user>\x00<after+1> and i/<user>\x01.
	bounds := appendInboxKey(make([]byte, 0, 2*(len(user)+11)), user, after+1)
	lower := bounds[:len(bounds):len(bounds)]
	bounds = append(bounds, "i/"...)
	bounds = append(bounds, user...)
	upper := append(bounds, 1)[len(lower):]
	it, err := v.snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("disk: read inbox: %w", err)
	}
	seqAt := len(lower) - 8
	n := 0
	var buf []byte // a frame with a shared part, joined
	for valid := it.First(); valid && n < limit; valid = it.Next() {
		key := it.Key()
		if len(key) != seqAt+8 {
			it.Close()
			return fmt.Errorf("%w: inbox key %q", ErrCorrupt, key)
		}
		frame, err := it.ValueAndErr()
		if err == nil && len(frame) > 0 && frame[0] <= refMark {
			var found bool
			frame, buf, found, err = decodeEntry(v.snap, frame, buf[:0])
			if err == nil && !found {
				continue // what it shares with another entry expired first
			}
		}
		if err == nil {
			err = fn(binary.BigEndian.Uint64(key[seqAt:]), frame)
		}
		if err != nil {
			it.Close()
			return err
		}
		n++
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("disk: read inbox: %w", err)
	}
	return nil
}

// Expire deletes what the batches with Time before before wrote, and their
// x/ keys, walking the retention index only. It publishes a new view for
// readers while no Apply is between its commit and its publish, so that the
// view holds no unsynced batch. Deletions are committed
// without Sync every expireBatchKeys keys: if they are lost in a crash,
// their x/ keys are too, and the next Expire deletes them again. Returns
// the number of batches whose deletions were committed. Safe for
// concurrent use; concurrent Expires run one at a time.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	db, err := s.acquire()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()

	upper := appendTimeKey([]byte("x/"), before)
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte("x/"), UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("disk: expire: %w", err)
	}
	defer it.Close()

	wb := db.NewBatch()
	defer func() { wb.Close() }()
	done, pending := 0, 0
	// heads: per user, the highest seq this batch deletes. LastSeq reads
	// the last remaining entry's key, so before a user's last entries go,
	// s/<user> must keep their seq: the head never decreases.
	heads := make(map[string]uint64)
	deleted := func(key []byte) {
		if len(key) > 11 && key[0] == 'i' && key[1] == '/' && key[len(key)-9] == 0 {
			user, seq := string(key[2:len(key)-9]), binary.BigEndian.Uint64(key[len(key)-8:])
			heads[user] = max(heads[user], seq)
		}
	}
	commit := func() error {
		for user, seq := range heads {
			hk := appendHeadKey(nil, user)
			old, _, err := getUint64(db, hk)
			if err != nil {
				return fmt.Errorf("disk: expire: %w", err)
			}
			if seq > old {
				wb.Set(hk, binary.BigEndian.AppendUint64(nil, seq), nil)
			}
		}
		clear(heads)
		if err := wb.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("disk: expire: %w", err)
		}
		wb.Close()
		wb = db.NewBatch()
		done, pending = done+pending, 0
		return nil
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		keys, err := it.ValueAndErr()
		if err != nil {
			return done, fmt.Errorf("disk: expire: %w", err)
		}
		for len(keys) > 0 {
			n, w := binary.Uvarint(keys)
			if w <= 0 || n > uint64(len(keys)-w) {
				return done, fmt.Errorf("%w: retention index %x", ErrCorrupt, it.Key())
			}
			key := keys[w : w+int(n)]
			keys = keys[w+int(n):]
			if len(key) > 2 && key[0] == 'M' && key[1] == '/' {
				// A message and what Apply derived from it in the same batch.
				entry, err := s.expireMessage(db, wb, key[2:])
				if err != nil {
					return done, err
				}
				deleted(entry)
			} else {
				wb.Delete(key, nil)
				deleted(key)
			}
			if wb.Count() >= expireBatchKeys {
				if err := commit(); err != nil {
					return done, err
				}
			}
		}
		wb.Delete(it.Key(), nil)
		pending++
	}
	if err := it.Error(); err != nil {
		return done, fmt.Errorf("disk: expire: %w", err)
	}
	if wb.Count() > 0 {
		if err := commit(); err != nil {
			return done, err
		}
	}
	if done > 0 {
		s.applyMu.Lock()
		s.publish(db)
		s.applyMu.Unlock()
	}
	return done, nil
}

// expireMessage deletes message id with its client-id index entry and its
// inbox entry, read from its metadata.
// It returns the inbox key it deleted, if any.
func (s *Store) expireMessage(db *pebble.DB, wb *pebble.Batch, id []byte) ([]byte, error) {
	key := appendMessageKey(nil, string(id))
	m, found, err := message(db, key)
	if err != nil {
		return nil, fmt.Errorf("disk: expire: %w", err)
	}
	var entry []byte
	if found {
		if m.ClientID != "" {
			wb.Delete(appendClientKey(nil, m.From, m.ClientID), nil)
		}
		entry = appendInboxKey(nil, m.To, m.Seq)
		wb.Delete(entry, nil)
	}
	wb.Delete(key, nil)
	return entry, nil
}

// The first byte of an inbox value says how to read it. A JSON frame starts
// with '{' and is stored as is. An entry with a shared part (chat.Entry.
// Shared) is stored one of two ways: the first entry of the part in its
// batch, ownerMark, then the length of its own start of the frame as a
// uvarint, then its whole frame (own start and shared part); every other
// entry of the part, refMark, then the first entry's key (uvarint length
// and bytes), then its own start. A frame that itself starts with one of
// the marks is stored behind escapeMark.
const (
	escapeMark = 0
	ownerMark  = 1
	refMark    = 2
)

// sharedRef is a shared part during Apply: its data and, once its first
// entry is written, that entry's key.
type sharedRef struct {
	data  []byte
	owner []byte
}

// decodeEntry returns the frame of the inbox value v, which starts with
// one of the marks. buf is scratch for a frame that must be joined; found
// is false when the entry that holds the shared part is gone.
func decodeEntry(db reader, v, buf []byte) (frame, _ []byte, found bool, err error) {
	switch v[0] {
	case escapeMark:
		return v[1:], buf, true, nil
	case ownerMark:
		_, w := binary.Uvarint(v[1:])
		if w <= 0 {
			return nil, buf, false, fmt.Errorf("%w: inbox value", ErrCorrupt)
		}
		return v[1+w:], buf, true, nil
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n > uint64(len(v)-1-w) {
		return nil, buf, false, fmt.Errorf("%w: inbox value", ErrCorrupt)
	}
	owner, head := v[1+w:1+w+int(n)], v[1+w+int(n):]
	ov, closer, err := db.Get(owner)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, buf, false, nil
	}
	if err != nil {
		return nil, buf, false, fmt.Errorf("disk: get shared entry: %w", err)
	}
	defer closer.Close()
	hl, ow := binary.Uvarint(ov[1:])
	if len(ov) == 0 || ov[0] != ownerMark || ow <= 0 || hl > uint64(len(ov)-1-ow) {
		return nil, buf, false, fmt.Errorf("%w: shared entry %q", ErrCorrupt, owner)
	}
	buf = append(append(buf, head...), ov[1+ow+int(hl):]...)
	return buf, buf, true, nil
}

// GetState calls fn with the value of the state record key, read from the
// published view. Safe for concurrent use.
func (s *Store) GetState(ctx context.Context, key string, fn func(value []byte)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	v, err := s.read()
	if err != nil {
		return false, err
	}
	defer s.done(v)
	val, closer, err := v.snap.Get(appendStateKey(nil, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("disk: get state: %w", err)
	}
	defer closer.Close()
	fn(val)
	return true, nil
}

// ScanState calls fn for the state records under prefix, in key order,
// with one bounded iterator over the published view. Safe for concurrent
// use.
func (s *Store) ScanState(ctx context.Context, prefix string, fn func(key, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := s.read()
	if err != nil {
		return err
	}
	defer s.done(v)
	lower := appendStateKey(nil, prefix)
	o := &pebble.IterOptions{LowerBound: lower}
	if upper := prefixEnd(lower); upper != nil {
		o.UpperBound = upper
	}
	it, err := v.snap.NewIterWithContext(ctx, o)
	if err != nil {
		return fmt.Errorf("disk: scan state: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		val, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key()[2:], val)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("disk: scan state: %w", err)
	}
	return nil
}

// prefixEnd returns the smallest key above every key that starts with p,
// or nil if there is none.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func appendStateKey(dst []byte, key string) []byte {
	return append(append(dst, "k/"...), key...)
}

func validUser(u string) bool {
	return u != "" && strings.IndexByte(u, 0) < 0
}

func appendInboxKey(dst []byte, user string, seq uint64) []byte {
	dst = append(dst, "i/"...)
	dst = append(dst, user...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func appendHeadKey(dst []byte, user string) []byte {
	return append(append(dst, "s/"...), user...)
}

func appendMessageKey(dst []byte, id string) []byte {
	return append(append(dst, "m/"...), id...)
}

func appendClientKey(dst []byte, from, clientID string) []byte {
	dst = append(dst, "c/"...)
	dst = append(dst, from...)
	dst = append(dst, 0)
	return append(dst, clientID...)
}

// appendTimeKey appends t as the order-preserving u64 of x/ keys.
func appendTimeKey(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t.UnixNano())^(1<<63))
}

func appendRetentionKey(dst []byte, t time.Time, epoch, n uint64) []byte {
	dst = appendTimeKey(append(dst, "x/"...), t)
	dst = binary.BigEndian.AppendUint64(dst, epoch)
	return binary.BigEndian.AppendUint64(dst, n)
}

// appendIndexKey appends key to an x/ value.
func appendIndexKey(dst, key []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(key))), key...)
}

func (s *Store) getUint64(key []byte) (uint64, bool, error) {
	return getUint64(s.db, key)
}

func getUint64(db reader, key []byte) (uint64, bool, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("disk: get %q: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: %q holds %d bytes", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

const metaVersion = 1

func appendMeta(dst []byte, m *chat.MessageMeta) []byte {
	dst = append(dst, metaVersion)
	for _, s := range [...]string{m.ID, m.From, m.To, m.ClientID} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendVarint(dst, m.TS)
	dst = binary.AppendUvarint(dst, m.Seq)
	return append(dst, byte(m.Status))
}

func decodeMeta(b []byte) (chat.MessageMeta, error) {
	var m chat.MessageMeta
	if len(b) == 0 || b[0] != metaVersion {
		return m, ErrCorrupt
	}
	b = b[1:]
	for _, dst := range [...]*string{&m.ID, &m.From, &m.To, &m.ClientID} {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return m, ErrCorrupt
		}
		*dst = string(b[w : w+int(n)])
		b = b[w+int(n):]
	}
	ts, w := binary.Varint(b)
	if w <= 0 {
		return m, ErrCorrupt
	}
	m.TS, b = ts, b[w:]
	seq, w := binary.Uvarint(b)
	if w <= 0 || len(b) != w+1 {
		return m, ErrCorrupt
	}
	m.Seq, m.Status = seq, chat.Status(b[w])
	return m, nil
}

// eventListener logs Pebble's background work: flushes and compactions at
// debug level (what an operator correlates with slow commits), write
// stalls and slow disk operations as warnings.
func eventListener(l *slog.Logger) *pebble.EventListener {
	ctx := context.Background()
	return &pebble.EventListener{
		FlushEnd: func(i pebble.FlushInfo) {
			if l.Enabled(ctx, slog.LevelDebug) {
				l.Debug("store flush", "job", i.JobID, "memtables", i.Input, "bytes", i.InputBytes,
					"took", i.TotalDuration, "err", i.Err)
			}
		},
		CompactionEnd: func(i pebble.CompactionInfo) {
			if l.Enabled(ctx, slog.LevelDebug) {
				var bytes uint64
				for _, t := range i.Output.Tables {
					bytes += t.Size
				}
				l.Debug("store compaction", "job", i.JobID, "reason", i.Reason, "to_level", i.Output.Level,
					"bytes", bytes, "took", i.TotalDuration, "err", i.Err)
			}
		},
		WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
			l.Warn("store write stall: commits wait for flushes or compactions", "reason", i.Reason)
		},
		WriteStallEnd: func() { l.Warn("store write stall over") },
		DiskSlow: func(i pebble.DiskSlowInfo) {
			l.Warn("store: slow disk operation", "op", i.OpType.String(), "path", i.Path, "took", i.Duration)
		},
	}
}

// pebbleLogger routes Pebble's log to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelInfo) {
		p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf logs and panics: Pebble calls it when it cannot go on.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("disk: pebble: " + msg)
}
