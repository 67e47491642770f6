// Package routertest is the conformance suite for router.Directory, run by
// every backend from its own tests:
//
//	func TestDirectory(t *testing.T) {
//		routertest.Run(t, func(t *testing.T) router.Directory { return memory.NewDirectory() })
//	}
//
// Lookup order is unspecified; the suite compares routes as sets. Every
// route the suite registers is on a node named gw-0 … gw-9; a backend
// that returns only the routes of live nodes marks those alive in newDir.
package routertest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/router"
)

// Run runs the router.Directory conformance suite. newDir returns a new,
// empty directory for one subtest; it registers its own cleanup.
func Run(t *testing.T, newDir func(t *testing.T) router.Directory) {
	t.Run("RegisterLookupUnregister", func(t *testing.T) { testRegisterLookupUnregister(t, newDir(t)) })
	t.Run("DevicesAndNodes", func(t *testing.T) { testDevicesAndNodes(t, newDir(t)) })
	t.Run("DoubleRegister", func(t *testing.T) { testDoubleRegister(t, newDir(t)) })
	t.Run("UnregisterUnknown", func(t *testing.T) { testUnregisterUnknown(t, newDir(t)) })
	t.Run("LookupAppends", func(t *testing.T) { testLookupAppends(t, newDir(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newDir(t)) })
	t.Run("Epochs", func(t *testing.T) { testEpochs(t, newDir(t)) })
	t.Run("EpochsConcurrent", func(t *testing.T) { testEpochsConcurrent(t, newDir(t)) })
	t.Run("EpochSource", func(t *testing.T) { testEpochSource(t, newDir(t)) })
}

func compareRoutes(a, b router.Route) int {
	return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Device, b.Device),
		cmp.Compare(a.Node, b.Node), cmp.Compare(a.Conn, b.Conn), cmp.Compare(a.Epoch, b.Epoch))
}

func register(t *testing.T, d router.Directory, rs ...router.Route) {
	t.Helper()
	for _, r := range rs {
		if err := d.Register(context.Background(), r); err != nil {
			t.Fatalf("Register(%+v): %v", r, err)
		}
	}
}

func unregister(t *testing.T, d router.Directory, rs ...router.Route) {
	t.Helper()
	for _, r := range rs {
		if err := d.Unregister(context.Background(), r); err != nil {
			t.Fatalf("Unregister(%+v): %v", r, err)
		}
	}
}

// wantRoutes checks that user's routes are exactly want, in any order.
func wantRoutes(t *testing.T, d router.Directory, user string, want ...router.Route) {
	t.Helper()
	got, err := d.Lookup(context.Background(), user, nil)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", user, err)
	}
	got = slices.Clone(got)
	want = slices.Clone(want)
	slices.SortFunc(got, compareRoutes)
	slices.SortFunc(want, compareRoutes)
	if !slices.Equal(got, want) {
		t.Fatalf("Lookup(%q) = %+v, want %+v", user, got, want)
	}
}

func testRegisterLookupUnregister(t *testing.T, d router.Directory) {
	wantRoutes(t, d, "alice")
	r := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	register(t, d, r)
	wantRoutes(t, d, "alice", r)
	wantRoutes(t, d, "bob")
	wantRoutes(t, d, "alic")
	wantRoutes(t, d, "alice2")
	unregister(t, d, r)
	wantRoutes(t, d, "alice")
	register(t, d, r)
	wantRoutes(t, d, "alice", r)
}

func testDevicesAndNodes(t *testing.T, d router.Directory) {
	phone := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	laptop := router.Route{User: "alice", Device: "laptop", Node: "gw-2", Conn: 1}
	tablet := router.Route{User: "alice", Device: "tablet", Node: "gw-1", Conn: 2}
	bob := router.Route{User: "bob", Device: "phone", Node: "gw-1", Conn: 3}
	// A device that reconnected elsewhere before its old connection was
	// unregistered has two routes for a while.
	phone2 := router.Route{User: "alice", Device: "phone", Node: "gw-3", Conn: 9}
	register(t, d, phone, laptop, tablet, bob, phone2)
	wantRoutes(t, d, "alice", phone, laptop, tablet, phone2)
	wantRoutes(t, d, "bob", bob)

	unregister(t, d, laptop)
	wantRoutes(t, d, "alice", phone, tablet, phone2)
	unregister(t, d, phone)
	wantRoutes(t, d, "alice", tablet, phone2)
	wantRoutes(t, d, "bob", bob)
	unregister(t, d, tablet, phone2, bob)
	wantRoutes(t, d, "alice")
	wantRoutes(t, d, "bob")
}

