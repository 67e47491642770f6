package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/presence"
	"github.com/switchboard/switchboard/protocol"
	"github.com/switchboard/switchboard/router"
)

// hub knows which connections of each user this gateway holds, and runs
// the blocking work about them (route registration, inbox reads) on a small
// pool of workers, so that neither the event loops nor the Service's post
// stage ever wait on a store or a directory.
//
// Deliveries do not go through the workers: the bus handler looks the
// user's connections up in the registry and pushes the frame straight into
// each connection's loop mailbox. The loop owns each connection's cursor and
// decides there whether a frame goes out, is a duplicate, or reveals a gap
// to be read from the store.
type hub struct {
	g      *Gateway
	seed   maphash.Seed
	shards [64]regShard
	jobs   chan job
	wg     sync.WaitGroup

	mu      sync.RWMutex // guards stopped against sends on the closed jobs
	stopped bool

	epochs [1024]atomic.Uint64 // per command partition: the largest sequencer epoch delivered so far
}

// regShard is one shard of the user → connections registry.
type regShard struct {
	mu    sync.RWMutex
	users map[string][]*wsConn
	_     [40]byte // keep shards on separate cache lines
}

// Worker job kinds.
const (
	jobRegister = iota
	jobUnregister
	jobRead
	jobDevices
	jobPresence
)

type job struct {
	kind  uint8
	c     *wsConn
	after uint64 // jobRead: read entries after this seq
	gen   uint32 // jobRead: the connection's read generation
	id    []byte // jobDevices: the request's id

	presence *presenceReq // jobPresence
}

func newHub(g *Gateway, workers int) *hub {
	h := &hub{g: g, seed: maphash.MakeSeed(), jobs: make(chan job, 16384)}
	for i := range h.shards {
		h.shards[i].users = make(map[string][]*wsConn)
	}
	h.wg.Add(workers)
	for range workers {
		go h.work()
	}
	return h
}

// stop ends the workers once the jobs queued so far are done. Jobs
// submitted afterwards are dropped.
func (h *hub) stop() {
	h.mu.Lock()
	if !h.stopped {
		h.stopped = true
		close(h.jobs)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *hub) shard(user string) *regShard {
	return &h.shards[maphash.String(h.seed, user)%uint64(len(h.shards))]
}

// submit queues j without blocking and reports whether it could.
func (h *hub) submit(j job) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.stopped {
		return false
	}
	select {
	case h.jobs <- j:
		return true
	default:
		h.g.m.hubFull.Inc()
		return false
	}
}

// unregister queues the removal of c, which must not be lost: when the
// queue is full it is handed over on a goroutine of its own.
func (h *hub) unregister(c *wsConn) {
	j := job{kind: jobUnregister, c: c}
	if h.submit(j) {
		return
	}
	go func() {
		h.mu.RLock()
		defer h.mu.RUnlock()
		if !h.stopped {
			h.jobs <- j
		}
	}()
}

// deliver is the Bus handler. The shared part of the delivery is copied
// once; each item gets its own small head frame (the WebSocket header and
// the start of the payload that carries its seq) and a reference to the
// shared part, and goes to the loop of each of the user's connections on
// this node. For inbox entries the loops check the seq against each
// connection's cursor; ephemeral frames (seq 0) are written as they come.
func (h *hub) deliver(d *chat.Delivery) {
	if d.Epoch != 0 && !h.current(d.Partition, d.Epoch) {
		h.g.m.fenced.Inc()
		return
	}
	var tail *outFrame
	if len(d.Shared) > 0 {
		tail = tailFrame(d.Shared)
	}
	for i := range d.Items {
		it := &d.Items[i]
		if it.Seq == 0 && len(it.Head) > 0 && it.Head[0] == controlMark {
			h.control(it)
			continue
		}
		s := h.shard(it.User)
		s.mu.RLock()
		conns := s.users[it.User]
		if len(conns) == 0 {
			s.mu.RUnlock()
			continue
		}
		f := headFrame(it.Head, len(d.Shared))
		for _, c := range conns {
			if it.Seq == 0 && it.Conn != 0 && it.Conn != c.id {
				continue
			}
			mi := mailItem{kind: itemDeliver, c: c, f: f.retain(), seq: it.Seq}
			if it.Seq == 0 {
				mi.kind = itemWrite
			}
			if tail != nil {
				mi.tail = tail.retain()
			}
			c.l.mb.push(mi)
		}
		s.mu.RUnlock()
		f.release()
	}
	tail.releaseIf()
}

