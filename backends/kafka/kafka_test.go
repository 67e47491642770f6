package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/chat/bustest"
	"github.com/switchboard/switchboard/internal/testengines"
)

func TestMain(m *testing.M) { os.Exit(testengines.Run(m)) }

// quiet logs only errors, to stderr (the engines' restarts make franz-go
// warn a lot).
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// newBus returns a Bus on brokers with a topic prefix of its own,
// replication factor 1, closed when the test ends.
func newBus(t testing.TB, brokers string, edit ...func(*Config)) *Bus {
	t.Helper()
	var id [4]byte
	rand.Read(id[:])
	cfg := Config{
		Brokers:           []string{brokers},
		TopicPrefix:       "t" + hex.EncodeToString(id[:]) + ".",
		ReplicationFactor: 1,
		Logger:            quiet,
	}
	for _, e := range edit {
		e(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// samePrefix makes a second Bus share the first's topics.
func samePrefix(b *Bus) func(*Config) {
	return func(c *Config) { c.TopicPrefix = b.cfg.TopicPrefix }
}

func TestBus(t *testing.T) {
	k := testengines.Kafka(t)
	bustest.Run(t, func(t *testing.T) chat.Bus { return newBus(t, k.Bootstrap) })
}

// collector keeps copies of deliveries (or payloads) and signals each.
type collector struct {
	mu     sync.Mutex
	got    []string
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) add(s string) {
	c.mu.Lock()
	c.got = append(c.got, s)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// delivery records each item as "user/seq/conn/head+shared".
func (c *collector) delivery(d *chat.Delivery) {
	for _, it := range d.Items {
		c.add(fmt.Sprintf("%s/%d/%d/%s%s", it.User, it.Seq, it.Conn, it.Head, d.Shared))
	}
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// waitFor waits up to d for at least n values.
func (c *collector) waitFor(t *testing.T, n int, d time.Duration) []string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if got := c.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-c.notify:
		case <-deadline.C:
			t.Fatalf("got %d values after %v, want %d", len(c.snapshot()), d, n)
		}
	}
}

// waitContains waits up to d for the value s.
func (c *collector) waitContains(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !slices.Contains(c.snapshot(), s) {
		select {
		case <-c.notify:
		case <-deadline.C:
			t.Fatalf("no %q after %v; got %q", s, d, c.snapshot())
		}
	}
}

func subscribe(t *testing.T, b *Bus, node string, h chat.DeliveryHandler) {
	t.Helper()
	cancel, err := b.Subscribe(node, h)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", node, err)
	}
	t.Cleanup(cancel)
}

func item(user string, seq uint64, head string) *chat.Delivery {
	return &chat.Delivery{Items: []chat.Item{{User: user, Seq: seq, Head: []byte(head)}}}
}

// TestPublishMissingNode: Publish to a node without a topic returns nil
// in about one metadata round trip, then from the cache; once the node
// subscribes (here from another Bus) deliveries flow after
// MissingNodeRecheck.
func TestPublishMissingNode(t *testing.T) {
	k := testengines.Kafka(t)
	b := newBus(t, k.Bootstrap, func(c *Config) { c.MissingNodeRecheck = 100 * time.Millisecond })
	ctx := context.Background()
	for i, limit := range []time.Duration{time.Second, 20 * time.Millisecond} {
		start := time.Now()
		if err := b.Publish(ctx, "gone", item("alice", 1, "{}")); err != nil {
			t.Fatalf("Publish to a missing node: %v", err)
		}
		if took := time.Since(start); took > limit {
			t.Fatalf("Publish %d to a missing node took %v, want under %v", i, took, limit)
		} else {
			t.Logf("Publish %d to a missing node took %v", i, took)
		}
	}
	if err := b.SendNode(ctx, "gone", 'r', nil); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("SendNode to a missing node: %v, want ErrUnknownNode", err)
	}
	if err := b.PostNode(ctx, "gone", 'r', nil); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("PostNode to a missing node: %v, want ErrUnknownNode", err)
	}

	other := newBus(t, k.Bootstrap, samePrefix(b))
	c := newCollector()
	subscribe(t, other, "gone", c.delivery)
	// Within 2s: MissingNodeRecheck, then the producer's first metadata
	// load of the topic (franz-go's default MetadataMinAge would make it
	// up to 5s).
	start := time.Now()
	for len(c.snapshot()) == 0 { // the first Publishes may still hit the cached "missing"
		if time.Since(start) > 2*time.Second {
			t.Fatal("no delivery reached the node 2s after it subscribed")
		}
		if err := b.Publish(ctx, "gone", item("alice", 2, "{}")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		select {
		case <-c.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("first delivery %v after the node subscribed", time.Since(start))
}

// TestLargeDelivery: a 1,024-item delivery (a group message) arrives
// whole, each item's head with the one shared part.
func TestLargeDelivery(t *testing.T) {
	b := newBus(t, testengines.Kafka(t).Bootstrap)
	c := newCollector()
	subscribe(t, b, "node-a", c.delivery)
	d := &chat.Delivery{Shared: []byte(`,"body":"` + string(make([]byte, 300)) + `"}`)}
	var want []string
	for i := range 1024 {
		it := chat.Item{User: fmt.Sprintf("member-%04d", i), Seq: uint64(i) << 20, Head: fmt.Appendf(nil, `{"type":"msg","seq":%d`, i)}
		if i%7 == 0 {
			it.Seq, it.Conn = 0, uint64(i)
		}
		d.Items = append(d.Items, it)
		want = append(want, fmt.Sprintf("%s/%d/%d/%s%s", it.User, it.Seq, it.Conn, it.Head, d.Shared))
	}
	if err := b.Publish(context.Background(), "node-a", d); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := c.waitFor(t, len(want), 10*time.Second); !slices.Equal(got, want) {
		t.Fatalf("got %d items, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSendNode: records of a registered kind reach its handler on the
// node's Bus, in order with deliveries; a kind with no handler is counted
// and skipped; kind 'd' is refused.
func TestSendNode(t *testing.T) {
	k := testengines.Kafka(t)
	recv := newBus(t, k.Bootstrap)
	send := newBus(t, k.Bootstrap, samePrefix(recv))
	c := newCollector()
	recv.HandleNode('r', func(p []byte) { c.add("r:" + string(p)) })
	subscribe(t, recv, "node-a", c.delivery)
	ctx := context.Background()
	if err := send.SendNode(ctx, "node-a", 'r', []byte("reply 1")); err != nil {
		t.Fatalf("SendNode: %v", err)
	}
	if err := send.SendNode(ctx, "node-a", 'z', []byte("nobody")); err != nil {
		t.Fatalf("SendNode: %v", err)
	}
	if err := send.Publish(ctx, "node-a", item("alice", 3, "{}")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := send.SendNode(ctx, "node-a", 'r', nil); err != nil {
		t.Fatalf("SendNode: %v", err)
	}
	want := []string{"r:reply 1", "alice/3/0/{}", "r:"}
	if got := c.waitFor(t, 3, 10*time.Second); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := recv.Stats().UnknownKinds; n != 1 {
		t.Fatalf("UnknownKinds = %d, want 1", n)
	}
	if err := send.SendNode(ctx, "node-a", KindDelivery, nil); err == nil {
		t.Fatal("SendNode with kind 'd' succeeded")
	}
}

// TestPostNode: PostNode's records, queued without waiting, reach the
// kind's handler in the order they were posted, with deliveries between.
func TestPostNode(t *testing.T) {
	k := testengines.Kafka(t)
	recv := newBus(t, k.Bootstrap)
	send := newBus(t, k.Bootstrap, samePrefix(recv))
	c := newCollector()
	recv.HandleNode('r', func(p []byte) { c.add("r:" + string(p)) })
	subscribe(t, recv, "node-p", c.delivery)
	ctx := context.Background()
	var want []string
	for i := range 50 {
		if i == 25 {
			if err := send.Publish(ctx, "node-p", item("alice", 3, "{}")); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			want = append(want, "alice/3/0/{}")
		}
		p := fmt.Sprint("reply ", i)
		if err := send.PostNode(ctx, "node-p", 'r', []byte(p)); err != nil {
			t.Fatalf("PostNode: %v", err)
		}
		want = append(want, "r:"+p)
	}
	if got := c.waitFor(t, len(want), 10*time.Second); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := send.Stats().PublishErrors; n != 0 {
		t.Fatalf("PublishErrors = %d, want 0", n)
	}
	if err := send.PostNode(ctx, "node-p", KindDelivery, nil); err == nil {
		t.Fatal("PostNode with kind 'd' succeeded")
	}
}

// TestGarbageRecord: records on a node topic that are not deliveries
// (a peer writing garbage) are counted and skipped; the next delivery
// arrives.
func TestGarbageRecord(t *testing.T) {
	k := testengines.Kafka(t)
	b := newBus(t, k.Bootstrap)
	c := newCollector()
	subscribe(t, b, "node-g", c.delivery)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic, _ := topicName(b.cfg.TopicPrefix, "node.", "node-g")
	valid := appendDelivery([]byte{KindDelivery}, item("bob", 1, "{}"))
	for _, v := range [][]byte{nil, {KindDelivery}, valid[:len(valid)-1], append(slices.Clip(valid), 0), {KindDelivery, 0, 200}} {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
			t.Fatalf("produce garbage: %v", err)
		}
	}
	if err := b.Publish(context.Background(), "node-g", item("fence", 1, "{}")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := c.waitFor(t, 1, 10*time.Second); !slices.Equal(got, []string{"fence/1/0/{}"}) {
		t.Fatalf("got %q", got)
	}
	if n := b.Stats().BadRecords; n != 5 {
		t.Fatalf("BadRecords = %d, want 5", n)
	}
}

// TestClosed: after Close, Publish, SendNode, Emit and Subscribe return
// ErrClosed, and Close again does nothing.
func TestClosed(t *testing.T) {
	b := newBus(t, testengines.Kafka(t).Bootstrap)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Publish":  b.Publish(ctx, "n", item("a", 1, "{}")),
		"SendNode": b.SendNode(ctx, "n", 'r', nil),
		"Emit":     b.Emit("events", "k", nil),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := b.Subscribe("n", func(*chat.Delivery) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

// TestConsumed: Consumed follows this Bus's consumers, and is true for
// ExternalStreams.
func TestConsumed(t *testing.T) {
	b := newBus(t, testengines.Kafka(t).Bootstrap, func(c *Config) { c.ExternalStreams = []string{"analytics"} })
	if b.Consumed("events") {
		t.Fatal("Consumed before any consumer")
	}
	if !b.Consumed("analytics") {
		t.Fatal("an external stream is not Consumed")
	}
	cancel, err := b.Consume("events", func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	cancelGroup, err := b.ConsumeGroup("events", "g", func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if !b.Consumed("events") {
		t.Fatal("not Consumed with a group consumer left")
	}
	cancelGroup()
	if b.Consumed("events") {
		t.Fatal("Consumed after both consumers were cancelled")
	}
}

// groupRecorder records "member:key=value" of what group members handle.
type groupRecorder struct{ *collector }

func (r groupRecorder) member(name string) chat.StreamHandler {
	return func(key string, value []byte) { r.add(name + ":" + key + "=" + string(value)) }
}

// handledValues returns the set of "key=value" handled by any member.
func handledValues(got []string) map[string]int {
	m := make(map[string]int)
	for _, s := range got {
		_, kv, _ := strings.Cut(s, ":")
		m[kv]++
	}
	return m
}

// TestConsumeGroup: two members of a group share a stream: every value
// is handled, values emitted before the group first joined included.
func TestConsumeGroup(t *testing.T) {
	b := newBus(t, testengines.Kafka(t).Bootstrap)
	if err := b.EnsureStreams(context.Background(), "jobs"); err != nil {
		t.Fatal(err)
	}
	const n = 200
	emit := func(from, to int) {
		for i := from; i < to; i++ {
			if err := b.Emit("jobs", "k"+strconv.Itoa(i%17), []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	emit(0, n/2) // before any member: kept by the topic, read by the new group
	r := groupRecorder{newCollector()}
	var cancels []func()
	for _, m := range []string{"a", "b"} {
		cancel, err := b.ConsumeGroup("jobs", "workers", r.member(m))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		cancels = append(cancels, cancel)
	}
	emit(n/2, n)
	waitHandled(t, r, n)

	// cancel commits what was handled: a later member starts after it.
	for _, cancel := range cancels {
		cancel()
	}
	if err := b.Emit("jobs", "k", []byte("fence")); err != nil {
		t.Fatal(err)
	}
	later := groupRecorder{newCollector()}
	cancel, err := b.ConsumeGroup("jobs", "workers", later.member("c"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	if got := later.waitFor(t, 1, 30*time.Second); got[0] != "c:k=fence" {
		t.Fatalf("a member joining after the others were cancelled first got %q, want the value after theirs", got[0])
	}
}

// waitHandled waits up to a minute until n distinct values were handled.
func waitHandled(t *testing.T, r groupRecorder, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		handled := handledValues(r.snapshot())
		if len(handled) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d values handled after a minute", len(handled), n)
		}
		select {
		case <-r.notify:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestConsumeGroupAtLeastOnce: a member dies while its handler is stuck
// on a value; the other member gets that value (its offset was not
// committed: the handler had not returned), and every value is handled.
func TestConsumeGroupAtLeastOnce(t *testing.T) {
	b := newBus(t, testengines.Kafka(t).Bootstrap)
	const n = 100
	r := groupRecorder{newCollector()}
	stuck := make(chan string, 1)
	release := make(chan struct{})
	var handledA int
	a, err := b.consumeGroup("jobs", "workers", func(key string, value []byte) {
		handledA++
		if handledA == 10 {
			stuck <- key + "=" + string(value)
			<-release
			return
		}
		r.add("a:" + key + "=" + string(value))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.cancel)
	defer close(release)
	for i := range n {
		b.Emit("jobs", "k"+strconv.Itoa(i%5), []byte(strconv.Itoa(i)))
	}
	var x string
	select {
	case x = <-stuck:
	case <-time.After(30 * time.Second):
		t.Fatal("member a did not get 10 values")
	}
	cancelB, err := b.ConsumeGroup("jobs", "workers", r.member("b"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancelB)
	a.kill() // as if its process died mid-handler (but leaving at once)

	waitHandled(t, r, n)
	if !slices.Contains(r.snapshot(), "b:"+x) {
		t.Fatalf("the value %q whose handler never returned on a was not handled by b", x)
	}
}

// TestBrokerRestart: while Kafka is down, Publish and Emit return at once
// (best effort: buffered, or counted when Kafka does not take them) and
// SendNode fails within PublishTimeout; after it is back,
// the node subscribed before the outage receives new deliveries without
// subscribing again, and values emitted during the outage reach the
// stream consumer.
func TestBrokerRestart(t *testing.T) {
	k := testengines.NewKafka(t)
	b := newBus(t, k.Bootstrap, func(c *Config) { c.PublishTimeout = time.Second })
	c := newCollector()
	subscribe(t, b, "node-r", c.delivery)
	s := newCollector()
	cancel, err := b.Consume("events", func(key string, value []byte) { s.add(key + "=" + string(value)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	ctx := context.Background()
	if err := b.Publish(ctx, "node-r", item("alice", 1, "{}")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c.waitFor(t, 1, 10*time.Second)

	if err := k.Stop(); err != nil {
		t.Fatalf("stopping Kafka: %v", err)
	}
	start := time.Now()
	if err := b.Publish(ctx, "node-r", item("alice", 2, "{}")); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("Publish with Kafka down returned %v after %v, want nil at once", err, time.Since(start))
	}
	start = time.Now()
	err = b.SendNode(ctx, "node-r", 'x', []byte("p"))
	took := time.Since(start)
	t.Logf("SendNode with Kafka down: %v after %v", err, took)
	if err == nil || took > 3*time.Second {
		t.Fatalf("SendNode with Kafka down returned %v after %v, want an error within about 1s", err, took)
	}
	start = time.Now()
	if err := b.Emit("events", "a", []byte("during")); err != nil {
		t.Fatalf("Emit with Kafka down: %v", err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("Emit with Kafka down took %v", took)
	}

	k.Start(t)
	// Publish is best effort and returns before Kafka answers: a record
	// sent while the broker is still coming up may be lost (within
	// PublishTimeout). Publish until one arrives.
	deadline := time.Now().Add(60 * time.Second)
	for seq := uint64(3); ; seq++ {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery after Kafka restarted; got %q", c.snapshot())
		}
		if err := b.Publish(ctx, "node-r", item("alice", seq, "{}")); err != nil {
			continue // the client is reconnecting; each try is bounded by PublishTimeout
		}
		want := fmt.Sprintf("alice/%d/0/{}", seq)
		arrived := false
		for wait := time.Now().Add(3 * time.Second); !arrived && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			arrived = slices.Contains(c.snapshot(), want)
		}
		if arrived {
			break
		}
	}
	if got := s.waitFor(t, 1, 30*time.Second); got[0] != "a=during" {
		t.Fatalf("stream consumer got %q", got)
	}
}

// TestDeliveryEpoch: a delivery's sequencer epoch crosses the node topic
// (kind 'D'); one without (kind 'd') arrives with epoch 0; a 'D' record
// with a bad epoch is counted and skipped.
func TestDeliveryEpoch(t *testing.T) {
	k := testengines.Kafka(t)
	b := newBus(t, k.Bootstrap)
	var mu sync.Mutex
	var got []string
	subscribe(t, b, "node-e", func(d *chat.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%d/%d:%s", d.Partition, d.Epoch, d.Items[0].Head))
	})
	ctx := context.Background()
	for _, d := range []*chat.Delivery{
		{Epoch: 7, Items: []chat.Item{{User: "u", Seq: 1, Head: []byte("one")}}},
		{Items: []chat.Item{{User: "u", Seq: 2, Head: []byte("two")}}},
		{Epoch: 1 << 40, Items: []chat.Item{{User: "u", Seq: 3, Head: []byte("three")}}},
		{Epoch: 2, Partition: 5, Items: []chat.Item{{User: "u", Seq: 6, Head: []byte("six")}}},
	} {
		if err := b.Publish(ctx, "node-e", d); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic, _ := topicName(b.cfg.TopicPrefix, "node.", "node-e")
	body := appendDelivery(nil, item("u", 4, "bad"))
	for _, v := range [][]byte{append([]byte{KindFencedDelivery, 0}, body...), {KindFencedDelivery, 0x80},
		append([]byte{KindPartitionDelivery, 0, 1}, body...), append([]byte{KindPartitionDelivery, 0x80, 0x10, 1}, body...),
		append([]byte{KindPartitionDelivery, 3, 0}, body...)} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, "node-e", &chat.Delivery{Epoch: 8, Items: []chat.Item{{User: "u", Seq: 5, Head: []byte("five")}}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"0/7:one", "0/0:two", fmt.Sprint("0/", uint64(1<<40), ":three"), "5/2:six", "0/8:five"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := b.Stats().BadRecords; n != 5 {
		t.Fatalf("BadRecords = %d, want 5 (epoch 0, truncated epoch; partition 0, partition 2048, epoch 0)", n)
	}
}
