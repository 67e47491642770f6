package memory

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/switchboard/switchboard/router"
)

var _ router.Directory = (*Directory)(nil)

// dirShards is the number of independently locked parts of a Directory.
// Every connect, disconnect and delivery touches one; 64 keeps lock
// contention negligible at hundreds of thousands of operations per second.
const dirShards = 64

// Directory is an in-memory router.Directory sharded by a hash of the user
// id, each shard behind its own RWMutex.
type Directory struct {
	seed   maphash.Seed
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

// Register records r; registering the same route twice records it once.
// Safe for concurrent use.
func (d *Directory) Register(_ context.Context, r router.Route) error {
	s := d.shard(r.User)
	s.mu.Lock()
	defer s.mu.Unlock()
	routes := s.users[r.User]
	if !slices.Contains(routes, r) {
		s.users[r.User] = append(routes, r)
	}
	return nil
}

// Unregister removes r, matched on all fields; an unknown route is
// ignored. Safe for concurrent use.
func (d *Directory) Unregister(_ context.Context, r router.Route) error {
	s := d.shard(r.User)
	s.mu.Lock()
	defer s.mu.Unlock()
	routes := s.users[r.User]
	i := slices.Index(routes, r)
	switch {
	case i < 0:
	case len(routes) == 1:
		delete(s.users, r.User)
	default:
		s.users[r.User] = slices.Delete(routes, i, i+1)
	}
	return nil
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
