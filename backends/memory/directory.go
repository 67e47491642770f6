package memory

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/switchboard/switchboard/router"
)

var (
	_ router.Directory   = (*Directory)(nil)
	_ router.EpochSource = (*Directory)(nil)
)

// dirShards is the number of independently locked parts of a Directory.
// Every connect, disconnect and delivery touches one; 64 keeps lock
// contention negligible at hundreds of thousands of operations per second.
const dirShards = 64

// Directory is an in-memory router.Directory sharded by a hash of the user
// id, each shard behind its own RWMutex.
type Directory struct {
	seed   maphash.Seed
	epoch  atomic.Uint64 // the last epoch NextEpoch returned
	shards [dirShards]dirShard
}

type dirShard struct {
	mu    sync.RWMutex
	users map[string][]router.Route // never holds an empty slice
	_     [32]byte                  // pad to a 64-byte cache line
}

// NewDirectory returns an empty Directory.
func NewDirectory() *Directory {
	d := &Directory{seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].users = make(map[string][]router.Route)
	}
	return d
}

func (d *Directory) shard(user string) *dirShard {
	return &d.shards[maphash.String(d.seed, user)%dirShards]
}

// sameConn reports whether a and b name the same connection: the same
// user, device, node and connection id, whatever their epochs.
func sameConn(a, b router.Route) bool {
	return a.User == b.User && a.Device == b.Device && a.Node == b.Node && a.Conn == b.Conn
}

// Register records r; registering the same route twice records it once,
// and registering it with another epoch replaces its epoch. A positive
// r.Epoch removes the device's routes with smaller positive epochs, or
// fails with router.ErrSuperseded, recording nothing, if the device has a
// route with a larger one. Safe for concurrent use.
func (d *Directory) Register(_ context.Context, r router.Route) error {
	s := d.shard(r.User)
	s.mu.Lock()
	defer s.mu.Unlock()
	routes := s.users[r.User]
	if r.Epoch > 0 {
		for _, o := range routes {
			if o.Device == r.Device && o.Epoch > r.Epoch {
				return router.ErrSuperseded
			}
		}
		routes = slices.DeleteFunc(routes, func(o router.Route) bool {
			return o.Device == r.Device && o.Epoch > 0 && o.Epoch < r.Epoch
		})
	}
	if i := slices.IndexFunc(routes, func(o router.Route) bool { return sameConn(o, r) }); i >= 0 {
		routes[i].Epoch = r.Epoch
	} else {
		routes = append(routes, r)
	}
	s.users[r.User] = routes
	return nil
}

// Unregister removes the route with r's user, device, node and connection
// id, whatever its epoch; an unknown route is ignored. Safe for concurrent
// use.
func (d *Directory) Unregister(_ context.Context, r router.Route) error {
	s := d.shard(r.User)
	s.mu.Lock()
	defer s.mu.Unlock()
	routes := s.users[r.User]
	i := slices.IndexFunc(routes, func(o router.Route) bool { return sameConn(o, r) })
	switch {
	case i < 0:
	case len(routes) == 1:
		delete(s.users, r.User)
	default:
		s.users[r.User] = slices.Delete(routes, i, i+1)
	}
	return nil
}

// NextEpoch returns the next value of one counter shared by every user and
// device: positive and increasing, which is all router.EpochSource asks.
// Safe for concurrent use.
func (d *Directory) NextEpoch(context.Context, string, string) (uint64, error) {
	return d.epoch.Add(1), nil
}

// Lookup appends the routes of user to dst, in no particular order, and
// returns it. It does not allocate when dst has room for them. Safe for
// concurrent use.
func (d *Directory) Lookup(_ context.Context, user string, dst []router.Route) ([]router.Route, error) {
	s := d.shard(user)
	s.mu.RLock()
	dst = append(dst, s.users[user]...)
	s.mu.RUnlock()
	return dst, nil
}
