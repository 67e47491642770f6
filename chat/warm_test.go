package chat_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
)

// slowHeads is a store whose LastSeq takes a while, as on a store across
// the network, and which records how many were in flight at once.
type slowHeads struct {
	chat.Store
	inFlight, most, calls atomic.Int32
}

func (s *slowHeads) LastSeq(ctx context.Context, user string) (uint64, error) {
	s.calls.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	return s.Store.LastSeq(ctx, user)
}

// A Service with cold caches reads the heads a batch needs in parallel,
// and continues every inbox from its stored last seq.
func TestColdHeadsReadInParallel(t *testing.T) {
	mem := memory.NewStore()
	first, _, _ := newService(t, mem, chat.Config{})
	c := newCompleter()
	for i, to := range []string{"bob", "bob", "carol"} {
		first.Submit(send("alice", string(rune('a'+i)), to, "before", c))
		c.wait(t, 1)
	}
	first.Close()

	// A new Service on the same store: every cache cold (a worker that
	// took over a sequencer).
	store := &slowHeads{Store: mem}
	svc, _, _ := newService(t, store, chat.Config{})
	svc.Submit(send("alice", "z", "bob", "after", c))
	c.wait(t, 1)
	if err := c.got["z"].Err; err != nil {
		t.Fatal(err)
	}
	if got := store.most.Load(); got < 2 {
		t.Fatalf("at most %d LastSeq in flight; want alice's and bob's read together", got)
	}
	if got := store.calls.Load(); got != 2 {
		t.Fatalf("%d LastSeq calls; want 2 (alice's and bob's, each once)", got)
	}
	bob := inbox(t, svc, "bob")
	alice := inbox(t, svc, "alice")
	if len(bob) != 3 || bob[2]["body"] != "after" || bob[2]["seq"].(float64) != 3 {
		t.Fatalf("bob's inbox: %v", bob)
	}
	if len(alice) != 4 || alice[3]["seq"].(float64) != 4 {
		t.Fatalf("alice's inbox (her own copies): %v", alice)
	}
}

// prefetchDir is a directory that records what it is asked to prefetch.
type prefetchDir struct {
	*memory.Directory
	mu    sync.Mutex
	calls [][]string
}

func (d *prefetchDir) Prefetch(_ context.Context, users []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, slices.Clone(users))
	return nil
}

// The post stage hands a directory that can prefetch every user of a
// batch's entries, once each, before delivering them one by one.
func TestDeliveryPrefetchesRoutes(t *testing.T) {
	dir := &prefetchDir{Directory: memory.NewDirectory()}
	svc, err := chat.New(chat.Config{}, memory.NewStore(), &recorder{seen: map[string][]uint64{}}, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	c := newCompleter()
	svc.Submit(send("alice", "1", "bob", "hi", c))
	c.wait(t, 1)
	svc.Close() // the post stage has delivered the batch
	dir.mu.Lock()
	defer dir.mu.Unlock()
	if len(dir.calls) != 1 {
		t.Fatalf("Prefetch calls: %v; want one, for the batch", dir.calls)
	}
	got := dir.calls[0]
	slices.Sort(got)
	if !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("Prefetch(%v); want bob (the recipient) and alice (her own copy)", got)
	}
}
