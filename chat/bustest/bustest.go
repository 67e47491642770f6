// Package bustest is the conformance suite for chat.Bus, run by every
// backend from its own tests:
//
//	func TestBus(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) chat.Bus { return memory.NewBus() })
//	}
//
// The suite does not assume that Publish calls the handler before it
// returns: it waits for deliveries with a deadline, and checks that a
// delivery did not happen by waiting for a later one (a fence) instead.
// It does assume that a handler is installed when Subscribe returns.
package bustest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
)

// wait bounds every wait for a delivery.
const wait = 10 * time.Second

// Run runs the chat.Bus conformance suite. newBus returns a new bus for one
// subtest; it registers its own cleanup.
func Run(t *testing.T, newBus func(t *testing.T) chat.Bus) {
	t.Run("RoutesToNode", func(t *testing.T) { testRoutesToNode(t, newBus(t)) })
	t.Run("NoSubscriber", func(t *testing.T) { testNoSubscriber(t, newBus(t)) })
	t.Run("DeliveryNotRetained", func(t *testing.T) { testDeliveryNotRetained(t, newBus(t)) })
	t.Run("ResubscribeReplaces", func(t *testing.T) { testResubscribeReplaces(t, newBus(t)) })
	t.Run("CancelRemoves", func(t *testing.T) { testCancelRemoves(t, newBus(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newBus(t)) })
	t.Run("StreamOrderPerKey", func(t *testing.T) { testStreamOrderPerKey(t, newBus(t)) })
	t.Run("StreamCancel", func(t *testing.T) { testStreamCancel(t, newBus(t)) })
}

// streamRecorder keeps "key=value" of what a stream consumer gets.
type streamRecorder struct {
	mu  sync.Mutex
	got []string
}

func (r *streamRecorder) handle(key string, value []byte) {
	r.mu.Lock()
	r.got = append(r.got, key+"="+string(value))
	r.mu.Unlock()
}

func (r *streamRecorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r.mu.Lock()
		got := slices.Clone(r.got)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d stream values after %v, want %d", len(got), wait, n)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
}

func consume(t *testing.T, b chat.Bus, topic string, r *streamRecorder) func() {
	t.Helper()
	cancel, err := b.Consume(topic, r.handle)
	if err != nil {
		t.Fatalf("Consume(%q): %v", topic, err)
	}
	t.Cleanup(cancel)
	return cancel
}

// testStreamOrderPerKey: every consumer of a topic gets every value, in
// emit order per key, and nothing of other topics; values are copied.
func testStreamOrderPerKey(t *testing.T, b chat.Bus) {
	r1, r2, other := &streamRecorder{}, &streamRecorder{}, &streamRecorder{}
	consume(t, b, "events", r1)
	consume(t, b, "events", r2)
	consume(t, b, "events-2", other)
	var want []string
	buf := make([]byte, 0, 16)
	for i := range 100 {
		key := fmt.Sprint("k", i%3)
		buf = fmt.Appendf(buf[:0], "%d", i)
		if err := b.Emit("events", key, buf); err != nil {
			t.Fatalf("Emit: %v", err)
		}
		copy(buf, "XXXX")
		want = append(want, fmt.Sprintf("%s=%d", key, i))
	}
	b.Emit("events-2", "fence", []byte("x"))
	other.waitFor(t, 1)
	for _, r := range []*streamRecorder{r1, r2} {
		got := r.waitFor(t, len(want))
		for k := range 3 {
			key := fmt.Sprint("k", k, "=")
			var g, w []string
			for _, s := range got {
				if len(s) > len(key) && s[:len(key)] == key {
					g = append(g, s)
				}
			}
			for _, s := range want {
				if len(s) > len(key) && s[:len(key)] == key {
					w = append(w, s)
				}
			}
			if !slices.Equal(g, w) {
				t.Fatalf("key k%d: got %q, want %q", k, g, w)
			}
		}
	}
	if got := other.waitFor(t, 1); len(got) != 1 || got[0] != "fence=x" {
		t.Fatalf("other topic got %q", got)
	}
}

// testStreamCancel: after cancel returns, the handler is not called again.
func testStreamCancel(t *testing.T, b chat.Bus) {
	r := &streamRecorder{}
	cancel := consume(t, b, "events", r)
	b.Emit("events", "a", []byte("1"))
	r.waitFor(t, 1)
	cancel()
	b.Emit("events", "a", []byte("2"))
	fence := &streamRecorder{}
	consume(t, b, "events", fence)
	b.Emit("events", "a", []byte("3"))
	fence.waitFor(t, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != 1 {
		t.Fatalf("after cancel the consumer got %q", r.got)
	}
}

// delivery is a copy of one item of a chat.Delivery taken inside the
// handler, with its frame (head and shared part) joined.
type delivery struct {
	User  string
	Seq   uint64
	Frame string
}

// one returns a chat.Delivery of one item.
func one(d delivery) *chat.Delivery {
	return &chat.Delivery{Items: []chat.Item{{User: d.User, Seq: d.Seq, Head: []byte(d.Frame)}}}
}

// recorder is a handler that keeps copies of what it receives.
type recorder struct {
	mu     sync.Mutex
	got    []delivery
	notify chan struct{} // one pending signal: "got changed"
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handle(d *chat.Delivery) {
	r.mu.Lock()
	for _, it := range d.Items {
		r.got = append(r.got, delivery{it.User, it.Seq, string(it.Head) + string(d.Shared)})
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until r holds at least n deliveries and returns them.
func (r *recorder) waitFor(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("got %d deliveries after %v, want %d: %+v", len(r.snapshot()), wait, n, r.snapshot())
		}
	}
}

func subscribe(t *testing.T, b chat.Bus, node string, h chat.DeliveryHandler) func() {
	t.Helper()
	cancel, err := b.Subscribe(node, h)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", node, err)
	}
	t.Cleanup(cancel)
	return cancel
}

func publish(t *testing.T, b chat.Bus, node string, d delivery) {
	t.Helper()
	cd := one(d)
	if err := b.Publish(context.Background(), node, cd); err != nil {
		t.Fatalf("Publish(%q): %v", node, err)
	}
}

func want(t *testing.T, name string, got []delivery, want ...delivery) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s received %+v, want %+v", name, got, want)
	}
}

