package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/router"
)

// completer collects results.
type completer struct {
	mu  sync.Mutex
	got map[string]chat.Result // by client id
	ch  chan struct{}
}

func newCompleter() *completer {
	return &completer{got: map[string]chat.Result{}, ch: make(chan struct{}, 1<<16)}
}

func (c *completer) Complete(r *chat.Request, res chat.Result) {
	c.mu.Lock()
	c.got[string(r.ClientID)] = res
	c.mu.Unlock()
	c.ch <- struct{}{}
}

func (c *completer) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.ch:
		case <-time.After(5 * time.Second):
			t.Fatal("request not completed in 5s")
		}
	}
}

// recorder is a Bus that records deliveries.
type recorder struct {
	mu     sync.Mutex
	seen   map[string][]uint64
	events []string // analytics events, as emitted
}

func (r *recorder) Publish(_ context.Context, node string, d *chat.Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range d.Items {
		r.seen[it.User] = append(r.seen[it.User], it.Seq)
	}
	return nil
}

func (r *recorder) Subscribe(string, chat.DeliveryHandler) (func(), error) { return func() {}, nil }

func (r *recorder) Emit(topic, key string, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if topic == chat.StreamEvents {
		r.events = append(r.events, string(value))
	}
	return nil
}

func (r *recorder) Consume(string, chat.StreamHandler) (func(), error) { return func() {}, nil }

