package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/switchboard/switchboard/internal/testengines"
	"github.com/switchboard/switchboard/router"
	"github.com/switchboard/switchboard/router/routertest"
)

func TestMain(m *testing.M) { os.Exit(testengines.Run(m)) }

var prefixes atomic.Int64

// newDir returns a Directory on addr with a key prefix of its own (tests
// share one Redis), closed when the test ends.
func newDir(t testing.TB, addr string, cfg Config) *Directory {
	t.Helper()
	cfg.Addrs = []string{addr}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = fmt.Sprintf("t%d:", prefixes.Add(1))
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// rawClient is a plain client without a cache: "another client".
func rawClient(t testing.TB, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// beat makes node alive for as long as a test takes.
func beat(t testing.TB, d *Directory, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		if _, err := d.Keeper(n, "test", nil).Beat(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func lookup(t testing.TB, d *Directory, user string) []router.Route {
	t.Helper()
	got, err := d.Lookup(context.Background(), user, nil)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", user, err)
	}
	return got
}

// eventually polls cond until it holds or a deadline passes, and says how
// long it took.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestDirectory(t *testing.T) {
	addr := testengines.Redis(t).Addr
	routertest.Run(t, func(t *testing.T) router.Directory {
		d := newDir(t, addr, Config{HeartbeatInterval: time.Minute})
		for i := range 10 {
			beat(t, d, fmt.Sprintf("gw-%d", i))
		}
		return d
	})
}

func TestConfig(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil {
		t.Fatal("Validate of a Config without addrs succeeded")
	}
	bad := Config{Addrs: []string{"x:1", ""}, CacheTTL: -1, KeyPrefix: "a{", HeartbeatInterval: time.Microsecond}
	err := bad.Validate()
	for _, want := range []string{"empty address", "cache_ttl", "key_prefix", "heartbeat_interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", bad, err, want)
		}
	}
	d := newDir(t, testengines.Redis(t).Addr, Config{KeyPrefix: DefaultKeyPrefix})
	got := d.Config()
	if got.CacheTTL != DefaultCacheTTL || got.KeyPrefix != "sb:" || got.HeartbeatInterval != DefaultHeartbeatInterval {
		t.Fatalf("defaults: %+v", got)
	}
	if k := d.routesKey("alice"); k != "sb:rt:{alice}" {
		t.Fatalf("routes key %q", k)
	}
}

// TestCacheServesUnchangedUser: the second Lookup of an unchanged user is
// served from the local cache (hash and node liveness), and a Register
// through the same Directory is seen by the next Lookup at once.
func TestCacheServesUnchangedUser(t *testing.T) {
	d := newDir(t, testengines.Redis(t).Addr, Config{})
	hits, misses := countCache(d)
	beat(t, d, "gw-1", "gw-2")
	ctx := context.Background()
	r1 := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	r2 := router.Route{User: "alice", Device: "laptop", Node: "gw-2", Conn: 2}
	for _, r := range []router.Route{r1, r2} {
		if err := d.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	lookup(t, d, "alice")
	if hits.Load() != 0 || misses.Load() != 3 {
		t.Fatalf("first Lookup: %d hits, %d misses; want 0, 3 (hash, 2 nodes)", hits.Load(), misses.Load())
	}
	for range 5 {
		if got := lookup(t, d, "alice"); len(got) != 2 {
			t.Fatalf("Lookup = %+v", got)
		}
	}
	if hits.Load() != 15 || misses.Load() != 3 {
		t.Fatalf("5 more Lookups: %d hits, %d misses; want 15, 3", hits.Load(), misses.Load())
	}
	// A write through this Directory invalidates before it returns.
	r3 := router.Route{User: "alice", Device: "tablet", Node: "gw-1", Conn: 3}
	for range 20 {
		if err := d.Register(ctx, r3); err != nil {
			t.Fatal(err)
		}
		if got := lookup(t, d, "alice"); !slices.Contains(got, r3) {
			t.Fatalf("Lookup right after Register = %+v, lacks %+v", got, r3)
		}
		if err := d.Unregister(ctx, r3); err != nil {
			t.Fatal(err)
		}
		if got := lookup(t, d, "alice"); slices.Contains(got, r3) {
			t.Fatalf("Lookup right after Unregister = %+v, holds %+v", got, r3)
		}
	}
}

// TestCacheInvalidatedByOtherClients: changes made through another client
// (another Directory, a raw client, a node's liveness key expiring) reach
// a Lookup that had the user cached at once, through Redis's invalidations:
// far sooner than the cache TTL (an hour here).
func TestCacheInvalidatedByOtherClients(t *testing.T) {
	addr := testengines.Redis(t).Addr
	a := newDir(t, addr, Config{CacheTTL: time.Hour, HeartbeatInterval: 100 * time.Millisecond})
	cfg := a.Config()
	cfg.HeartbeatInterval = time.Minute
	b := newDir(t, addr, cfg)
	raw := rawClient(t, addr)
	ctx := context.Background()
	beat(t, b, "gw-1", "gw-2")
	r1 := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1, Epoch: 4}
	if err := b.Register(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, a, "alice"); !slices.Equal(got, []router.Route{r1}) {
		t.Fatalf("Lookup = %+v", got)
	}
	const within = time.Second

	r2 := router.Route{User: "alice", Device: "phone", Node: "gw-2", Conn: 2, Epoch: 5}
	if err := b.Register(ctx, r2); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, within, "a Register through b seen by a", func() bool {
		return slices.Equal(lookup(t, a, "alice"), []router.Route{r2})
	})
	t.Logf("Register through b seen by a after %v", took)

	if err := raw.Do(ctx, raw.B().Del().Key(a.nodeKey("gw-2")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	took = eventually(t, within, "a node's liveness key deleted", func() bool { return len(lookup(t, a, "alice")) == 0 })
	t.Logf("dead node seen after %v", took)

	// A node whose key expires (its Keeper stopped) disappears too.
	k := a.Keeper("gw-3", "i1", nil)
	if _, err := k.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	r3 := router.Route{User: "bob", Device: "phone", Node: "gw-3", Conn: 3}
	if err := a.Register(ctx, r3); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, a, "bob"); len(got) != 1 {
		t.Fatalf("Lookup(bob) = %+v", got)
	}
	took = eventually(t, 3*time.Second, "a node whose liveness expired", func() bool { return len(lookup(t, a, "bob")) == 0 })
	t.Logf("expired node (TTL %v) seen after %v", livenessIntervals*a.Config().HeartbeatInterval, took)
}