func testRoutesToNode(t *testing.T, b chat.Bus) {
	a, c := newRecorder(), newRecorder()
	subscribe(t, b, "node-a", a.handle)
	subscribe(t, b, "node-c", c.handle)

	da := delivery{"alice", 7, `{"type":"msg","seq":7}` + "\x00\xff"}
	dc := delivery{"carol", 1, `{"type":"msg","seq":1}`}
	publish(t, b, "node-a", da)
	publish(t, b, "node-c", dc)
	want(t, "node-a", a.waitFor(t, 1), da)
	want(t, "node-c", c.waitFor(t, 1), dc)

	// A node whose name extends another's is a different node.
	publish(t, b, "node-ab", delivery{"x", 1, "{}"})
	publish(t, b, "node-", delivery{"x", 2, "{}"})
	publish(t, b, "node-a", da)
	want(t, "node-a", a.waitFor(t, 2), da, da)
	want(t, "node-c", c.snapshot(), dc)
}

func testNoSubscriber(t *testing.T, b chat.Bus) {
	publish(t, b, "nowhere", delivery{"alice", 1, "{}"})
	r := newRecorder()
	subscribe(t, b, "somewhere", r.handle)
	publish(t, b, "nowhere", delivery{"alice", 2, "{}"})
	fence := delivery{"fence", 1, "{}"}
	publish(t, b, "somewhere", fence)
	want(t, "somewhere", r.waitFor(t, 1), fence)
}

// testDeliveryNotRetained checks that the bus does not read d after
// Publish returns: the Service reuses deliveries and frame buffers.
func testDeliveryNotRetained(t *testing.T, b chat.Bus) {
	r := newRecorder()
	subscribe(t, b, "node-a", r.handle)
	var sent []delivery
	d := &chat.Delivery{Items: make([]chat.Item, 2)}
	for i := range 20 {
		head := fmt.Appendf(nil, `{"seq":%d`, i)
		d.Shared = fmt.Appendf(nil, `,"i":%d}`, i)
		d.Items = d.Items[:2]
		d.Items[0] = chat.Item{User: fmt.Sprintf("u%d", i), Seq: uint64(i), Head: head}
		d.Items[1] = chat.Item{User: fmt.Sprintf("v%d", i), Conn: 3, Head: head}
		if err := b.Publish(context.Background(), "node-a", d); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		sent = append(sent, delivery{d.Items[0].User, d.Items[0].Seq, string(head) + string(d.Shared)},
			delivery{d.Items[1].User, 0, string(head) + string(d.Shared)})
		copy(head, bytes.Repeat([]byte("X"), len(head)))
		copy(d.Shared, bytes.Repeat([]byte("X"), len(d.Shared)))
		d.Items[0], d.Items[1] = chat.Item{}, chat.Item{}
	}
	want(t, "node-a", r.waitFor(t, len(sent)), sent...)
}

