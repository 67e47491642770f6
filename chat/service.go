package chat

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/protocol"
	"github.com/switchboard/switchboard/router"
)

// Errors a Request can complete with. The gateway maps them to error frames.
var (
	// ErrOverloaded: the commit queue is full. Retry later with the same id.
	ErrOverloaded = errors.New("switchboard: overloaded")
	// ErrShuttingDown: the Service is closing and accepts no more requests.
	ErrShuttingDown = errors.New("switchboard: shutting down")
)

// Kind is what a Request asks for.
type Kind uint8

// Request kinds.
const (
	KindSend        Kind = iota + 1 // store a message for To, or for every member of Group
	KindReceipt                     // mark MsgIDs delivered or read
	KindGroup                       // a group operation (Op)
	KindMsgInfo                     // per-member delivered/read of MsgIDs[0], one of From's messages
	KindTyping                      // tell To, or Group's members, that From is typing (Stop: stopped)
	KindAsset                       // record Asset, uploaded by From
	KindAssetMedia                  // set Asset.ID's thumbnail, dimensions and duration from Asset (the asset worker)
	KindAssetDelete                 // delete asset AssetID: From's (its owner), or the collector's (Collect)
	KindBlob                        // a step of the collector's deletion of an unused blob (Sweep)
	KindProfile                     // set From's profile (Profile), or read users' profiles (Members)
	KindForward                     // entries another partition forwards (Body; see Route): from a relay, not a client
)

// Request is one client request for the committer. The caller owns it
// again once Done.Complete has been called; until then it must not touch it.
type Request struct {
	Kind     Kind
	Op       GroupOp // KindGroup
	From     string  // the authenticated user: the sender, or the reader for receipts
	ClientID []byte  // the client's id (send: required, for idempotency)
	To       []byte  // KindSend, KindTyping: a user
	Group    []byte  // KindSend, KindTyping (instead of To), KindGroup: a group id
	Name     []byte  // KindGroup: GroupCreate, GroupRename
	Body     []byte  // KindSend
	Status   Status  // KindReceipt
	MsgIDs   [][]byte
	Members  [][]byte       // KindGroup: the users an operation names
	Stop     bool           // KindTyping
	AssetID  []byte         // KindSend: the attachment, an asset From may use
	Asset    *Asset         // KindAsset, KindAssetMedia
	PutAt    int64          // KindAsset: unix ms at which the Put of the asset's blob began (0: now)
	Collect  *Collect       // KindAssetDelete by the collector
	Sweep    *Sweep         // KindBlob
	Profile  *ProfileUpdate // KindProfile: the fields to set; nil reads the profiles of Members
	Done     Completer
}

// Result is what a Request came to.
type Result struct {
	MsgID string // KindSend: the server id of the message
	TS    int64  // KindSend: unix ms at which the message was accepted
	Dup   bool   // KindSend: the ClientID was seen before; nothing new was stored
	// Data holds the result fields for the client's ack, as a run of
	// ,"key":value JSON pairs (KindGroup, KindMsgInfo); nil for none.
	Data []byte
	Err  error
}

// Completer receives the result of a Request. Complete is called exactly
// once per submitted Request, from the Service's goroutine; it must not
// block.
type Completer interface {
	Complete(r *Request, res Result)
}