// TestDeadNodesSwept: a Lookup that finds fields of dead nodes deletes
// them, so a user's hash does not keep the routes of every node it was
// ever on; fields of live nodes stay.
func TestDeadNodesSwept(t *testing.T) {
	addr := testengines.Redis(t).Addr
	d := newDir(t, addr, Config{HeartbeatInterval: time.Minute})
	raw := rawClient(t, addr)
	ctx := context.Background()
	beat(t, d, "gw-1", "gw-2", "gw-3")
	live := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	for _, r := range []router.Route{live,
		{User: "alice", Device: "laptop", Node: "gw-2", Conn: 2},
		{User: "alice", Device: "tablet", Node: "gw-3", Conn: 3},
		{User: "alice", Device: "watch", Node: "gw-3", Conn: 4},
	} {
		if err := d.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Do(ctx, raw.B().Del().Key(d.nodeKey("gw-2"), d.nodeKey("gw-3")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "dead nodes' routes hidden", func() bool {
		return slices.Equal(lookup(t, d, "alice"), []router.Route{live})
	})
	n, err := raw.Do(ctx, raw.B().Hlen().Key(d.routesKey("alice")).Build()).AsInt64()
	if err != nil || n != 1 {
		t.Fatalf("HLEN after the Lookup = %d, %v; want 1 (the dead nodes' fields deleted)", n, err)
	}
	if err := d.Unregister(ctx, live); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Do(ctx, raw.B().Exists().Key(d.routesKey("alice")).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("EXISTS of an emptied hash = %d, %v; want 0", n, err)
	}
}

// TestKeeperRebuildsAfterRestart: Redis restarts without persistence,
// losing every route and liveness key; while it is down Register and
// Lookup fail; the node's Keeper registers its routes again within one
// heartbeat interval of Redis coming back.
func TestKeeperRebuildsAfterRestart(t *testing.T) {
	srv := testengines.NewRedis(t)
	const interval = 300 * time.Millisecond
	d := newDir(t, srv.Addr, Config{HeartbeatInterval: interval})
	ctx := context.Background()
	var mu sync.Mutex
	var held []router.Route
	k := d.Keeper("gw-1", "incarnation-1", func() []router.Route {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(held)
	})
	if rebuilt, err := k.Beat(ctx); err != nil || !rebuilt {
		t.Fatalf("first Beat = %v, %v; want a (trivial) rebuild", rebuilt, err)
	}
	for i := range 50 {
		r := router.Route{User: fmt.Sprintf("user-%d", i%10), Device: fmt.Sprintf("dev-%d", i), Node: "gw-1", Conn: uint64(i), Epoch: uint64(100 + i)}
		if err := d.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		held = append(held, r)
		mu.Unlock()
	}
	if got := lookup(t, d, "user-3"); len(got) != 5 {
		t.Fatalf("Lookup(user-3) = %+v, want 5 routes", got)
	}

	runCtx, stop := context.WithCancel(ctx)
	var reports atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(runCtx, func(rebuilt bool, err error) {
			if rebuilt {
				reports.Add(1)
			}
		})
	}()
	defer func() { stop(); <-done }()

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := d.Register(short, router.Route{User: "x", Device: "d", Node: "gw-1", Conn: 99}); err == nil {
		t.Fatal("Register with Redis down succeeded")
	}
	if _, err := d.Lookup(short, "user-3", nil); err == nil {
		t.Fatal("Lookup with Redis down succeeded")
	}
	srv.Start(t)
	took := eventually(t, interval+time.Second, "routes rebuilt", func() bool {
		got, err := d.Lookup(ctx, "user-3", nil)
		return err == nil && len(got) == 5
	})
	t.Logf("routes back %v after Redis answered again (heartbeat interval %v)", took, interval)
	if took > interval+200*time.Millisecond {
		t.Errorf("routes back after %v, want within one interval (%v)", took, interval)
	}
	for i := range 10 {
		if got := lookup(t, d, fmt.Sprintf("user-%d", i)); len(got) != 5 {
			t.Fatalf("after rebuild Lookup(user-%d) = %+v", i, got)
		}
	}
	if reports.Load() == 0 {
		t.Fatal("Run reported no rebuild")
	}
}

// TestKeeperRepeatsRebuild: after a rebuild the next beat registers again
// (restoring a route a concurrent sweep deleted), and the one after does
// not.
func TestKeeperRepeatsRebuild(t *testing.T) {
	addr := testengines.Redis(t).Addr
	d := newDir(t, addr, Config{HeartbeatInterval: time.Minute})
	raw := rawClient(t, addr)
	ctx := context.Background()
	r := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1, Epoch: 3}
	calls := 0
	k := d.Keeper("gw-1", "i1", func() []router.Route { calls++; return []router.Route{r} })
	for i, want := range []bool{true, true, false, false} {
		if i == 1 {
			// A sweep that raced the rebuild deleted the route.
			if err := raw.Do(ctx, raw.B().Del().Key(d.routesKey("alice")).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		if rebuilt, err := k.Beat(ctx); err != nil || rebuilt != want {
			t.Fatalf("beat %d = %v, %v; want %v", i, rebuilt, err, want)
		}
	}
	if calls != 2 {
		t.Fatalf("routes called %d times, want 2", calls)
	}
	eventually(t, time.Second, "route restored", func() bool {
		return slices.Equal(lookup(t, d, "alice"), []router.Route{r})
	})
	// Another incarnation of the node (a restarted process) rebuilds too.
	if rebuilt, err := d.Keeper("gw-1", "i2", nil).Beat(ctx); err != nil || !rebuilt {
		t.Fatalf("beat of a new incarnation = %v, %v; want rebuilt", rebuilt, err)
	}
}

// TestNextEpochSurvivesLostCounter: an epoch taken after the counter was
// lost is still larger than those before.
func TestNextEpochSurvivesLostCounter(t *testing.T) {
	addr := testengines.Redis(t).Addr
	d := newDir(t, addr, Config{})
	raw := rawClient(t, addr)
	ctx := context.Background()
	var last uint64
	for range 3 {
		e, err := d.NextEpoch(ctx, "alice", "phone")
		if err != nil || e <= last {
			t.Fatalf("NextEpoch = %d, %v after %d", e, err, last)
		}
		last = e
	}
	if err := raw.Do(ctx, raw.B().Del().Key(d.epochKey("alice")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if e, err := d.NextEpoch(ctx, "alice", "phone"); err != nil || e <= last {
		t.Fatalf("NextEpoch after the counter was lost = %d, %v; want above %d", e, err, last)
	}
}

func TestRegisterRejectsNUL(t *testing.T) {
	d := newDir(t, testengines.Redis(t).Addr, Config{})
	for _, r := range []router.Route{
		{User: "alice", Device: "ph\x00one", Node: "gw-1"},
		{User: "alice", Device: "phone", Node: "gw\x001"},
	} {
		if err := d.Register(context.Background(), r); !errors.Is(err, ErrInvalidRoute) {
			t.Fatalf("Register(%+v) = %v, want ErrInvalidRoute", r, err)
		}
	}
}

// TestRegisterReplacingReports: an ordered Register reports exactly the
// routes of the device it removed (on any node, with their epochs), not
// those of other devices or with epoch 0, and a refused one reports none.
func TestRegisterReplacingReports(t *testing.T) {
	d := newDir(t, testengines.Redis(t).Addr, Config{HeartbeatInterval: time.Minute})
	beat(t, d, "gw-1", "gw-2")
	ctx := context.Background()
	old1 := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1, Epoch: 10}
	old2 := router.Route{User: "alice", Device: "phone", Node: "gw-2", Conn: 7, Epoch: 10} // equal epochs coexist
	unordered := router.Route{User: "alice", Device: "phone", Node: "gw-2", Conn: 8}
	laptop := router.Route{User: "alice", Device: "laptop", Node: "gw-1", Conn: 2, Epoch: 5}
	for _, r := range []router.Route{old1, old2, unordered, laptop} {
		if err := d.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	newer := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 3, Epoch: 20}
	got, err := d.RegisterReplacing(ctx, newer, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := func(a, b router.Route) int { return cmp.Or(cmp.Compare(a.Epoch, b.Epoch), cmp.Compare(a.Conn, b.Conn)) }
	slices.SortFunc(got, order)
	if want := []router.Route{old1, old2}; !slices.Equal(got, want) {
		t.Fatalf("replaced %+v, want %+v", got, want)
	}
	stale := router.Route{User: "alice", Device: "phone", Node: "gw-2", Conn: 9, Epoch: 15}
	got, err = d.RegisterReplacing(ctx, stale, nil)
	if !errors.Is(err, router.ErrSuperseded) || len(got) != 0 {
		t.Fatalf("stale register: %+v, %v; want none and ErrSuperseded", got, err)
	}
	routes := lookup(t, d, "alice")
	slices.SortFunc(routes, order)
	if want := []router.Route{unordered, laptop, newer}; !slices.Equal(routes, want) {
		t.Fatalf("lookup %+v, want %+v", routes, want)
	}
}

// TestPrefetch: after one Prefetch of several users, their Lookups read
// their routes from the local cache (only the nodes' liveness, read once,
// misses).
func TestPrefetch(t *testing.T) {
	addr := testengines.Redis(t).Addr
	writer := newDir(t, addr, Config{})
	d := newDir(t, addr, writer.Config())
	beat(t, writer, "gw-1")
	ctx := context.Background()
	users := []string{"u1", "u2", "u3", "u4", "nobody"}
	for i, u := range users[:4] {
		if err := writer.Register(ctx, router.Route{User: u, Device: "phone", Node: "gw-1", Conn: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Prefetch(ctx, users); err != nil {
		t.Fatal(err)
	}
	hits, misses := countCache(d)
	for _, u := range users {
		got := lookup(t, d, u)
		if want := 1; u == "nobody" {
			if len(got) != 0 {
				t.Fatalf("Lookup(nobody) = %+v", got)
			}
		} else if len(got) != want || got[0].User != u {
			t.Fatalf("Lookup(%s) = %+v", u, got)
		}
	}
	// 5 route hashes from the cache, the node's liveness read once.
	if hits.Load() != 5+3 || misses.Load() != 1 {
		t.Fatalf("Lookups after Prefetch: %d hits, %d misses; want 8 (5 hashes, 3 liveness) and 1 (gw-1's liveness, first read)", hits.Load(), misses.Load())
	}
}

// TestNodesAlive: a node is alive while its Keeper beats, and not once
// its liveness key is gone.
func TestNodesAlive(t *testing.T) {
	d := newDir(t, testengines.Redis(t).Addr, Config{})
	ctx := context.Background()
	beat(t, d, "gw-1")
	got, err := d.NodesAlive(ctx, []string{"gw-1", "gw-never"})
	if err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("NodesAlive = %v, %v; want [true false]", got, err)
	}
	raw := rawClient(t, testengines.Redis(t).Addr)
	if err := raw.Do(ctx, raw.B().Del().Key(d.nodeKey("gw-1")).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got, err := d.NodesAlive(ctx, []string{"gw-1"}); err != nil || got[0] {
		t.Fatalf("NodesAlive after the key expired = %v, %v; want [false]", got, err)
	}
}

// countCache counts d's client-side cache hits and misses from now on.
func countCache(d *Directory) (hits, misses *atomic.Int64) {
	hits, misses = new(atomic.Int64), new(atomic.Int64)
	d.cacheHook = func(hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	}
	return hits, misses
}