func newService(t *testing.T, store chat.Store, cfg chat.Config) (*chat.Service, *recorder, *memory.Directory) {
	t.Helper()
	bus := &recorder{seen: map[string][]uint64{}}
	dir := memory.NewDirectory()
	svc, err := chat.New(cfg, store, bus, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc, bus, dir
}

func send(from, id, to, body string, done chat.Completer) *chat.Request {
	return &chat.Request{Kind: chat.KindSend, From: from, ClientID: []byte(id), To: []byte(to), Body: []byte(body), Done: done}
}

func inbox(t *testing.T, svc *chat.Service, user string) []map[string]any {
	t.Helper()
	var out []map[string]any
	err := svc.ReadInbox(context.Background(), user, 0, 1000, func(seq uint64, frame []byte) error {
		var m map[string]any
		if err := json.Unmarshal(frame, &m); err != nil {
			return err
		}
		if uint64(m["seq"].(float64)) != seq {
			return fmt.Errorf("frame seq %v stored under %d", m["seq"], seq)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSendIsIdempotentAndOrdered(t *testing.T) {
	svc, bus, dir := newService(t, memory.NewStore(), chat.Config{})
	dir.Register(context.Background(), router.Route{User: "bob", Node: "n1", Conn: 1})
	c := newCompleter()
	for i := range 100 {
		if err := svc.Submit(send("alice", fmt.Sprint(i), "bob", fmt.Sprint("m", i), c)); err != nil {
			t.Fatal(err)
		}
	}
	// The same ids again, in one burst: answered from the batch or the cache.
	dup := newCompleter()
	for i := range 100 {
		svc.Submit(send("alice", fmt.Sprint(i), "bob", "changed body", dup))
	}
	c.wait(t, 100)
	dup.wait(t, 100)
	for id, r := range c.got {
		if r.Err != nil || r.Dup || len(r.MsgID) != chat.IDLen {
			t.Fatalf("%s: %+v", id, r)
		}
		if d := dup.got[id]; !d.Dup || d.MsgID != r.MsgID || d.TS != r.TS {
			t.Fatalf("resend of %s: %+v, first %+v", id, d, r)
		}
	}
	entries := inbox(t, svc, "bob")
	if len(entries) != 100 {
		t.Fatalf("bob has %d entries, want 100", len(entries))
	}
	prev := ""
	for i, e := range entries {
		if e["body"] != fmt.Sprint("m", i) || e["from"] != "alice" || e["msg_id"] != c.got[fmt.Sprint(i)].MsgID {
			t.Fatalf("entry %d: %v", i, e)
		}
		if id := e["msg_id"].(string); id <= prev {
			t.Fatalf("msg ids not time-ordered: %s after %s", id, prev)
		} else {
			prev = id
		}
	}
	// A batch's deliveries follow its answers: the last batch (which may
	// hold resends answered from it) may still be delivering.
	var got []uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		bus.mu.Lock()
		got = slices.Clone(bus.seen["bob"])
		bus.mu.Unlock()
		if len(got) >= 100 || time.Now().After(deadline) {
			break
		}
	}
	if len(got) != 100 || got[0] != 1 || got[99] != 100 {
		t.Fatalf("deliveries to bob: %v", got)
	}
}

func TestReceipts(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	c := newCompleter()
	svc.Submit(send("alice", "a1", "bob", "one", c))
	svc.Submit(send("carol", "c1", "bob", "two", c))
	c.wait(t, 2)
	a1, c1 := c.got["a1"].MsgID, c.got["c1"].MsgID
	receipt := func(by string, st chat.Status, ids ...string) {
		r := &chat.Request{Kind: chat.KindReceipt, From: by, Status: st, ClientID: []byte("r"), Done: c}
		for _, id := range ids {
			r.MsgIDs = append(r.MsgIDs, []byte(id))
		}
		svc.Submit(r)
		c.wait(t, 1)
		if err := c.got["r"].Err; err != nil {
			t.Fatal(err)
		}
	}
	receipt("mallory", chat.StatusRead, a1)                    // not the recipient: ignored
	receipt("bob", chat.StatusDelivered, a1, c1, "unknown-id") // one entry per sender
	receipt("bob", chat.StatusDelivered, a1)                   // already delivered: ignored
	receipt("bob", chat.StatusRead, a1)
	receipt("bob", chat.StatusDelivered, a1) // backwards: ignored
	// Each sender's inbox holds its own message (for its other devices),
	// then the receipts.
	alice := inbox(t, svc, "alice")
	if len(alice) != 3 || alice[0]["type"] != "msg" || alice[0]["msg_id"] != a1 || alice[0]["from"] != "alice" ||
		alice[1]["status"] != "delivered" || alice[2]["status"] != "read" ||
		alice[1]["by"] != "bob" || alice[1]["msg_ids"].([]any)[0] != a1 {
		t.Fatalf("alice's inbox: %v", alice)
	}
	carol := inbox(t, svc, "carol")
	if len(carol) != 2 || carol[1]["status"] != "delivered" || carol[1]["msg_ids"].([]any)[0] != c1 {
		t.Fatalf("carol's inbox: %v", carol)
	}
	if m, _, _ := memoryMeta(svc, a1); m.Status != chat.StatusRead {
		t.Fatalf("a1 status %v, want read", m.Status)
	}
}

// memoryMeta reads a message's meta through a receipt-free path.
func memoryMeta(svc *chat.Service, id string) (chat.MessageMeta, bool, error) {
	return chat.MessageOf(svc, context.Background(), id)
}

// flakyStore fails Apply while fail is set.
type flakyStore struct {
	chat.Store
	fail atomic.Bool
}

var errDisk = errors.New("disk on fire")

func (f *flakyStore) Apply(ctx context.Context, b *chat.Batch) error {
	if f.fail.Load() {
		return errDisk
	}
	return f.Store.Apply(ctx, b)
}

// A failed Apply answers every request with the error and leaves no gap
// in any inbox: the seqs it assigned are reused by the next batch.
func TestFailedApplyLeavesNoGap(t *testing.T) {
	store := &flakyStore{Store: memory.NewStore()}
	svc, _, _ := newService(t, store, chat.Config{})
	c := newCompleter()
	svc.Submit(send("alice", "1", "bob", "first", c))
	c.wait(t, 1)
	store.fail.Store(true)
	svc.Submit(send("alice", "2", "bob", "lost", c))
	c.wait(t, 1)
	if !errors.Is(c.got["2"].Err, errDisk) {
		t.Fatalf("want the store's error, got %+v", c.got["2"])
	}
	store.fail.Store(false)
	svc.Submit(send("alice", "2", "bob", "retried", c))
	svc.Submit(send("alice", "3", "bob", "third", c))
	c.wait(t, 2)
	entries := inbox(t, svc, "bob")
	if len(entries) != 3 || entries[1]["body"] != "retried" || entries[2]["seq"].(float64) != 3 {
		t.Fatalf("bob's inbox after a failed batch: %v", entries)
	}
}

func TestOverloadedAndShutdown(t *testing.T) {
	block := make(chan struct{})
	store := &blockingStore{Store: memory.NewStore(), block: block}
	svc, err := chat.New(chat.Config{QueueSize: 4, MaxBatch: 1}, store, &recorder{seen: map[string][]uint64{}}, memory.NewDirectory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newCompleter()
	var overloaded bool
	for i := range 20 {
		if err := svc.Submit(send("alice", fmt.Sprint(i), "bob", "x", c)); errors.Is(err, chat.ErrOverloaded) {
			overloaded = true
			break
		}
	}
	if !overloaded {
		t.Fatal("a full queue did not refuse with ErrOverloaded")
	}
	close(block)
	svc.Close()
	if err := svc.Submit(send("alice", "late", "bob", "x", c)); !errors.Is(err, chat.ErrShuttingDown) {
		t.Fatalf("Submit after Close: %v", err)
	}
}

type blockingStore struct {
	chat.Store
	block chan struct{}
}

func (b *blockingStore) Apply(ctx context.Context, batch *chat.Batch) error {
	<-b.block
	return b.Store.Apply(ctx, batch)
}

func TestIDGenMonotonic(t *testing.T) {
	var g chat.IDGen
	now := time.UnixMilli(1_764_170_000_000)
	prev := ""
	for i := range 10000 {
		at := now
		if i%100 == 50 {
			at = now.Add(-time.Second) // the clock steps back: ids must still grow
		}
		id := g.Next(at)
		if len(id) != chat.IDLen || id <= prev {
			t.Fatalf("id %d: %q after %q", i, id, prev)
		}
		prev = id
		if i%1000 == 0 {
			now = now.Add(time.Millisecond)
		}
	}
	if ts, ok := chat.IDTime(g.Next(now.Add(time.Hour))); !ok || !ts.Equal(now.Add(time.Hour)) {
		t.Fatalf("IDTime: %v %v", ts, ok)
	}
}

// gatedStore holds its first Apply until release, then fails it.
type gatedStore struct {
	chat.Store
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (g *gatedStore) Apply(ctx context.Context, b *chat.Batch) error {
	if g.calls.Add(1) == 1 {
		close(g.entered)
		<-g.release
		return errDisk
	}
	return g.Store.Apply(ctx, b)
}

// While batch n is being applied the builder builds n+1 on top of it. If n
// fails, n+1 fails too without being written (its seqs follow n's), and
// the next batch starts again from the store's head: no gap, nothing
// acked that was not stored.
func TestPipelinedFailureFailsLaterBatches(t *testing.T) {
	store := &gatedStore{Store: memory.NewStore(), entered: make(chan struct{}), release: make(chan struct{})}
	svc, _, _ := newService(t, store, chat.Config{})
	c := newCompleter()
	svc.Submit(send("alice", "1", "bob", "in the failing batch", c))
	<-store.entered // batch n is in Apply
	svc.Submit(send("alice", "2", "bob", "built on top of it", c))
	svc.Submit(send("carol", "x", "bob", "also on top", c))
	// Wait until the builder has built batch n+1 and handed it on.
	for deadline := time.Now().Add(5 * time.Second); chat.BuiltWaiting(svc) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("batch n+1 was not built while n was applying")
		}
		runtime.Gosched()
	}
	close(store.release)
	c.wait(t, 3)
	if !errors.Is(c.got["1"].Err, errDisk) {
		t.Fatalf("failing batch: %+v", c.got["1"])
	}
	for _, id := range []string{"2", "x"} {
		if r := c.got[id]; r.Err == nil {
			t.Fatalf("%s was built on the failed batch but acked: %+v", id, r)
		}
	}
	svc.Submit(send("alice", "3", "bob", "after", c))
	c.wait(t, 1)
	if err := c.got["3"].Err; err != nil {
		t.Fatal(err)
	}
	// Whatever was acked is stored, in a gap-free inbox that starts at 1.
	entries := inbox(t, svc, "bob")
	for i, e := range entries {
		if e["seq"].(float64) != float64(i+1) {
			t.Fatalf("entry %d has seq %v: %v", i, e["seq"], entries)
		}
	}
	acked := 0
	for _, id := range []string{"2", "x", "3"} {
		if c.got[id].Err == nil {
			acked++
		}
	}
	if len(entries) != acked {
		t.Fatalf("%d entries stored, %d sends acked: %v", len(entries), acked, entries)
	}
}