// Service is the messaging core of one box: it commits requests to the
// Store in batches (one fsync for many messages), allocates each inbox's
// seq, answers requests once durable, and publishes deliveries to the
// gateway nodes that hold the recipients' connections.
//
// Three goroutines form a pipeline: the builder (the only owner of seq
// allocation, so each inbox is gap-free and in commit order) builds batch
// n+2 while the applier writes and syncs batch n+1 and the post stage
// answers and delivers batch n. Batches are applied in the order they were
// built. With a PipelinedStore the applier has up to PipelineDepth
// batches in the store at once, which orders their writes itself.
type Service struct {
	*Catalog // the read-only asset questions, over store

	cfg   Config
	store Store
	bus   Bus
	dir   router.Directory
	log   *slog.Logger
	m     *Metrics

	mu     sync.RWMutex // guards closed against Submit
	closed bool
	queue  chan *Request

	// committer state: owned by the committer goroutine.
	ids      IDGen
	heads    *genCache[string, uint64]      // user -> last seq
	metas    *genCache[string, MessageMeta] // msg id -> meta
	clientIx *genCache[clientKey, string]   // (from, client id) -> msg id
	lister   ClientIDLister                 // nil: every new client id costs a store lookup
	senders  *genCache[string, *idSet]      // sender -> hashes of its client ids
	seed     maphash.Seed
	groups   *genCache[string, *groupState] // group id -> state (groups.go)
	ugroups  *genCache[string, []string]    // user -> ids of the groups they are in
	state    *genCache[string, stateVal]    // state records the committer writes and reads (assets, profiles)
	dec      protocol.Decoder               // reads group log frames

	free  chan *commit // batches ready for reuse
	apply chan *commit // batches built, to write to the store in order
	post  chan *commit // batches applied, to answer and deliver

	// epoch counts failed Applies. A batch is built on the caches of one
	// epoch; the applier fails, without writing, every batch built in an
	// epoch that a failed Apply has ended (it may use seqs of the failed
	// batch), and the builder starts the next epoch with empty caches.
	epoch      atomic.Uint64
	builtEpoch uint64 // owned by the builder

	relay       *relay    // partitioned: sends the outbox to the other partitions
	markWritten []uint64  // per target partition: the relay progress last put in a batch (builder)
	markAt      time.Time // when it was last put in a batch (builder)
	srcEpochs   []uint64  // per source partition: the largest writer epoch its forwards carried (builder)
	outboxes    []string  // per target partition: the outbox pseudo-inbox (outboxUser)
	applied     []string  // per source partition: the applied mark's pseudo-inbox (appliedUser)

	stop chan struct{}
	wg   sync.WaitGroup
}

type clientKey struct{ from, id string }

// commit is one batch on its way through the pipeline.
type commit struct {
	reqs    []*Request
	results []Result
	batch   Batch
	arena   []byte // frames of batch.Entries point into it
	eph     []ephemeral
	events  []queuedEvent // analytics, emitted once the batch is durable
	epoch   uint64
	err     error
	applied chan struct{} // PipelinedStore: closed once its Apply is done (err set)
}

// ephemeral is a frame for users' open connections that is never stored
// (typing), published with the batch's deliveries.
type ephemeral struct {
	frame []byte
	users []string
}

// errEarlierBatch fails the batches built on top of a batch whose Apply
// failed.
var errEarlierBatch = ErrEarlierBatch

