package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/switchboard/switchboard/router"
)

// Keeper keeps one gateway node alive in the directory: a gateway runs one
// (Run) for as long as it serves connections. Every heartbeat interval it
// sets the node's liveness key, holding the node's incarnation, to expire
// after 3 intervals. When the key was missing (Redis restarted without
// persistence, or the node stalled long enough for the key to expire) or
// held another incarnation, it registers again every route the node holds,
// pipelined, so routes are back within one interval.
type Keeper struct {
	d           *Directory
	node        string
	incarnation string
	routes      func() []router.Route

	mu     sync.Mutex // serializes beats
	resync bool       // register everything again on the next beat
}

// Keeper returns a Keeper of node. incarnation names this process of the
// node (a random id, or the start time); routes returns the routes the
// node holds now, each with its epoch, and is called only when they must
// be rebuilt; it may be nil when the node holds none. It does not start
// it: call Beat once before registering routes (a route of a node whose
// liveness key does not exist is not looked up), then Run.
func (d *Directory) Keeper(node, incarnation string, routes func() []router.Route) *Keeper {
	return &Keeper{d: d, node: node, incarnation: incarnation, routes: routes}
}

// Beat makes one heartbeat: it sets the node's liveness key, then, if the
// key was missing or held another incarnation, registers every route of
// the node again; rebuilt says it did. A rebuild is repeated on the next
// beat, to restore any route that a concurrent Lookup's sweep of the
// then-dead node deleted. Safe for concurrent use (beats are serialized).
func (k *Keeper) Beat(ctx context.Context) (rebuilt bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d := k.d
	ttl := livenessIntervals * d.cfg.HeartbeatInterval
	old, err := d.c.Do(ctx, d.c.B().Set().Key(d.nodeKey(k.node)).Value(k.incarnation).Get().
		PxMilliseconds(ttl.Milliseconds()).Build()).ToString()
	missing := rueidis.IsRedisNil(err)
	if err != nil && !missing {
		return false, fmt.Errorf("redis directory: heartbeat of %q: %w", k.node, err)
	}
	lost := missing || old != k.incarnation
	again := k.resync
	k.resync = lost
	if !lost && !again {
		return false, nil
	}
	if k.routes == nil {
		return lost, nil
	}
	routes := k.routes()
	if err := k.registerAll(ctx, routes); err != nil {
		k.resync = true // try again on the next beat
		return false, fmt.Errorf("redis directory: rebuild routes of %q: %w", k.node, err)
	}
	// The repeat of a rebuild with nothing to restore is not news.
	return lost || len(routes) > 0, nil
}

// registerAll registers routes, pipelined. A route superseded meanwhile
// by a newer epoch is left out, as Register would.
func (k *Keeper) registerAll(ctx context.Context, routes []router.Route) error {
	if len(routes) == 0 {
		return nil
	}
	d := k.d
	execs := make([]rueidis.LuaExec, 0, len(routes))
	for _, r := range routes {
		f, err := field(r)
		if err != nil {
			return err
		}
		execs = append(execs, rueidis.LuaExec{
			Keys: []string{d.routesKey(r.User)},
			Args: []string{f, strconv.FormatUint(r.Epoch, 10), r.Device + "\x00"},
		})
	}
	for _, res := range d.register.ExecMulti(ctx, d.c, execs...) {
		if err := res.Error(); err != nil {
			return err
		}
	}
	return nil
}

// Run beats every heartbeat interval until ctx is done, starting at once,
// and calls report (if not nil) after each beat that rebuilt routes or
// failed. A failed beat is retried at the next interval. Call it from one
// goroutine.
func (k *Keeper) Run(ctx context.Context, report func(rebuilt bool, err error)) {
	t := time.NewTicker(k.d.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		rebuilt, err := k.Beat(ctx)
		if report != nil && (rebuilt || err != nil) && ctx.Err() == nil {
			report(rebuilt, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
