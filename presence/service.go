package presence

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/protocol"
)

// numShards is how many locks the users are spread over.
const numShards = 64

// flushBatch bounds the users written by one Store.SaveLastSeen call.
const flushBatch = 4096

// Service keeps every user's presence (connections, online, last seen),
// applies privacy and contacts, and pushes presence frames to the
// connections that watch a user. See the package documentation for the
// model.
//
// Users are spread over 64 shards, each with one mutex that guards its
// users' state; no store call is made with a shard locked. A user's
// subscribers are indexed on the user (the reverse index), so a change
// costs one pass over them, with each distinct frame encoded once into a
// buffer of the shard.
type Service struct {
	cfg   Config
	store Store
	push  Pusher
	log   *slog.Logger

	seed     maphash.Seed
	shards   [numShards]shard
	perShard int // idle users kept per shard (Config.MaxUsers)

	closed   atomic.Bool
	reloads  sync.WaitGroup  // settingsChanged's goroutines
	flushReq chan chan error // flushNow's requests to the flusher
	stop     chan struct{}
	done     chan struct{} // closed when the flusher has returned

	// Owned by whoever flushes: the flusher goroutine, then Close.
	flushSeen []Seen
	flushEnts []*entry
}

type shard struct {
	mu     sync.Mutex
	users  map[string]*entry
	dirty  []*entry  // users whose last seen waits for the flusher
	frames [4][]byte // publish's frames, one per mask
}

// entry is one user in memory.
type entry struct {
	id string

	// view is the user's privacy and contacts, nil until loaded from the
	// store. It is replaced, never modified, by the user's own privacy and
	// contacts calls (under social), and read without a lock.
	view   atomic.Pointer[view]
	social sync.Mutex // serializes the user's privacy and contacts changes

	// Guarded by the shard's mu.
	pins     int32                // calls in progress that need the entry to stay
	active   int32                // connections in conns that are active
	conns    []connRef            // open connections
	lastSeen int64                // unix ms; 0: never
	dirty    bool                 // lastSeen is not yet saved
	queued   bool                 // in the shard's dirty list
	subs     map[*subscriber]mask // the connections watching this user
	own      []*subscriber        // this user's connections that watch users

	reloading, reloadAgain bool // settingsChanged: a reload runs; another event came during it
}

type connRef struct {
	node   string
	id     uint64
	active bool
}

// view is one user's settings as the visibility rules read them.
type view struct {
	privacy  Privacy
	contacts []string // sorted; never modified once published
}

// defaultView is the view of every user with default settings and no
// contacts.
var defaultView view

func (v *view) has(user string) bool {
	_, ok := slices.BinarySearch(v.contacts, user)
	return ok
}

// subscriber is one connection that watches users.
type subscriber struct {
	conn  Conn
	owner *entry // conn.User's entry; kept in memory while it has subscribers

	mu      sync.Mutex          // serializes the connection's subscription changes
	targets map[*entry]struct{} // guarded by mu; each target's subs holds this subscriber
	dead    bool                // guarded by mu: removed from owner.own
}

// mask is the parts of a user's presence that one subscriber may see.
type mask uint8

const (
	seeOnline mask = 1 << iota
	seeLastSeen
)

// maskFor applies the reciprocal rules: viewer sees a part of target when
// target's setting for it admits viewer and viewer's admits target.
func maskFor(viewer string, vv *view, target string, tv *view) mask {
	if viewer == target {
		return seeOnline | seeLastSeen
	}
	viewerInTarget, targetInViewer := tv.has(viewer), vv.has(target)
	var m mask
	if tv.privacy.Online.admits(viewerInTarget) && vv.privacy.Online.admits(targetInViewer) {
		m |= seeOnline
	}
	if tv.privacy.LastSeen.admits(viewerInTarget) && vv.privacy.LastSeen.admits(targetInViewer) {
		m |= seeLastSeen
	}
	return m
}

// state is a user's presence before privacy.
type state struct {
	online   bool
	lastSeen int64 // 0: never
}

func (e *entry) state() state { return state{e.active > 0, e.lastSeen} }

// shown is what one presence frame says.
type shown struct {
	online, hasOnline bool
	lastSeen          int64 // 0: not in the frame
}

