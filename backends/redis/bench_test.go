package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testengines"
	"github.com/switchboard/switchboard/router"
)

// benchDir returns a Directory (cache off if noCache) with users user-0…
// user-999 registered, 2 routes each on 2 live nodes.
func benchDir(b *testing.B, noCache bool) (*Directory, []string) {
	cfg := Config{Addrs: []string{testengines.Redis(b).Addr}, KeyPrefix: fmt.Sprintf("b%d:", prefixes.Add(1)), HeartbeatInterval: time.Minute}
	d, err := newDirectory(cfg, noCache)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	beat(b, d, "gw-1", "gw-2")
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
		for dev := range 2 {
			r := router.Route{User: users[i], Device: fmt.Sprint(dev), Node: fmt.Sprintf("gw-%d", dev+1), Conn: uint64(2*i + dev), Epoch: 1}
			if err := d.Register(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
	}
	return d, users
}

func benchLookup(b *testing.B, noCache bool) {
	d, users := benchDir(b, noCache)
	ctx := context.Background()
	for _, u := range users { // warm the cache
		d.Lookup(ctx, u, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]router.Route, 0, 8)
		i := 0
		for pb.Next() {
			var err error
			if dst, err = d.Lookup(ctx, users[i%len(users)], dst[:0]); err != nil || len(dst) != 2 {
				b.Errorf("Lookup = %d routes, %v", len(dst), err)
				return
			}
			i += 7
		}
	})
}

// BenchmarkLookupCached looks up unchanged users with 2 routes on 2 nodes:
// every read is served by the local cache.
func BenchmarkLookupCached(b *testing.B) { benchLookup(b, false) }

// BenchmarkLookupUncached is the same with the local cache off: a round
// trip for the hash, one for the nodes' liveness.
func BenchmarkLookupUncached(b *testing.B) { benchLookup(b, true) }

// BenchmarkRegister registers a new connection of a device, superseding
// the previous one (the epoch script with its barrier), from all Ps.
func BenchmarkRegister(b *testing.B) {
	d, users := benchDir(b, false)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := uint64(1)
		device := fmt.Sprintf("bench-%p", &e)
		for pb.Next() {
			e++
			// Each goroutine has its own device, so epochs never conflict.
			r := router.Route{User: users[e%uint64(len(users))], Device: device, Node: "gw-1", Conn: e, Epoch: e}
			if err := d.Register(ctx, r); err != nil {
				b.Errorf("Register: %v", err)
				return
			}
		}
	})
}