func testResubscribeReplaces(t *testing.T, b chat.Bus) {
	first, second := newRecorder(), newRecorder()
	cancelFirst := subscribe(t, b, "node-a", first.handle)
	subscribe(t, b, "node-a", second.handle)

	d1 := delivery{"alice", 1, "{}"}
	publish(t, b, "node-a", d1)
	want(t, "second handler", second.waitFor(t, 1), d1)

	// The first subscription's cancel no longer owns the node.
	cancelFirst()
	d2 := delivery{"alice", 2, "{}"}
	publish(t, b, "node-a", d2)
	want(t, "second handler", second.waitFor(t, 2), d1, d2)
	want(t, "replaced handler", first.snapshot())
}

func testCancelRemoves(t *testing.T, b chat.Bus) {
	r, fence := newRecorder(), newRecorder()
	cancel := subscribe(t, b, "node-a", r.handle)
	subscribe(t, b, "node-f", fence.handle)

	d1 := delivery{"alice", 1, "{}"}
	publish(t, b, "node-a", d1)
	want(t, "node-a", r.waitFor(t, 1), d1)

	cancel()
	cancel() // harmless
	publish(t, b, "node-a", delivery{"alice", 2, "{}"})
	df := delivery{"fence", 1, "{}"}
	publish(t, b, "node-f", df)
	want(t, "fence", fence.waitFor(t, 1), df)
	want(t, "cancelled handler", r.snapshot(), d1)

	// The node can subscribe again.
	again := newRecorder()
	subscribe(t, b, "node-a", again.handle)
	d3 := delivery{"alice", 3, "{}"}
	publish(t, b, "node-a", d3)
	want(t, "resubscribed", again.waitFor(t, 1), d3)
	want(t, "cancelled handler", r.snapshot(), d1)
}

// testConcurrent publishes from many goroutines to several nodes while
// another node churns its subscription, and checks that every node got
// exactly its own deliveries.
func testConcurrent(t *testing.T, b chat.Bus) {
	const nodes, publishers, perPublisher = 4, 8, 300
	recs := make([]*recorder, nodes)
	for i := range recs {
		recs[i] = newRecorder()
		subscribe(t, b, fmt.Sprintf("node-%d", i), recs[i].handle)
	}

	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			cancel, err := b.Subscribe("node-churn", func(*chat.Delivery) {})
			if err != nil {
				t.Errorf("Subscribe: %v", err)
				return
			}
			cancel()
		}
	})

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			ctx := context.Background()
			for i := range perPublisher {
				node := (p + i) % nodes
				d := one(delivery{fmt.Sprintf("p%d", p), uint64(i), fmt.Sprintf("%d/%d", node, i)})
				if err := b.Publish(ctx, fmt.Sprintf("node-%d", node), d); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				if err := b.Publish(ctx, "node-churn", d); err != nil {
					t.Errorf("Publish to churning node: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	if t.Failed() {
		return
	}

	for n, r := range recs {
		got := r.waitFor(t, publishers*perPublisher/nodes)
		if len(got) != publishers*perPublisher/nodes {
			t.Fatalf("node-%d got %d deliveries, want %d", n, len(got), publishers*perPublisher/nodes)
		}
		seen := make(map[delivery]bool, len(got))
		for _, d := range got {
			var node, i int
			if _, err := fmt.Sscanf(d.Frame, "%d/%d", &node, &i); err != nil || node != n || uint64(i) != d.Seq {
				t.Fatalf("node-%d got a delivery for another node: %+v", n, d)
			}
			if seen[d] {
				t.Fatalf("node-%d got %+v twice", n, d)
			}
			seen[d] = true
		}
	}
}