func (st state) show(m mask) shown {
	var f shown
	if m&seeOnline != 0 {
		f.online, f.hasOnline = st.online, true
	}
	if m&seeLastSeen != 0 {
		f.lastSeen = st.lastSeen
	}
	return f
}

func (f shown) append(dst []byte, user string) []byte {
	return protocol.AppendPresence(dst, user, f.online, f.hasOnline, f.lastSeen, f.lastSeen != 0)
}

// New returns a Service that keeps settings, contacts and last seen in
// store and pushes frames through push. It starts the last-seen flusher;
// call Close to stop it. log may be nil.
func New(cfg Config, store Store, push Pusher, log *slog.Logger) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || push == nil {
		return nil, errors.New("presence: New needs a Store and a Pusher")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, store: store, push: push, log: log,
		seed:     maphash.MakeSeed(),
		perShard: max(1, (cfg.MaxUsers+numShards-1)/numShards),
		flushReq: make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].users = make(map[string]*entry)
	}
	go s.flushLoop()
	return s, nil
}

// Config returns the Service's configuration with defaults filled in.
// Safe for concurrent use.
func (s *Service) Config() Config { return s.cfg }

func (s *Service) shardOf(user string) *shard {
	return &s.shards[maphash.String(s.seed, user)%numShards]
}

// entry returns user's entry, creating it (not loaded) if needed, and
// dropping idle users if the shard is full. sh.mu must be held.
func (sh *shard) entry(s *Service, user string) *entry {
	if e := sh.users[user]; e != nil {
		return e
	}
	if len(sh.users) >= s.perShard {
		sh.evict(len(sh.users) - s.perShard + 1)
	}
	e := &entry{id: strings.Clone(user)}
	sh.users[e.id] = e
	return e
}

// evict drops up to n idle users among the first 16 that map iteration
// (which starts at a random place) visits, so that it costs O(1) even when
// no user is idle. Each insertion into a full shard and each user the
// flusher cleans calls it, so a shard's idle users shrink back to the
// bound quickly.
func (sh *shard) evict(n int) {
	probes := 0
	for id, e := range sh.users {
		if e.idle() {
			delete(sh.users, id)
			if n--; n == 0 {
				return
			}
		}
		if probes++; probes == 16 {
			return
		}
	}
}

// idle reports whether e may leave memory: everything it holds is in the
// store and nothing refers to it.
func (e *entry) idle() bool {
	return e.pins == 0 && len(e.conns) == 0 && !e.dirty && len(e.subs) == 0 && len(e.own) == 0
}

// acquire returns user's entry, loaded from the store if it was not, and
// pinned in memory until release. It blocks on the store at most once per
// user while the user stays in memory.
func (s *Service) acquire(ctx context.Context, user string) (*entry, error) {
	sh := s.shardOf(user)
	sh.mu.Lock()
	e := sh.entry(s, user)
	e.pins++
	loaded := e.view.Load() != nil
	sh.mu.Unlock()
	if loaded {
		return e, nil
	}
	// The pin keeps e in memory, so a store write made after this read
	// (which needs e loaded) cannot be overwritten by it: the first load
	// wins, later ones are dropped.
	rec, _, err := s.store.Load(ctx, user)
	if err == nil && !rec.Privacy.Valid() {
		err = fmt.Errorf("invalid privacy %v", rec.Privacy)
	}
	if err != nil {
		s.release(e)
		return nil, fmt.Errorf("presence: load %q: %w", user, err)
	}
	v := &defaultView // most users: shared, as views are never modified
	if rec.Privacy != (Privacy{}) || len(rec.Contacts) > 0 {
		contacts := rec.Contacts
		if !slices.IsSorted(contacts) {
			contacts = slices.Sorted(slices.Values(contacts))
		}
		v = &view{privacy: rec.Privacy, contacts: slices.Compact(contacts)}
	}
	sh.mu.Lock()
	if e.view.Load() == nil {
		e.view.Store(v)
		// Events handled before the load count: last seen only grows.
		e.lastSeen = max(e.lastSeen, rec.LastSeen)
	}
	sh.mu.Unlock()
	return e, nil
}

func (s *Service) release(e *entry) {
	sh := s.shardOf(e.id)
	sh.mu.Lock()
	e.pins--
	sh.mu.Unlock()
}

