package gateway

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
	"github.com/switchboard/switchboard/router"
)

// Hub task kinds.
const (
	taskRegister = iota
	taskUnregister
	taskSync
	taskDeliver
)

type hubTask struct {
	kind  uint8
	c     *wsConn
	user  string
	seq   uint64
	after uint64
	id    []byte    // taskSync: the sync frame's id (copied)
	f     *outFrame // taskDeliver: the task owns one reference
}

// hub routes work about a user to the shard goroutine that owns the user.
// Each shard keeps its users' connections and their delivery cursors, so
// none of that needs a lock.
type hub struct {
	g      *Gateway
	seed   maphash.Seed
	shards []*shard
	wg     sync.WaitGroup
}

type shard struct {
	h     *hub
	ch    chan hubTask
	users map[string][]*wsConn
	conts []*wsConn // connections whose sync or gap fill needs more pages
}

func newHub(g *Gateway, n int) *hub {
	h := &hub{g: g, seed: maphash.MakeSeed(), shards: make([]*shard, n)}
	for i := range h.shards {
		h.shards[i] = &shard{h: h, ch: make(chan hubTask, 4096), users: make(map[string][]*wsConn)}
	}
	return h
}

func (h *hub) start() {
	for _, s := range h.shards {
		h.wg.Add(1)
		go s.run()
	}
}

// stop ends the shard goroutines once their queues are drained.
func (h *hub) stop() {
	for _, s := range h.shards {
		close(s.ch)
	}
	h.wg.Wait()
}

func (h *hub) shard(user string) *shard {
	return h.shards[maphash.String(h.seed, user)%uint64(len(h.shards))]
}

// register, unregister and sync are called on event loops, which must not
// block: when the shard's queue is full, register and sync report false
// (the caller refuses the work), and unregister, which must not be lost,
// finishes on a goroutine of its own.

func (h *hub) register(c *wsConn) bool {
	return h.try(h.shard(c.user), hubTask{kind: taskRegister, c: c})
}

func (h *hub) unregister(c *wsConn) {
	s := h.shard(c.user)
	t := hubTask{kind: taskUnregister, c: c}
	if !h.try(s, t) {
		go func() { s.ch <- t }()
	}
}

func (h *hub) sync(c *wsConn, after uint64, id []byte) bool {
	var idc []byte
	if len(id) > 0 {
		idc = append([]byte(nil), id...)
	}
	return h.try(h.shard(c.user), hubTask{kind: taskSync, c: c, after: after, id: idc})
}

func (h *hub) try(s *shard, t hubTask) bool {
	select {
	case s.ch <- t:
		return true
	default:
		h.g.m.hubFull.Inc()
		return false
	}
}

// deliver is the Bus handler: it frames the entry once and gives it to the
// user's shard, which writes it to each of the user's connections here.
func (h *hub) deliver(d *chat.Delivery) {
	h.shard(d.User).ch <- hubTask{kind: taskDeliver, user: d.User, seq: d.Seq, f: textFrame(d.Frame)}
}

func (s *shard) run() {
	defer s.h.wg.Done()
	retry := time.NewTicker(2 * time.Millisecond)
	defer retry.Stop()
	for {
		if len(s.conts) == 0 {
			t, ok := <-s.ch
			if !ok {
				return
			}
			s.handle(t)
			continue
		}
		select {
		case t, ok := <-s.ch:
			if !ok {
				return
			}
			s.handle(t)
		default:
			if !s.continueReads() {
				// Every pending read waits for its connection to drain.
				select {
				case t, ok := <-s.ch:
					if !ok {
						return
					}
					s.handle(t)
				case <-retry.C:
				}
			}
		}
	}
}