// New returns a Service. It starts its goroutines; call Close to stop them.
func New(cfg Config, store Store, bus Bus, dir router.Directory, log *slog.Logger, m *Metrics) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	s := &Service{
		Catalog: NewCatalog(store),
		cfg:     cfg, store: store, bus: bus, dir: dir, log: log, m: m,
		queue:    make(chan *Request, cfg.QueueSize),
		heads:    newGenCache[string, uint64](cfg.CacheEntries),
		metas:    newGenCache[string, MessageMeta](cfg.CacheEntries),
		clientIx: newGenCache[clientKey, string](cfg.CacheEntries),
		senders:  newGenCache[string, *idSet](max(cfg.CacheEntries/100, 1000)),
		seed:     maphash.MakeSeed(),
		groups:   newGenCache[string, *groupState](cfg.GroupCacheEntries),
		ugroups:  newGenCache[string, []string](max(cfg.CacheEntries/10, 1000)),
		state:    newGenCache[string, stateVal](max(cfg.CacheEntries/10, 1000)),
		free:     make(chan *commit, 3+PipelineDepth-1),
		apply:    make(chan *commit, 1),
		post:     make(chan *commit, 1),
		stop:     make(chan struct{}),
	}
	s.lister, _ = store.(ClientIDLister)
	commits := 3 // building, applying, posting
	if _, ok := store.(PipelinedStore); ok {
		commits += cfg.ApplyDepth - 1
	}
	for range commits {
		s.free <- &commit{}
	}
	if cfg.Partitions > 1 {
		s.srcEpochs = make([]uint64, cfg.Partitions)
		fw, ok := bus.(Forwarder)
		if !ok {
			return nil, errors.New("switchboard: a partitioned Service needs a Bus that can forward (chat.Forwarder)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.startRelay(ctx, fw)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	s.wg.Add(4)
	go s.commitLoop()
	go s.applyLoop()
	go s.postLoop()
	go s.expireLoop()
	return s, nil
}

// Config returns the Service's configuration with defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// Submit queues r for the committer without blocking. It returns
// ErrOverloaded when the queue is full and ErrShuttingDown after Close; in
// both cases r.Done is not called. Safe for concurrent use.
func (s *Service) Submit(r *Request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrShuttingDown
	}
	select {
	case s.queue <- r:
		return nil
	default:
		s.m.overloaded.Inc()
		return ErrOverloaded
	}
}

// ReadInbox reads user's inbox after seq after; see Store.ReadInbox.
// Safe for concurrent use.
func (s *Service) ReadInbox(ctx context.Context, user string, after uint64, limit int, fn func(seq uint64, frame []byte) error) error {
	return s.store.ReadInbox(ctx, user, after, limit, fn)
}

// LastSeq returns the highest durable seq of user's inbox.
// Safe for concurrent use.
func (s *Service) LastSeq(ctx context.Context, user string) (uint64, error) {
	return s.store.LastSeq(ctx, user)
}

// Close stops accepting requests, commits and answers every request
// already queued, and stops the Service's goroutines. It does not close
// the Store.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue) // no Submit can send now: it holds the read lock
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	return nil
}

func (s *Service) commitLoop() {
	defer s.wg.Done()
	defer close(s.apply)
	for {
		r, ok := <-s.queue
		if !ok {
			return
		}
		c := <-s.free
		c.reqs = append(c.reqs[:0], r)
	drain:
		for len(c.reqs) < s.cfg.MaxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break drain
				}
				c.reqs = append(c.reqs, r)
			default:
				break drain
			}
		}
		if e := s.epoch.Load(); e != s.builtEpoch {
			s.resetCaches() // an Apply failed: forget what it may have held
			s.builtEpoch = e
		}
		c.epoch = s.builtEpoch
		s.build(c)
		s.apply <- c
	}
}

// applyLoop writes the built batches to the store, in order.
func (s *Service) applyLoop() {
	defer s.wg.Done()
	defer close(s.post)
	ctx := context.Background()
	if ps, ok := s.store.(PipelinedStore); ok {
		s.applyPipelined(ps)
		return
	}
	for c := range s.apply {
		switch {
		case c.epoch != s.epoch.Load():
			// Built on a batch that failed: even with nothing to write,
			// its answers (a resend's ack) may name what was not stored.
			c.err = errEarlierBatch
		case c.batch.Empty():
		default:
			start := time.Now()
			err := s.store.Apply(ctx, &c.batch)
			s.m.commitSeconds.Observe(time.Since(start).Seconds())
			s.m.batchRequests.Observe(float64(len(c.reqs)))
			if err != nil {
				s.log.Error("store apply failed", "err", err, "requests", len(c.reqs))
				c.err = err
				s.epoch.Add(1)
			}
		}
		s.post <- c
	}
}