// Handle applies one event. It never blocks on the store: it updates the
// user's state in memory, pushes a frame to each subscriber whose visible
// part changed, and leaves the last seen to the flusher. Events of one
// connection must be handled in order; events with an invalid user or kind
// are ignored, and so is every event after Close. Safe for concurrent use.
func (s *Service) Handle(ev Event) {
	if s.closed.Load() || !validUser(ev.User) || ev.Kind < Connected || ev.Kind > Settings {
		return
	}
	if ev.Kind == Settings {
		s.settingsChanged(ev.User)
		return
	}
	sh := s.shardOf(ev.User)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var e *entry
	if ev.Kind == Disconnected {
		if e = sh.users[ev.User]; e == nil {
			return // no connection to remove
		}
	} else {
		e = sh.entry(s, ev.User)
	}
	old := e.state()
	i := slices.IndexFunc(e.conns, func(c connRef) bool { return c.id == ev.Conn && c.node == ev.Node })
	userEvent := false
	switch ev.Kind {
	case Connected:
		if i < 0 {
			e.conns = append(e.conns, connRef{node: ev.Node, id: ev.Conn})
		}
	case Active, Inactive:
		// A connection whose Connected was missed is taken as connected.
		if i < 0 {
			e.conns = append(e.conns, connRef{node: ev.Node, id: ev.Conn})
			i = len(e.conns) - 1
		}
		if c := &e.conns[i]; c.active != (ev.Kind == Active) {
			c.active = !c.active
			if c.active {
				e.active++
			} else {
				e.active--
			}
		}
		userEvent = true
	case Disconnected:
		if i < 0 {
			return
		}
		if e.conns[i].active {
			e.active--
			userEvent = true
		}
		last := len(e.conns) - 1
		e.conns[i] = e.conns[last]
		e.conns[last] = connRef{}
		if e.conns = e.conns[:last]; last == 0 {
			e.conns = nil
		}
	}
	if userEvent && ev.TS > e.lastSeen {
		e.lastSeen = ev.TS
		if s.cfg.Node != "" && ev.Node != s.cfg.Node {
			s.publish(sh, e, old) // another node's connection: it writes
			return
		}
		e.dirty = true
		if !e.queued {
			e.queued = true
			sh.dirty = append(sh.dirty, e)
		}
	}
	s.publish(sh, e, old)
}

// publish pushes e's presence to each subscriber whose visible part differs
// from old, encoding each distinct frame once. sh.mu must be held.
func (s *Service) publish(sh *shard, e *entry, old state) {
	cur := e.state()
	if cur == old || len(e.subs) == 0 {
		return
	}
	var encoded [4]bool
	for sb, m := range e.subs {
		if cur.show(m) == old.show(m) {
			continue // nothing this subscriber may see has changed
		}
		if !encoded[m] {
			sh.frames[m] = cur.show(m).append(sh.frames[m][:0], e.id)
			encoded[m] = true
		}
		s.push.Push(sb.conn, sh.frames[m])
	}
}