func (s *shard) handle(t hubTask) {
	g := s.h.g
	ctx := context.Background()
	switch t.kind {
	case taskRegister:
		c := t.c
		if c.closed.Load() {
			return
		}
		// Live frames start after the inbox head as it is now: entries up
		// to it come through sync. Reading the head before registering the
		// route means every later entry is either published to this node or
		// found as a gap; registering before any sync reads the inbox makes
		// offline delivery race-free (docs/design.md).
		head, err := g.svc.LastSeq(ctx, c.user)
		if err != nil {
			g.log.Error("inbox head read failed; closing the connection", "err", err)
			c.closeWith(errInternal)
			return
		}
		c.cursor = head
		s.users[c.user] = append(s.users[c.user], c)
		if err := g.dir.Register(ctx, c.route(g)); err != nil {
			g.log.Error("route register failed; live delivery may lag until the next sync", "err", err)
		}
	case taskUnregister:
		c := t.c
		conns := s.users[c.user]
		for i, x := range conns {
			if x == c {
				conns = append(conns[:i], conns[i+1:]...)
				break
			}
		}
		if len(conns) == 0 {
			delete(s.users, c.user)
		} else {
			s.users[c.user] = conns
		}
		if err := g.dir.Unregister(ctx, c.route(g)); err != nil {
			g.log.Warn("route unregister failed", "err", err)
		}
	case taskSync:
		c := t.c
		if c.closed.Load() {
			return
		}
		c.cursor, c.syncReply, c.syncID = t.after, true, t.id
		s.startRead(c)
	case taskDeliver:
		for _, c := range s.users[t.user] {
			switch {
			case c.syncing, t.seq <= c.cursor:
				// The running read will send it, or it was sent.
			case t.seq == c.cursor+1:
				c.cursor = t.seq
				c.send(t.f.retain())
				g.m.deliveries.Inc()
			default:
				// A gap: an earlier delivery was lost or is late. The store
				// has everything up to t.seq, so read the gap from it.
				g.m.gapFills.Inc()
				s.startRead(c)
			}
		}
		t.f.release()
	}
}

// startRead begins reading c's inbox after c.cursor.
func (s *shard) startRead(c *wsConn) {
	c.syncing = true
	if !c.queuedCon {
		c.queuedCon = true
		s.conts = append(s.conts, c)
	}
}

// continueReads reads one page for each connection that can take it and
// reports whether any could.
func (s *shard) continueReads() bool {
	g := s.h.g
	limit := int64(g.cfg.MaxOutboundBytes / 2)
	progressed := false
	kept := s.conts[:0]
	for _, c := range s.conts {
		if c.closed.Load() {
			c.queuedCon = false
			continue
		}
		if c.pendingOut() > limit {
			// Pace the read to what the peer takes; ask the loop for a
			// fresh reading of the socket's backlog.
			c.l.mb.push(mailItem{kind: itemProbe, c: c})
			kept = append(kept, c)
			continue
		}
		progressed = true
		if s.readPage(c) {
			kept = append(kept, c)
		} else {
			c.queuedCon = false
		}
	}
	clear(s.conts[len(kept):])
	s.conts = kept
	return progressed
}

// readPage sends one page of c's inbox and reports whether more may follow.
func (s *shard) readPage(c *wsConn) bool {
	g := s.h.g
	page := g.cfg.SyncPage
	// A page is bounded in bytes too, so that a sync never queues more
	// than the connection's outbound bound allows.
	budget := int64(g.cfg.MaxOutboundBytes/2) - c.pendingOut()
	n, full := 0, false
	err := g.svc.ReadInbox(context.Background(), c.user, c.cursor, page, func(seq uint64, frame []byte) error {
		c.send(textFrame(frame))
		c.cursor = seq
		n++
		if budget -= int64(len(frame)); budget <= 0 {
			full = true
			return errPageFull
		}
		return nil
	})
	if errors.Is(err, errPageFull) {
		err = nil
	}
	if err != nil {
		g.log.Error("inbox read failed", "err", err)
		f := getFrame(128)
		c.send(f.seal(opText, protocol.AppendError(f.payload(), c.syncID, protocol.CodeInternal, "sync failed: retry")))
		c.syncing, c.syncReply = false, false
		return false
	}
	if n == page || full {
		return true
	}
	c.syncing = false
	if c.syncReply {
		c.syncReply = false
		f := getFrame(48 + len(c.syncID))
		c.send(f.seal(opText, protocol.AppendSynced(f.payload(), c.syncID, c.cursor)))
		c.syncID = nil
	}
	return false
}

var errPageFull = errors.New("page full")

func (c *wsConn) route(g *Gateway) router.Route {
	return router.Route{User: c.user, Device: c.device, Node: g.cfg.Node, Conn: c.id}
}