// current reports whether epoch is at least the largest sequencer epoch
// this node has had a delivery from, and records it: a delivery of a
// deposed sequencer (paused past its ownership, then resumed) is dropped
// once its successor has delivered here. Its entries are in the store
// only if the successor did not write those seqs; devices read them by
// sync either way.
//
// Epochs are per command partition: each partition's sequencer has its
// own lease. A partition beyond the array (more than the 1,024 that
// kafka.CommandsConfig allows) is not fenced.
func (h *hub) current(partition int, epoch uint64) bool {
	if partition < 0 || partition >= len(h.epochs) {
		return true
	}
	e := &h.epochs[partition]
	for {
		cur := e.Load()
		switch {
		case epoch < cur:
			return false
		case epoch == cur || e.CompareAndSwap(cur, epoch):
			return true
		}
	}
}

// add registers c, unless its user already has max_devices other devices
// connected: here (the registry) or on other nodes (remote, the user's
// routes on other nodes). Then it reports false.
func (h *hub) add(c *wsConn, remote []router.Route) bool {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := s.users[c.user]
	var devices [16]string
	seen := devices[:0]
	count := func(device string) {
		if device != c.device && !slices.Contains(seen, device) {
			seen = append(seen, device)
		}
	}
	for _, x := range conns {
		count(x.device)
	}
	for _, r := range remote {
		count(r.Device)
	}
	if len(seen) >= h.g.cfg.MaxDevices {
		return false
	}
	s.users[c.user] = append(conns, c)
	return true
}

// devicesList answers devices.list for c from a worker.
func (h *hub) devicesList(c *wsConn, id []byte) {
	id = append([]byte(nil), id...)
	if !h.submit(job{kind: jobDevices, c: c, id: id}) {
		c.l.writeError(c, id, protocol.CodeOverloaded, "server overloaded: retry later with the same id")
	}
}

// devices writes the ack of devices.list: the user's devices connected to
// this node and, from the directory, to the others, each with its number
// of connections.
func (h *hub) devices(j job) {
	c := j.c
	type dev struct {
		name  string
		conns int
	}
	var devs []dev
	count := func(device string) {
		i := slices.IndexFunc(devs, func(d dev) bool { return d.name == device })
		if i < 0 {
			devs = append(devs, dev{name: device})
			i = len(devs) - 1
		}
		devs[i].conns++
	}
	// The other nodes' connections; this node's are counted from the
	// registry, which also holds those still registering.
	remote, err := h.g.dir.Lookup(context.Background(), c.user, nil)
	if err != nil {
		h.g.log.Warn("devices.list: route lookup failed", "err", err)
		h.g.m.errorFrames(protocol.CodeInternal).Inc()
		f := getFrame(96 + len(j.id))
		c.send(f.seal(opText, protocol.AppendError(f.payload(), j.id, protocol.CodeInternal, "the device directory is unreachable: retry later")))
		return
	}
	for _, r := range remote {
		if r.Node != h.g.cfg.Node {
			count(r.Device)
		}
	}
	s := h.shard(c.user)
	s.mu.RLock()
	for _, x := range s.users[c.user] {
		count(x.device)
	}
	s.mu.RUnlock()
	slices.SortFunc(devs, func(a, b dev) int { return strings.Compare(a.name, b.name) })
	d := append([]byte(nil), `,"devices":[`...)
	for i, x := range devs {
		if i > 0 {
			d = append(d, ',')
		}
		d = append(d, `{"device":`...)
		d = protocol.AppendString(d, deviceName(x.name))
		d = append(d, `,"connections":`...)
		d = strconv.AppendInt(d, int64(x.conns), 10)
		if x.name == c.device {
			d = append(d, `,"current":true`...)
		}
		d = append(d, '}')
	}
	d = append(d, ']')
	f := getFrame(32 + len(j.id) + len(d))
	c.send(f.seal(opText, protocol.AppendAckFields(f.payload(), j.id, d)))
}

// deviceName is how a device appears to clients: a token without a "dev"
// claim is the device "default".
func deviceName(d string) string {
	if d == "" {
		return "default"
	}
	return d
}