// Online reports whether user has an active connection now, whatever
// anyone may see of it. It reads memory only. Safe for concurrent use.
func (s *Service) Online(user string) bool {
	sh := s.shardOf(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[user]
	return e != nil && e.active > 0
}

// LastSeen returns user's last seen (unix ms), whatever anyone may see of
// it: the time of their latest user event, including those not yet saved.
// found is false for a user never seen. It reads the store only the first
// time the user is needed in memory. Safe for concurrent use.
func (s *Service) LastSeen(ctx context.Context, user string) (lastSeen int64, found bool, err error) {
	if s.closed.Load() {
		return 0, false, ErrClosed
	}
	if !validUser(user) {
		return 0, false, ErrInvalidUser
	}
	e, err := s.acquire(ctx, user)
	if err != nil {
		return 0, false, err
	}
	sh := s.shardOf(user)
	sh.mu.Lock()
	lastSeen = e.lastSeen
	e.pins--
	sh.mu.Unlock()
	return lastSeen, lastSeen != 0, nil
}

// Subscribe adds users to what sub watches and pushes to sub, for each user
// it did not already watch, one frame with what sub may see of that user
// now (a frame with neither online nor last_seen if nothing); later changes
// are pushed as they happen. Duplicates in users count once. If sub would
// then watch more than Config.MaxSubscriptions users it returns
// ErrTooManySubscriptions and subscribes none of them. It may block on the
// store to load users not in memory.
//
// Safe for concurrent use. Drop must be called when the connection closes,
// after its last Subscribe has returned: a Subscribe that runs after Drop
// subscribes again.
func (s *Service) Subscribe(ctx context.Context, sub Conn, users []string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !validUser(sub.User) {
		return fmt.Errorf("%w: subscriber %q", ErrInvalidUser, sub.User)
	}
	if len(users) == 0 {
		return nil
	}
	users = slices.Clone(users)
	slices.Sort(users)
	users = slices.Compact(users)
	for _, u := range users {
		if !validUser(u) {
			return fmt.Errorf("%w: %q", ErrInvalidUser, u)
		}
	}
	if len(users) > s.cfg.MaxSubscriptions {
		return ErrTooManySubscriptions
	}

	owner, err := s.acquire(ctx, sub.User)
	if err != nil {
		return err
	}
	defer s.release(owner)
	targets := make([]*entry, 0, len(users))
	defer func() {
		for _, t := range targets {
			s.release(t)
		}
	}()
	for _, u := range users {
		t, err := s.acquire(ctx, u)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}

	sb := s.lockSubscriber(sub, true)
	defer sb.mu.Unlock()
	n := len(sb.targets)
	for _, t := range targets {
		if _, ok := sb.targets[t]; !ok {
			n++
		}
	}
	if n > s.cfg.MaxSubscriptions {
		if len(sb.targets) == 0 {
			s.dropLocked(sb)
		}
		return ErrTooManySubscriptions
	}
	var frame []byte
	for _, t := range targets {
		if _, ok := sb.targets[t]; ok {
			continue
		}
		sb.targets[t] = struct{}{}
		sh := s.shardOf(t.id)
		sh.mu.Lock()
		// The views are read with the target locked, so that a privacy or
		// contacts change re-evaluating this edge cannot be missed (see
		// reevaluate).
		m := maskFor(sub.User, owner.view.Load(), t.id, t.view.Load())
		if t.subs == nil {
			t.subs = make(map[*subscriber]mask)
		}
		t.subs[sb] = m
		frame = t.state().show(m).append(frame[:0], t.id)
		s.push.Push(sb.conn, frame)
		sh.mu.Unlock()
	}
	return nil
}

// lockSubscriber returns c's subscriber with its mu held, or nil if it has
// none and create is false. With create, c.User's entry must be pinned.
func (s *Service) lockSubscriber(c Conn, create bool) *subscriber {
	sh := s.shardOf(c.User)
	for {
		sh.mu.Lock()
		owner := sh.users[c.User]
		var sb *subscriber
		if owner != nil {
			if i := slices.IndexFunc(owner.own, func(x *subscriber) bool { return x.conn == c }); i >= 0 {
				sb = owner.own[i]
			}
		}
		if sb == nil {
			if !create || owner == nil {
				sh.mu.Unlock()
				return nil
			}
			sb = &subscriber{conn: c, owner: owner, targets: make(map[*entry]struct{})}
			owner.own = append(owner.own, sb)
		}
		sh.mu.Unlock()
		sb.mu.Lock()
		if !sb.dead {
			return sb
		}
		sb.mu.Unlock() // dropped meanwhile: look again
	}
}

// dropLocked removes all of sb's subscriptions and sb itself. sb.mu must
// be held.
func (s *Service) dropLocked(sb *subscriber) {
	for t := range sb.targets {
		sh := s.shardOf(t.id)
		sh.mu.Lock()
		if delete(t.subs, sb); len(t.subs) == 0 {
			t.subs = nil
		}
		sh.mu.Unlock()
	}
	sb.targets = nil
	sb.dead = true
	owner := sb.owner
	sh := s.shardOf(owner.id)
	sh.mu.Lock()
	if i := slices.Index(owner.own, sb); i >= 0 {
		owner.own = slices.Delete(owner.own, i, i+1)
	}
	if len(owner.own) == 0 {
		owner.own = nil
	}
	sh.mu.Unlock()
}

// Unsubscribe removes users from what sub watches; users it does not watch
// are ignored. Nothing is pushed. Safe for concurrent use.
func (s *Service) Unsubscribe(sub Conn, users []string) {
	sb := s.lockSubscriber(sub, false)
	if sb == nil {
		return
	}
	defer sb.mu.Unlock()
	for _, u := range users {
		sh := s.shardOf(u)
		sh.mu.Lock()
		if t := sh.users[u]; t != nil {
			if _, ok := sb.targets[t]; ok {
				delete(sb.targets, t)
				if delete(t.subs, sb); len(t.subs) == 0 {
					t.subs = nil
				}
			}
		}
		sh.mu.Unlock()
	}
	if len(sb.targets) == 0 {
		s.dropLocked(sb)
	}
}

// Drop removes every subscription of sub; call it when the connection
// closes. Safe for concurrent use.
func (s *Service) Drop(sub Conn) {
	if sb := s.lockSubscriber(sub, false); sb != nil {
		s.dropLocked(sb)
		sb.mu.Unlock()
	}
}

// reevaluate recomputes what every subscriber of e, and every user that
// e's connections watch, may see after e's view changed, and pushes a
// frame where that changed. e.social must be held.
//
// Every edge's mask is written with its target locked, from views read
// under that lock; e's new view is published before reevaluate runs. So an
// edge created concurrently either reads the new view or exists by the
// time reevaluate locks its target.
func (s *Service) reevaluate(e *entry) {
	sh := s.shardOf(e.id)
	sh.mu.Lock()
	ev := e.view.Load()
	st := e.state()
	var frame []byte
	for sb, m := range e.subs {
		nm := maskFor(sb.conn.User, sb.owner.view.Load(), e.id, ev)
		if nm == m {
			continue
		}
		e.subs[sb] = nm
		if f := st.show(nm); f != st.show(m) {
			frame = f.append(frame[:0], e.id)
			s.push.Push(sb.conn, frame)
		}
	}
	own := slices.Clone(e.own)
	sh.mu.Unlock()

	for _, sb := range own {
		sb.mu.Lock()
		for t := range sb.targets {
			tsh := s.shardOf(t.id)
			tsh.mu.Lock()
			m := t.subs[sb]
			nm := maskFor(e.id, e.view.Load(), t.id, t.view.Load())
			if nm != m {
				t.subs[sb] = nm
				st := t.state()
				if f := st.show(nm); f != st.show(m) {
					frame = f.append(frame[:0], t.id)
					s.push.Push(sb.conn, frame)
				}
			}
			tsh.mu.Unlock()
		}
		sb.mu.Unlock()
	}
}

// settingsChanged reloads user's privacy and contacts, which another
// service (another gateway) changed, if user is in memory here, and
// re-evaluates what their watchers and the users they watch may see. The
// store is read on a goroutine of its own: Handle never blocks on it.
// Changes are rare (a person changing a setting), and one reload per
// user runs at a time; an event that comes during one makes it run once
// more, so the last reload reads what the last event announced.
func (s *Service) settingsChanged(user string) {
	sh := s.shardOf(user)
	sh.mu.Lock()
	e := sh.users[user]
	if e == nil {
		sh.mu.Unlock()
		return // loaded afresh from the store when next needed
	}
	e.pins++
	if e.reloading {
		e.reloadAgain = true
		e.pins--
		sh.mu.Unlock()
		return
	}
	e.reloading = true
	sh.mu.Unlock()
	s.reloads.Add(1)
	go func() {
		defer s.reloads.Done()
		for {
			if err := s.reload(e); err != nil {
				s.log.Warn("presence: reloading changed settings failed; they apply here from the user's next change", "user", e.id, "err", err)
			}
			sh.mu.Lock()
			if !e.reloadAgain || s.closed.Load() {
				e.reloading, e.reloadAgain = false, false
				e.pins--
				sh.mu.Unlock()
				return
			}
			e.reloadAgain = false
			sh.mu.Unlock()
		}
	}()
}

// reload reads e's privacy and contacts from the store and, if they
// differ from e's view, publishes them and re-evaluates.
func (s *Service) reload(e *entry) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.acquire(ctx, e.id); err != nil { // loads e if it was not
		return err
	}
	defer s.release(e)
	e.social.Lock()
	defer e.social.Unlock()
	rec, _, err := s.store.Load(ctx, e.id)
	if err == nil && !rec.Privacy.Valid() {
		err = fmt.Errorf("invalid privacy %v", rec.Privacy)
	}
	if err != nil {
		return err
	}
	contacts := rec.Contacts
	if !slices.IsSorted(contacts) {
		contacts = slices.Sorted(slices.Values(contacts))
	}
	contacts = slices.Compact(contacts)
	if len(contacts) == 0 {
		contacts = nil
	}
	v := e.view.Load()
	if v.privacy == rec.Privacy && slices.Equal(v.contacts, contacts) {
		return nil
	}
	nv := &defaultView
	if rec.Privacy != (Privacy{}) || len(contacts) > 0 {
		nv = &view{privacy: rec.Privacy, contacts: contacts}
	}
	e.view.Store(nv)
	s.reevaluate(e)
	return nil
}