// applyPipelined is applyLoop for a PipelinedStore: it starts each batch's
// Apply without waiting for the one before, at most Config.ApplyDepth at once,
// and hands the batches to the post stage in their order, each once its
// Apply is done.
func (s *Service) applyPipelined(ps PipelinedStore) {
	ctx := context.Background()
	slots := make(chan struct{}, s.cfg.ApplyDepth) // one per batch in the store
	inflight := make(chan *commit, s.cfg.ApplyDepth)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for c := range inflight {
			<-c.applied
			<-slots
			s.post <- c
		}
	}()
	for c := range s.apply {
		c.applied = make(chan struct{})
		slots <- struct{}{}
		if c.epoch != s.epoch.Load() {
			c.err = errEarlierBatch
			close(c.applied)
			inflight <- c
			continue
		}
		start := time.Now()
		ps.ApplyAsync(ctx, &c.batch, func(err error) {
			if !c.batch.Empty() {
				s.m.commitSeconds.Observe(time.Since(start).Seconds())
				s.m.batchRequests.Observe(float64(len(c.reqs)))
			}
			if err != nil {
				if !errors.Is(err, ErrEarlierBatch) {
					s.log.Error("store apply failed", "err", err, "requests", len(c.reqs))
				}
				// Even a batch failed for an earlier one's sake may have
				// been built after the caches were reset: what was built
				// on it must go too.
				c.err = err
				s.epoch.Add(1)
			}
			close(c.applied)
		})
		inflight <- c
	}
	close(inflight)
	<-forwarded
}

func (s *Service) resetCaches() {
	n := s.cfg.CacheEntries
	s.heads = newGenCache[string, uint64](n)
	s.metas = newGenCache[string, MessageMeta](n)
	s.clientIx = newGenCache[clientKey, string](n)
	s.senders = newGenCache[string, *idSet](max(n/100, 1000))
	s.groups = newGenCache[string, *groupState](s.cfg.GroupCacheEntries)
	s.ugroups = newGenCache[string, []string](max(n/10, 1000))
	s.state = newGenCache[string, stateVal](max(n/10, 1000))
}

// build turns c's requests into a batch and records what it adds in the
// caches, so that the batches built after it, before it is applied, see it.
func (s *Service) build(c *commit) {
	now := time.Now()
	c.batch.Reset()
	c.batch.Time = now
	c.arena = c.arena[:0]
	clear(c.eph)
	c.eph = c.eph[:0]
	clear(c.events)
	c.events = c.events[:0]
	c.err = nil
	c.results = c.results[:0]
	ctx := context.Background()

	// What this batch adds, so that requests within it see each other.
	b := &building{c: c, now: now, pending: map[string]int{}, newClient: map[clientKey]string{},
		events: s.wantEvents()}
	s.warm(ctx, c.reqs)

	for _, r := range c.reqs {
		var res Result
		switch r.Kind {
		case KindSend:
			res = s.addSend(ctx, b, r)
		case KindReceipt:
			res.Err = s.addReceipt(ctx, b, r)
		case KindGroup:
			res = s.groupOp(ctx, b, r)
		case KindMsgInfo:
			res = s.msgInfo(ctx, b, r)
		case KindTyping:
			res.Err = s.typing(ctx, b, r)
		case KindAsset:
			res.Err = s.addAsset(ctx, b, r)
		case KindAssetMedia:
			res.Err = s.setAssetMedia(ctx, b, r)
		case KindAssetDelete:
			res.Err = s.deleteAsset(ctx, b, r)
		case KindBlob:
			res.Err = s.blobStep(ctx, b, r)
		case KindProfile:
			res = s.profile(ctx, b, r)
		case KindForward:
			res = s.applyForward(ctx, b, r)
		default:
			res.Err = errors.New("switchboard: unknown request kind")
		}
		c.results = append(c.results, res)
	}
	err := s.finishGroups(ctx, b)
	if err == nil && s.cfg.Partitions > 1 {
		err = s.finishForwards(ctx, b)
	}
	if err != nil {
		// The receipts' watermarks are in memory but not in the batch:
		// fail the batch, which resets the caches.
		s.log.Error("building a batch failed", "err", err)
		for i := range c.results {
			if c.results[i].Err == nil {
				c.results[i] = Result{Err: err}
			}
		}
		c.batch.Reset()
		c.batch.Time = now
		c.eph = c.eph[:0]
		c.events = c.events[:0]
		s.epoch.Add(1)
		return
	}
	// Frames point into the arena, or into an earlier array of it that
	// growth left behind (still valid: nothing writes to it again).
	newClient := b.newClient
	for k, id := range newClient {
		s.clientIx.put(k, id)
	}
	for _, m := range c.batch.Messages {
		s.metas.put(m.ID, m)
	}
}