// testDoubleRegister pins "harmless": the route is listed once (a second
// copy would deliver twice) and one Unregister removes it.
func testDoubleRegister(t *testing.T, d router.Directory) {
	r := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	register(t, d, r, r)
	wantRoutes(t, d, "alice", r)
	unregister(t, d, r)
	wantRoutes(t, d, "alice")
}

func testUnregisterUnknown(t *testing.T, d router.Directory) {
	r := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	unregister(t, d, r) // unknown user
	register(t, d, r)
	// Routes match on all fields: each of these differs from r in one.
	unregister(t, d,
		router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 2},
		router.Route{User: "alice", Device: "phone", Node: "gw-2", Conn: 1},
		router.Route{User: "alice", Device: "laptop", Node: "gw-1", Conn: 1},
		router.Route{User: "bob", Device: "phone", Node: "gw-1", Conn: 1},
	)
	wantRoutes(t, d, "alice", r)
	unregister(t, d, r, r)
	wantRoutes(t, d, "alice")
}

func testLookupAppends(t *testing.T, d router.Directory) {
	ctx := context.Background()
	r1 := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1}
	r2 := router.Route{User: "alice", Device: "laptop", Node: "gw-2", Conn: 2}
	register(t, d, r1, r2)

	sentinel := router.Route{User: "someone", Device: "else", Node: "gw-9", Conn: 99}
	dst := make([]router.Route, 1, 8)
	dst[0] = sentinel
	got, err := d.Lookup(ctx, "alice", dst)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if len(got) != 3 || got[0] != sentinel {
		t.Fatalf("Lookup(alice, [sentinel]) = %+v, want the sentinel then 2 routes", got)
	}
	if &got[0] != &dst[0] {
		t.Fatalf("Lookup reallocated dst although it had capacity")
	}
	slices.SortFunc(got[1:], compareRoutes)
	if !slices.Equal(got[1:], []router.Route{r2, r1}) {
		t.Fatalf("Lookup(alice) appended %+v, want %+v", got[1:], []router.Route{r2, r1})
	}

	got, err = d.Lookup(ctx, "nobody", dst)
	if err != nil || len(got) != 1 || got[0] != sentinel {
		t.Fatalf("Lookup(nobody, [sentinel]) = %+v, %v; want dst unchanged", got, err)
	}
	got, err = d.Lookup(ctx, "nobody", nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Lookup(nobody, nil) = %+v, %v; want empty", got, err)
	}
}