// Privacy returns user's privacy settings. It may block on the store.
// Safe for concurrent use.
func (s *Service) Privacy(ctx context.Context, user string) (Privacy, error) {
	if s.closed.Load() {
		return Privacy{}, ErrClosed
	}
	if !validUser(user) {
		return Privacy{}, ErrInvalidUser
	}
	e, err := s.acquire(ctx, user)
	if err != nil {
		return Privacy{}, err
	}
	defer s.release(e)
	return e.view.Load().privacy, nil
}

// SetPrivacy changes user's settings: lastSeen and online, each left
// unchanged when nil. It returns the settings now in force. The change is
// durable before SetPrivacy returns; then every subscriber of the user,
// and every connection of the user, whose visible view changed is pushed a
// frame. Safe for concurrent use.
func (s *Service) SetPrivacy(ctx context.Context, user string, lastSeen, online *Visibility) (Privacy, error) {
	if s.closed.Load() {
		return Privacy{}, ErrClosed
	}
	if !validUser(user) {
		return Privacy{}, ErrInvalidUser
	}
	if lastSeen != nil && !lastSeen.Valid() || online != nil && !online.Valid() {
		return Privacy{}, ErrInvalidVisibility
	}
	e, err := s.acquire(ctx, user)
	if err != nil {
		return Privacy{}, err
	}
	defer s.release(e)
	e.social.Lock()
	defer e.social.Unlock()
	v := e.view.Load()
	p := v.privacy
	if lastSeen != nil {
		p.LastSeen = *lastSeen
	}
	if online != nil {
		p.Online = *online
	}
	if p == v.privacy {
		return p, nil
	}
	if err := s.store.SavePrivacy(ctx, user, p); err != nil {
		return v.privacy, fmt.Errorf("presence: save privacy of %q: %w", user, err)
	}
	e.view.Store(&view{privacy: p, contacts: v.contacts})
	s.reevaluate(e)
	return p, nil
}

