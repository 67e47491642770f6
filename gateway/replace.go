package gateway

import (
	"context"
	"math"
	"strconv"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/router"
)

// A device has one connection. When the Directory hands out epochs
// (router.EpochSource), a connection that registers closes the older
// connections of its device with 4003 (replaced): those on this node from
// the hub's registry, those on other nodes by a control item sent to
// their node over the Bus. A client whose connection went half-open and
// that reconnects is thus not left with a dead twin holding its route
// until the idle timeout, and a device never has two live cursors.
//
// The other nodes' connections to close come from the Directory: exactly,
// when it reports the routes its Register removed (replacingDirectory,
// backends/redis); otherwise from the user's routes looked up before
// Register, which misses an older connection that registers between that
// Lookup and this Register (its route is then removed, and the connection
// stays open without it until it closes or idles out).

// replacingDirectory is an optional ability of a router.Directory:
// Register that also appends to replaced the routes of r's device it
// removed because r's epoch is larger. *redis.Directory has it.
type replacingDirectory interface {
	RegisterReplacing(ctx context.Context, r router.Route, replaced []router.Route) ([]router.Route, error)
}

// controlMark starts the Head of a control item on the Bus: an ephemeral
// item (Seq 0) addressed to one connection that the receiving gateway
// acts on instead of writing it. Frames are JSON objects and never start
// with it.
const controlMark = 0

// replacedPrefix is the Head of the control item "close this connection:
// replaced", followed by the decimal epoch of the connection that
// replaced it.
const replacedPrefix = "\x00replaced:"

// appendReplaced appends the Head of a "replaced" control item for a
// connection replaced by one with epoch.
func appendReplaced(dst []byte, epoch uint64) []byte {
	return strconv.AppendUint(append(dst, replacedPrefix...), epoch, 10)
}

// parseReplaced returns the epoch of a "replaced" control item's Head.
func parseReplaced(head []byte) (epoch uint64, ok bool) {
	if len(head) <= len(replacedPrefix) || string(head[:len(replacedPrefix)]) != replacedPrefix {
		return 0, false
	}
	for _, b := range head[len(replacedPrefix):] {
		d := uint64(b - '0')
		if b < '0' || b > '9' || epoch > (math.MaxUint64-d)/10 {
			return 0, false
		}
		epoch = epoch*10 + d
	}
	return epoch, true
}

// registerRoute registers c's route and returns the routes of c's device,
// on other nodes, that it replaces: reported by the Directory if it can,
// else those among remote (the user's routes on other nodes, looked up
// before) with a smaller positive epoch.
func (h *hub) registerRoute(ctx context.Context, c *wsConn, remote []router.Route) ([]router.Route, error) {
	r := c.route(h.g)
	if rd, ok := h.g.dir.(replacingDirectory); ok {
		return rd.RegisterReplacing(ctx, r, nil)
	}
	if err := h.g.dir.Register(ctx, r); err != nil {
		return nil, err
	}
	var older []router.Route
	for _, o := range remote {
		if o.Device == r.Device && o.Epoch > 0 && o.Epoch < r.Epoch {
			older = append(older, o)
		}
	}
	return older, nil
}

// replace closes the connections c replaces: the older connections of its
// device here, and those of replaced on other nodes (through their
// gateways). Connections without an epoch are never replaced. It runs on
// a worker once c's route is registered.
func (h *hub) replace(c *wsConn, replaced []router.Route) {
	g := h.g
	epoch := c.epoch.Load()
	if epoch == 0 {
		return
	}
	s := h.shard(c.user)
	s.mu.RLock()
	for _, x := range s.users[c.user] {
		if x != c && x.device == c.device && replacedBy(x, epoch) {
			x.closeWith(errReplaced)
		}
	}
	s.mu.RUnlock()
	var head []byte
	for _, r := range replaced {
		if r.Node == g.cfg.Node {
			continue // closed above
		}
		head = appendReplaced(head[:0], epoch)
		d := chat.Delivery{Items: []chat.Item{{User: r.User, Conn: r.Conn, Head: head}}}
		if err := g.bus.Publish(context.Background(), r.Node, &d); err != nil {
			g.log.Warn("telling a node to close a replaced connection failed", "node", r.Node, "err", err)
		}
	}
}

// replacedBy reports whether x is older than a connection of epoch.
func replacedBy(x *wsConn, epoch uint64) bool {
	e := x.epoch.Load()
	return e > 0 && e < epoch
}

// control acts on a control item from the Bus (see controlMark): for
// "replaced", it closes the connection it names with 4003 if that
// connection is older than the one that replaced it (a node id reused by
// a restarted process could otherwise close a newer connection that
// reuses the id). Unknown control items are dropped.
func (h *hub) control(it *chat.Item) {
	epoch, ok := parseReplaced(it.Head)
	if !ok || it.Conn == 0 {
		return
	}
	s := h.shard(it.User)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, x := range s.users[it.User] {
		if x.id == it.Conn && replacedBy(x, epoch) {
			x.closeWith(errReplaced)
		}
	}
}

// Routes returns the route of every open connection this node holds (its
// hub's registry), each with its epoch: what a redis.Keeper registers
// again when Redis lost them. It may include a connection whose
// registration is still in progress (registering its route early is
// harmless: the same route, and a superseded epoch is refused). A route
// taken just before its connection closed and registered again after the
// connection's unregistration stays in the directory, pointing at this
// node, until the device registers a newer connection (deliveries to it
// find no connection and are dropped). Safe for concurrent use.
func (g *Gateway) Routes() []router.Route {
	var routes []router.Route
	for i := range g.hub.shards {
		s := &g.hub.shards[i]
		s.mu.RLock()
		for _, conns := range s.users {
			for _, c := range conns {
				if !c.closed.Load() {
					routes = append(routes, c.route(g))
				}
			}
		}
		s.mu.RUnlock()
	}
	return routes
}