func (s *Service) nextSeq(ctx context.Context, user string) (uint64, error) {
	seq, ok := s.heads.get(user)
	if !ok {
		var err error
		if seq, err = s.store.LastSeq(ctx, user); err != nil {
			return 0, err
		}
	}
	seq++
	s.heads.put(user, seq)
	return seq, nil
}

// building is what one batch adds while it is built, so that the
// requests within it see each other.
type building struct {
	c         *commit
	now       time.Time
	pending   map[string]int // msg id -> index in batch.Messages
	newClient map[clientKey]string
	touched   []*groupState   // groups whose receipts moved (groups.go)
	dirty     []*groupState   // groups whose state records must be written
	users     map[string]bool // users whose list of groups changed
	fatal     error           // a store failure midway through a request: fail the batch
	events    bool            // build analytics events: someone consumes them
	fwd       map[int]*fwd    // partitioned: entries for other partitions' users, by partition
	scratch   []byte          // a frame's tail, before addEntry copies it
}

func (s *Service) lookupMeta(ctx context.Context, b *building, id string) (MessageMeta, bool, error) {
	c := b.c
	if i, ok := b.pending[id]; ok {
		return c.batch.Messages[i], true, nil
	}
	if m, ok := s.metas.get(id); ok {
		return m, true, nil
	}
	m, ok, err := s.store.Message(ctx, id)
	if ok {
		s.metas.put(id, m)
	}
	return m, ok, err
}

func (s *Service) addSend(ctx context.Context, b *building, r *Request) Result {
	c := b.c
	key := clientKey{r.From, string(r.ClientID)}
	// Idempotency: the same client id from the same user is the same message.
	id, ok := b.newClient[key]
	if !ok {
		id, ok = s.clientIx.get(key)
	}
	if ok {
		if m, found, err := s.lookupMeta(ctx, b, id); err != nil {
			return Result{Err: err}
		} else if found {
			return Result{MsgID: m.ID, TS: m.TS, Dup: true}
		}
	} else if seen, err := s.maybeSent(ctx, key.from, r.ClientID); err != nil {
		return Result{Err: err}
	} else if seen {
		m, found, err := s.store.MessageByClientID(ctx, key.from, key.id)
		if err != nil {
			return Result{Err: err}
		}
		if found {
			s.clientIx.put(key, m.ID)
			return Result{MsgID: m.ID, TS: m.TS, Dup: true}
		}
	}

	if len(r.Group) > 0 {
		return s.addGroupSend(ctx, b, r, key)
	}
	var attachment []byte
	var asset *assetRecord
	if len(r.AssetID) > 0 {
		var err error
		if attachment, asset, err = s.attach(ctx, r); err != nil {
			return Result{Err: err}
		}
	}
	to := string(r.To)
	// The recipient's seq, when this partition owns their inbox; a
	// forwarded entry gets its seq from the owner (m.Seq is 0).
	var seq uint64
	if s.owns(to) {
		var err error
		if seq, err = s.nextSeq(ctx, to); err != nil {
			return Result{Err: err}
		}
	}
	m := s.addMessage(b, r, key, to, seq, "", attachment)
	if asset != nil {
		if err := s.grant(b, asset, to, nil); err != nil {
			b.fatal = err
			return Result{Err: err}
		}
	}
	if seq != 0 {
		s.addHead(c, to, seq, "msg", m.ID)
	} else {
		b.forward(PartitionOf(to, s.cfg.Partitions), to, "msg", nil, m.ID)
	}
	if to != r.From { // the copy in the sender's inbox, for their other devices
		if err := s.addEntry(ctx, b, r.From, "msg", nil, m.ID); err != nil {
			b.fatal = err
			return Result{Err: err}
		}
		if e := &c.batch.Entries[len(c.batch.Entries)-1]; seq == 0 && e.User == r.From {
			c.batch.Messages[b.pending[m.ID]].EchoSeq = e.Seq
		}
	}
	if b.events {
		b.analytics(r.From, NewEvent("message.sent", r.From, m.TS).Str("msg_id", m.ID).Str("to", to).Int("bytes", int64(len(r.Body))))
	}
	return Result{MsgID: m.ID, TS: m.TS}
}