// testConcurrent registers and unregisters routes of shared users from
// many goroutines while others look them up, then checks the final state.
// A goroutine's Lookup right after its Register must see the route.
func testConcurrent(t *testing.T, d router.Directory) {
	const workers, users, perWorker = 8, 6, 60
	route := func(w, i int) router.Route {
		return router.Route{User: fmt.Sprintf("user-%d", i%users), Device: fmt.Sprintf("dev-%d-%d", w, i), Node: fmt.Sprintf("gw-%d", w%3), Conn: uint64(w*perWorker + i)}
	}
	kept := func(i int) bool { return i%3 != 0 }

	stop := make(chan struct{})
	var lookers sync.WaitGroup
	for range 3 {
		lookers.Go(func() {
			var dst []router.Route
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := fmt.Sprintf("user-%d", i%users)
				var err error
				dst, err = d.Lookup(context.Background(), u, dst[:0])
				if err != nil {
					t.Errorf("Lookup: %v", err)
					return
				}
				for _, r := range dst {
					if r.User != u {
						t.Errorf("Lookup(%q) returned %+v", u, r)
						return
					}
				}
			}
		})
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			var dst []router.Route
			for i := range perWorker {
				r := route(w, i)
				if err := d.Register(ctx, r); err != nil {
					t.Errorf("Register: %v", err)
					return
				}
				var err error
				if dst, err = d.Lookup(ctx, r.User, dst[:0]); err != nil {
					t.Errorf("Lookup: %v", err)
					return
				}
				if !slices.Contains(dst, r) {
					t.Errorf("Lookup(%q) after Register(%+v) returned does not hold it", r.User, r)
					return
				}
			}
			for i := range perWorker {
				if !kept(i) {
					if err := d.Unregister(ctx, route(w, i)); err != nil {
						t.Errorf("Unregister: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	lookers.Wait()
	if t.Failed() {
		return
	}

	want := make(map[string][]router.Route)
	for w := range workers {
		for i := range perWorker {
			if r := route(w, i); kept(i) {
				want[r.User] = append(want[r.User], r)
			}
		}
	}
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		wantRoutes(t, d, user, want[user]...)
	}
}

// testEpochs pins the ordering of one device's connections by Route.Epoch.
func testEpochs(t *testing.T, d router.Directory) {
	ctx := context.Background()
	old := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 1, Epoch: 5}
	laptop := router.Route{User: "alice", Device: "laptop", Node: "gw-1", Conn: 2, Epoch: 3}
	bob := router.Route{User: "bob", Device: "phone", Node: "gw-1", Conn: 3, Epoch: 1}
	register(t, d, old, laptop, bob)
	wantRoutes(t, d, "alice", old, laptop)

	// A newer connection of the phone replaces the older one, and only it.
	newer := router.Route{User: "alice", Device: "phone", Node: "gw-2", Conn: 1, Epoch: 7}
	register(t, d, newer)
	wantRoutes(t, d, "alice", newer, laptop)
	wantRoutes(t, d, "bob", bob)

	// A stale Register (epoch 6 < 7, arriving late) is refused and changes
	// nothing, on any node, including the superseded route itself.
	for _, stale := range []router.Route{
		{User: "alice", Device: "phone", Node: "gw-3", Conn: 4, Epoch: 6},
		old,
	} {
		if err := d.Register(ctx, stale); !errors.Is(err, router.ErrSuperseded) {
			t.Fatalf("Register(%+v) after epoch 7 = %v, want ErrSuperseded", stale, err)
		}
	}
	wantRoutes(t, d, "alice", newer, laptop)

	// Registering the current route again is harmless.
	register(t, d, newer)
	wantRoutes(t, d, "alice", newer, laptop)

	// Epoch 0 is unordered: it coexists, and an ordered Register neither
	// removes it nor is refused by it.
	unordered := router.Route{User: "alice", Device: "phone", Node: "gw-3", Conn: 5}
	register(t, d, unordered)
	wantRoutes(t, d, "alice", newer, laptop, unordered)
	newest := router.Route{User: "alice", Device: "phone", Node: "gw-1", Conn: 6, Epoch: 9}
	register(t, d, newest)
	wantRoutes(t, d, "alice", newest, laptop, unordered)

	// Registering a route again with another epoch replaces its epoch.
	reEpoch := laptop
	reEpoch.Epoch = 4
	register(t, d, reEpoch)
	wantRoutes(t, d, "alice", newest, reEpoch, unordered)

	// Unregister matches user, device, node and connection, not the epoch.
	anyEpoch := newest
	anyEpoch.Epoch = 0
	unregister(t, d, anyEpoch, reEpoch, unordered)
	wantRoutes(t, d, "alice")
}

// testEpochsConcurrent races Registers of one device with distinct epochs:
// each succeeds or is superseded, and the route left is the largest epoch.
func testEpochsConcurrent(t *testing.T, d router.Directory) {
	const workers, perWorker = 6, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				e := uint64(i*workers + w + 1)
				r := router.Route{User: "carol", Device: "phone", Node: fmt.Sprintf("gw-%d", w), Conn: e, Epoch: e}
				if err := d.Register(context.Background(), r); err != nil && !errors.Is(err, router.ErrSuperseded) {
					t.Errorf("Register(%+v): %v", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const last = workers * perWorker
	wantRoutes(t, d, "carol", router.Route{User: "carol", Device: "phone", Node: fmt.Sprintf("gw-%d", (last-1)%workers), Conn: last, Epoch: last})
}

// testEpochSource checks NextEpoch, for directories that have it: positive,
// increasing, distinct under concurrency, and usable as Route.Epoch.
func testEpochSource(t *testing.T, d router.Directory) {
	src, ok := d.(router.EpochSource)
	if !ok {
		t.Skip("the directory is not a router.EpochSource")
	}
	ctx := context.Background()
	next := func(user, device string) uint64 {
		e, err := src.NextEpoch(ctx, user, device)
		if err != nil {
			t.Errorf("NextEpoch(%q, %q): %v", user, device, err)
		}
		return e
	}
	var prev uint64
	for range 5 {
		e := next("dave", "phone")
		if e <= prev {
			t.Fatalf("NextEpoch = %d after %d, want larger", e, prev)
		}
		prev = e
	}

	const workers, perWorker = 4, 25
	var mu sync.Mutex
	seen := make(map[uint64]bool)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				e := next("dave", "phone")
				mu.Lock()
				if seen[e] || e <= prev {
					t.Errorf("NextEpoch returned %d twice or not above %d", e, prev)
				}
				seen[e] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	first, second := next("dave", "laptop"), next("dave", "laptop")
	r2 := router.Route{User: "dave", Device: "laptop", Node: "gw-2", Conn: 2, Epoch: second}
	r1 := router.Route{User: "dave", Device: "laptop", Node: "gw-1", Conn: 1, Epoch: first}
	register(t, d, r2)
	if err := d.Register(ctx, r1); !errors.Is(err, router.ErrSuperseded) {
		t.Fatalf("Register with the earlier epoch = %v, want ErrSuperseded", err)
	}
	wantRoutes(t, d, "dave", r2)
}