// Contacts returns user's contacts, sorted. It may block on the store.
// Safe for concurrent use.
func (s *Service) Contacts(ctx context.Context, user string) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if !validUser(user) {
		return nil, ErrInvalidUser
	}
	e, err := s.acquire(ctx, user)
	if err != nil {
		return nil, err
	}
	defer s.release(e)
	return slices.Clone(e.view.Load().contacts), nil
}

// AddContacts adds contacts to user's contacts; those already there are
// ignored. If user would then have more than Config.MaxContacts it returns
// ErrTooManyContacts and adds none. The change is durable before it
// returns; visibility is re-evaluated as for SetPrivacy. Safe for
// concurrent use.
func (s *Service) AddContacts(ctx context.Context, user string, contacts []string) error {
	return s.changeContacts(ctx, user, contacts, true)
}

// RemoveContacts removes contacts from user's contacts; those not there
// are ignored. The change is durable before it returns; visibility is
// re-evaluated as for SetPrivacy. Safe for concurrent use.
func (s *Service) RemoveContacts(ctx context.Context, user string, contacts []string) error {
	return s.changeContacts(ctx, user, contacts, false)
}

func (s *Service) changeContacts(ctx context.Context, user string, contacts []string, add bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !validUser(user) {
		return ErrInvalidUser
	}
	if len(contacts) == 0 {
		return nil
	}
	contacts = slices.Clone(contacts)
	slices.Sort(contacts)
	contacts = slices.Compact(contacts)
	for _, c := range contacts {
		if !validUser(c) {
			return fmt.Errorf("%w: contact %q", ErrInvalidUser, c)
		}
	}
	if add && len(contacts) > s.cfg.MaxContacts {
		return ErrTooManyContacts
	}
	e, err := s.acquire(ctx, user)
	if err != nil {
		return err
	}
	defer s.release(e)
	e.social.Lock()
	defer e.social.Unlock()
	v := e.view.Load()
	// changed: the contacts that this call adds or removes.
	changed := slices.DeleteFunc(contacts, func(c string) bool { return v.has(c) == add })
	if len(changed) == 0 {
		return nil
	}
	var next []string
	if add {
		if len(v.contacts)+len(changed) > s.cfg.MaxContacts {
			return ErrTooManyContacts
		}
		next = slices.Grow(slices.Clone(v.contacts), len(changed))
		next = append(next, changed...)
		slices.Sort(next)
		err = s.store.AddContacts(ctx, user, changed)
	} else {
		next = slices.DeleteFunc(slices.Clone(v.contacts), func(c string) bool {
			_, found := slices.BinarySearch(changed, c)
			return found
		})
		err = s.store.RemoveContacts(ctx, user, changed)
	}
	if err != nil {
		return fmt.Errorf("presence: save contacts of %q: %w", user, err)
	}
	if len(next) == 0 {
		next = nil
	}
	e.view.Store(&view{privacy: v.privacy, contacts: next})
	s.reevaluate(e)
	return nil
}