func (h *hub) remove(c *wsConn) {
	s := h.shard(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := s.users[c.user]
	for i, x := range conns {
		if x == c {
			conns[i] = conns[len(conns)-1]
			conns[len(conns)-1] = nil
			conns = conns[:len(conns)-1]
			break
		}
	}
	if len(conns) == 0 {
		delete(s.users, c.user)
	} else {
		s.users[c.user] = conns
	}
}

func (h *hub) work() {
	defer h.wg.Done()
	var frames []readFrame
	for j := range h.jobs {
		switch j.kind {
		case jobRegister:
			h.registerConn(j.c)
		case jobUnregister:
			h.remove(j.c)
			h.g.event(j.c, presence.Disconnected)
			if h.g.presence != nil {
				h.g.presence.Drop(j.c.presenceConn(h.g))
			}
			if err := h.g.dir.Unregister(context.Background(), j.c.route(h.g)); err != nil {
				h.g.log.Warn("route unregister failed", "err", err)
			}
		case jobRead:
			frames = h.read(j, frames[:0])
		case jobDevices:
			h.devices(j)
		case jobPresence:
			h.presenceJob(j.c, j.presence)
		}
	}
}

// registerConn makes c reachable. Live frames start after the inbox head
// as it is now: entries up to it come through sync. Reading the head
// before the connection can be found means every later entry is either
// delivered to it or found as a gap; registering the route before any sync
// reads the inbox makes offline delivery race-free (docs/design.md).
//
// When the Directory hands out epochs, c takes one here and its route is
// ordered by it: a registration refused as superseded (a newer connection
// of the device registered first) closes c with 4003, and a successful
// one closes the older connections of the device it replaces, here and on
// other nodes (replace.go). The user's routes on other nodes count against
// max_devices. A directory that cannot be reached refuses c with 1013.
func (h *hub) registerConn(c *wsConn) {
	g := h.g
	ctx := context.Background()
	head, err := g.svc.LastSeq(ctx, c.user)
	if err != nil {
		g.log.Error("inbox head read failed; closing the connection", "err", err)
		c.closeWith(errInternal)
		return
	}
	if es, ok := g.dir.(router.EpochSource); ok {
		e, err := es.NextEpoch(ctx, c.user, c.device)
		if err != nil {
			g.log.Error("route epoch failed; refusing the connection", "err", err)
			c.closeWith(errTryAgain)
			return
		}
		c.epoch.Store(e)
	}
	remote, err := g.dir.Lookup(ctx, c.user, nil)
	if err != nil {
		g.log.Error("route lookup failed; refusing the connection", "err", err)
		c.closeWith(errTryAgain)
		return
	}
	// This node's connections are counted from the registry, which also
	// holds those still registering.
	remote = slices.DeleteFunc(remote, func(r router.Route) bool { return r.Node == g.cfg.Node })
	if !h.add(c, remote) {
		g.m.errorFrames(protocol.CodeTooManyDevices).Inc()
		f := getFrame(160)
		c.send(f.seal(opText, protocol.AppendError(f.payload(), "", protocol.CodeTooManyDevices,
			fmt.Sprintf("%d devices are connected already (max_devices): close one first", g.cfg.MaxDevices))))
		c.closeWith(errTooManyDevices)
		return
	}
	replaced, err := h.registerRoute(ctx, c, remote)
	if err != nil {
		h.remove(c)
		if errors.Is(err, router.ErrSuperseded) {
			c.closeWith(errReplaced)
			return
		}
		g.log.Error("route register failed; refusing the connection", "err", err)
		c.closeWith(errTryAgain)
		return
	}
	h.replace(c, replaced)
	g.event(c, presence.Connected)
	if c.closed.Load() {
		// Closed while registering: its unregister job may already have
		// run, so undo what this one did.
		h.remove(c)
		g.dir.Unregister(ctx, c.route(g))
		g.event(c, presence.Disconnected)
		return
	}
	c.l.mb.push(mailItem{kind: itemRegistered, c: c, seq: head})
}

// readFrame is one inbox entry read for a connection.
type readFrame struct {
	seq uint64
	f   *outFrame
}

// readResult is a page of inbox entries, handed to the connection's loop.
type readResult struct {
	gen    uint32
	frames []readFrame
	more   bool // the page was full: more may follow
	err    error
}

var errPageFull = errors.New("page full")

// read reads one page of j.c's inbox after j.after and hands it to the
// connection's loop. A page holds at most sync_page entries and about half
// of max_outbound_bytes, so that a sync never queues more than the
// connection's outbound bound allows.
func (h *hub) read(j job, frames []readFrame) []readFrame {
	g := h.g
	c := j.c
	if c.closed.Load() {
		return frames
	}
	// The loop asks for a page only while c's socket holds at most half of
	// max_outbound_bytes; the page fills at most the other half.
	budget := g.cfg.MaxOutboundBytes / 2
	full := false
	err := g.svc.ReadInbox(context.Background(), c.user, j.after, g.cfg.SyncPage, func(seq uint64, frame []byte) error {
		n := len(frame) + maxHeader
		if budget < n && len(frames) > 0 {
			full = true
			return errPageFull
		}
		budget -= n
		frames = append(frames, readFrame{seq: seq, f: textFrame(frame)})
		return nil
	})
	if errors.Is(err, errPageFull) {
		err = nil
	}
	if err != nil {
		g.log.Error("inbox read failed", "err", err)
	}
	res := &readResult{gen: j.gen, frames: append([]readFrame(nil), frames...), err: err,
		more: full || len(frames) == g.cfg.SyncPage}
	clear(frames)
	c.l.mb.push(mailItem{kind: itemRead, c: c, read: res})
	return frames
}

func (c *wsConn) route(g *Gateway) router.Route {
	return router.Route{User: c.user, Device: c.device, Node: g.cfg.Node, Conn: c.id, Epoch: c.epoch.Load()}
}