// addMessage records a new message of r to inbox to (a user's, or a
// group's log) at seq, and its frame's tail as a shared part keyed by its
// id, for the entries that addHead adds.
func (s *Service) addMessage(b *building, r *Request, key clientKey, to string, seq uint64, group string, attachment []byte) MessageMeta {
	c := b.c
	m := MessageMeta{ID: s.ids.Next(b.now), From: r.From, To: to, ClientID: key.id,
		TS: b.now.UnixMilli(), Seq: seq, Status: StatusSent}
	b.pending[m.ID] = len(c.batch.Messages)
	c.batch.Messages = append(c.batch.Messages, m)
	b.newClient[key] = m.ID
	wireTo := to
	if group != "" {
		wireTo = group
	}
	n := len(c.arena)
	c.arena = protocol.AppendMsgTailWith(c.arena, m.ID, m.From, wireTo, group, r.Body, attachment, m.TS)
	c.batch.Shared = append(c.batch.Shared, SharedPart{Key: m.ID, Data: c.arena[n:]})
	return m
}

// addHead adds an entry for user at seq whose frame is the head of a typ
// frame followed by the shared part key.
func (s *Service) addHead(c *commit, user string, seq uint64, typ, key string) {
	n := len(c.arena)
	c.arena = protocol.AppendHead(c.arena, typ, seq)
	c.batch.Entries = append(c.batch.Entries, Entry{User: user, Seq: seq, Frame: c.arena[n:], Shared: key})
}

// idSet holds the hashes of one sender's client ids.
type idSet struct{ h map[uint64]struct{} }

// maybeSent reports whether from may have sent clientID before: false is
// certain, true must be confirmed with the store. It also records
// clientID, which the caller is about to store if it is new.
func (s *Service) maybeSent(ctx context.Context, from string, clientID []byte) (bool, error) {
	if s.lister == nil {
		return true, nil
	}
	set, ok := s.senders.get(from)
	if !ok {
		set = &idSet{h: make(map[uint64]struct{})}
		err := s.lister.ClientIDs(ctx, from, func(id []byte) {
			set.h[maphash.Bytes(s.seed, id)] = struct{}{}
		})
		if err != nil {
			return false, err
		}
		s.senders.put(from, set)
	}
	h := maphash.Bytes(s.seed, clientID)
	if _, seen := set.h[h]; seen {
		return true, nil
	}
	set.h[h] = struct{}{} // a failed Apply leaves it behind: it only costs a lookup
	return false, nil
}