// flushLoop is the one goroutine that writes last seen, every
// FlushInterval.
func (s *Service) flushLoop() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.flush()
		case ack := <-s.flushReq:
			ack <- s.flush()
		}
	}
}

// flushNow runs a flush on the flusher and waits for it; for tests.
func (s *Service) flushNow() error {
	ack := make(chan error, 1)
	select {
	case s.flushReq <- ack:
		return <-ack
	case <-s.done:
		return ErrClosed
	}
}

// flush writes every dirty last seen, flushBatch users per store call. On
// an error it stops, leaving the users not written dirty for the next
// flush, and returns the error.
func (s *Service) flush() error {
	for i := range s.shards {
		sh := &s.shards[i]
		for {
			sh.mu.Lock()
			n := min(len(sh.dirty), flushBatch-len(s.flushSeen))
			for _, e := range sh.dirty[:n] {
				e.queued = false
				s.flushSeen = append(s.flushSeen, Seen{User: e.id, LastSeen: e.lastSeen})
				s.flushEnts = append(s.flushEnts, e)
			}
			rest := copy(sh.dirty, sh.dirty[n:])
			clear(sh.dirty[rest:])
			sh.dirty = sh.dirty[:rest]
			sh.mu.Unlock()
			if len(s.flushSeen) < flushBatch {
				break
			}
			if err := s.save(); err != nil {
				return err
			}
		}
	}
	if len(s.flushSeen) == 0 {
		return nil
	}
	return s.save()
}

// save writes the users collected by flush. Those written are clean
// unless they changed meanwhile, and may then leave memory; on an error
// all are queued again.
func (s *Service) save() error {
	err := s.store.SaveLastSeen(context.Background(), s.flushSeen)
	if err != nil {
		err = fmt.Errorf("presence: save last seen of %d users: %w", len(s.flushSeen), err)
		s.log.Error("presence: flush", "err", err)
	}
	for i, e := range s.flushEnts {
		sh := s.shardOf(e.id)
		sh.mu.Lock()
		switch {
		case err == nil && e.lastSeen == s.flushSeen[i].LastSeen:
			e.dirty = false
			if len(sh.users) > s.perShard {
				sh.evict(len(sh.users) - s.perShard)
			}
		case err != nil && !e.queued:
			e.queued = true
			sh.dirty = append(sh.dirty, e)
		}
		sh.mu.Unlock()
	}
	clear(s.flushSeen)
	clear(s.flushEnts)
	s.flushSeen, s.flushEnts = s.flushSeen[:0], s.flushEnts[:0]
	return err
}

// Close stops the flusher and writes every last seen not yet saved. Later
// calls return ErrClosed, and Handle ignores events. Call it once the
// gateways stop handing events in; it does not close the Store. Safe for
// concurrent use; calls after the first return nil.
func (s *Service) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	<-s.done
	s.reloads.Wait()
	return s.flush()
}