// addReceipt advances the status of the messages r names that were sent to
// r.From, and adds one receipt entry to each of their senders' inboxes.
// Ids that are unknown, expired, not addressed to r.From or already at
// that status are skipped: receipts are idempotent. Group messages move
// r.From's watermarks in their group instead (groups.go).
func (s *Service) addReceipt(ctx context.Context, b *building, r *Request) error {
	c := b.c
	type group struct {
		sender string
		ids    []string
	}
	var groups []group
	for _, raw := range r.MsgIDs {
		m, ok, err := s.lookupMeta(ctx, b, string(raw))
		if err != nil {
			return err
		}
		if ok && isGroupInbox(m.To) {
			if !s.owns(m.To) {
				// The group's watermarks are its partition's.
				b.forwardGroupReceipt(PartitionOf(m.To[len(groupInboxPrefix):], s.cfg.Partitions), r.From, m.ID, r.Status)
				continue
			}
			if err := s.groupReceipt(ctx, b, r.From, &m, r.Status); err != nil {
				return err
			}
			continue
		}
		if !ok || m.To != r.From || m.Status >= r.Status {
			continue
		}
		m.Status = r.Status
		if i, ok := b.pending[m.ID]; ok {
			c.batch.Messages[i] = m
		} else {
			b.pending[m.ID] = len(c.batch.Messages)
			c.batch.Messages = append(c.batch.Messages, m)
		}
		g := -1
		for i := range groups {
			if groups[i].sender == m.From {
				g = i
				break
			}
		}
		if g < 0 {
			groups = append(groups, group{sender: m.From})
			g = len(groups) - 1
		}
		groups[g].ids = append(groups[g].ids, m.ID)
	}
	if n := len(r.MsgIDs); n > 0 && b.events {
		b.analytics(r.From, NewEvent("receipt", r.From, b.now.UnixMilli()).Str("status", r.Status.String()).Int("msg_ids", int64(n)))
	}
	for _, g := range groups {
		b.scratch = protocol.AppendReceipt(b.scratch[:0], 0, r.Status.String(), g.ids, r.From, b.now.UnixMilli())
		if err := s.addEntry(ctx, b, g.sender, "receipt", b.scratch[headLen("receipt", 0):], ""); err != nil {
			return err
		}
	}
	return nil
}

// postLoop answers the requests of applied batches and publishes their
// entries to the nodes that hold the recipients.
func (s *Service) postLoop() {
	defer s.wg.Done()
	if s.relay != nil {
		defer s.relay.close()
	}
	ctx := context.Background()
	var p publisher
	for c := range s.post {
		for i, r := range c.reqs {
			res := c.results[i]
			if c.err != nil && res.Err == nil {
				res = Result{Err: c.err}
			}
			if r.Kind == KindSend && res.Err == nil {
				if res.Dup {
					s.m.duplicates.Inc()
				} else {
					s.m.messages.Inc()
				}
			}
			r.Done.Complete(r, res)
		}
		if c.err == nil && s.relay != nil {
			s.relay.add(c) // before the delivery, which may take its budget
		}
		if c.err == nil {
			// Live delivery is best effort and bounded: with the
			// directory or the bus down, lookups and publishes fail
			// once the batch's budget is spent, and the entries wait in
			// the inboxes for the next sync or gap fill, so the post
			// stage (and Close) never waits on them for long.
			dctx, cancel := context.WithTimeout(ctx, deliverBudget)
			s.deliver(dctx, c, &p)
			cancel()
			for _, e := range c.events {
				if err := s.bus.Emit(StreamEvents, e.user, e.value); err != nil {
					s.log.Warn("analytics event lost", "err", err)
				}
			}
		}
		clear(c.reqs)
		s.free <- c
	}
}

// deliverBudget bounds the live delivery of one batch.
const deliverBudget = 5 * time.Second

// publisher is the post stage's reusable working memory for deliveries.
type publisher struct {
	routes []router.Route
	nodes  []string
	byNode map[string]*Delivery
	users  []string            // prefetch: the batch's distinct users
	seen   map[string]struct{} // prefetch: dedupe
}

// prefetch hands the distinct users of c's entries and ephemeral frames
// to a directory that can load their routes at once (router.Prefetcher),
// so that the lookups of deliver, one entry after another, are local.
func (p *publisher) prefetch(ctx context.Context, s *Service, c *commit) {
	pf, ok := s.dir.(router.Prefetcher)
	if !ok {
		return
	}
	if p.seen == nil {
		p.seen = make(map[string]struct{})
	}
	add := func(u string) {
		if _, ok := p.seen[u]; !ok {
			p.seen[u] = struct{}{}
			p.users = append(p.users, u)
		}
	}
	for i := range c.batch.Entries {
		if u := c.batch.Entries[i].User; !isPseudo(u) {
			add(u)
		}
	}
	for _, e := range c.eph {
		for _, u := range e.users {
			add(u)
		}
	}
	if len(p.users) > 1 {
		if err := pf.Prefetch(ctx, p.users); err != nil {
			s.log.Debug("route prefetch failed; lookups read one by one", "err", err)
		}
	}
	clear(p.seen)
	clear(p.users)
	p.users = p.users[:0]
}

// deliver publishes the entries of an applied batch, and its ephemeral
// frames, to the nodes that hold their users. Entries that share a part
// (a message and its copies) go as one Delivery per node, the part once.
func (s *Service) deliver(ctx context.Context, c *commit, p *publisher) {
	if p.byNode == nil {
		p.byNode = make(map[string]*Delivery)
	}
	p.prefetch(ctx, s, c)
	entries := c.batch.Entries
	part := 0 // runs of shared entries come in the order of their parts
	for i := 0; i < len(entries); {
		j := i + 1
		if key := entries[i].Shared; key != "" {
			for j < len(entries) && entries[j].Shared == key {
				j++
			}
		}
		var shared []byte
		if key := entries[i].Shared; key != "" {
			for part < len(c.batch.Shared) && c.batch.Shared[part].Key != key {
				part++
			}
			if part == len(c.batch.Shared) {
				part = 0
				shared = c.batch.sharedPart(key)
			} else {
				shared = c.batch.Shared[part].Data
			}
		}
		for _, e := range entries[i:j] {
			if !isPseudo(e.User) {
				p.add(ctx, s, e.User, Item{User: e.User, Seq: e.Seq, Head: e.Frame})
			}
		}
		p.publish(ctx, s, shared)
		i = j
	}
	for _, e := range c.eph {
		for _, u := range e.users {
			p.add(ctx, s, u, Item{User: u, Head: e.frame})
		}
		p.publish(ctx, s, nil)
	}
}

// add queues it for every node that holds user.
func (p *publisher) add(ctx context.Context, s *Service, user string, it Item) {
	var err error
	p.routes, err = s.dir.Lookup(ctx, user, p.routes[:0])
	if err != nil {
		s.log.Warn("route lookup failed; the entry waits in the inbox", "err", err)
		return
	}
	p.nodes = p.nodes[:0]
	for _, rt := range p.routes {
		if slices.Contains(p.nodes, rt.Node) {
			continue
		}
		p.nodes = append(p.nodes, rt.Node)
		d := p.byNode[rt.Node]
		if d == nil {
			d = &Delivery{}
			p.byNode[rt.Node] = d
		}
		d.Items = append(d.Items, it)
	}
}

// publish sends what add queued, with shared as the common part.
func (p *publisher) publish(ctx context.Context, s *Service, shared []byte) {
	for n, d := range p.byNode {
		if len(d.Items) == 0 {
			continue
		}
		d.Shared = shared
		d.Epoch, d.Partition = s.cfg.Epoch, s.cfg.Partition
		if err := s.bus.Publish(ctx, n, d); err != nil {
			s.log.Warn("publish failed; the entries wait in the inbox", "node", n, "err", err)
		}
		clear(d.Items)
		d.Items = d.Items[:0]
		d.Shared = nil
	}
	if len(p.byNode) > 1024 {
		clear(p.byNode) // nodes come and go: do not keep every one ever seen
	}
}

// sharedPart returns the data of the shared part key.
func (b *Batch) sharedPart(key string) []byte {
	for i := len(b.Shared) - 1; i >= 0; i-- {
		if b.Shared[i].Key == key {
			return b.Shared[i].Data
		}
	}
	return nil
}

func (s *Service) expireLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	for {
		n, err := s.store.Expire(context.Background(), time.Now().Add(-s.cfg.Retention))
		if err != nil {
			s.log.Error("expiring old entries failed", "err", err)
		} else if n > 0 {
			s.log.Info("expired old entries", "batches", n)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}
