package kafka

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testengines"
)

func TestUnescapeName(t *testing.T) {
	for _, name := range []string{"gw-1", "vm-4162-f25c6bb0", "a_b", "ü/ñ", "x.y", "_"} {
		esc, err := topicName("", "", name)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := unescapeName(esc); !ok || got != name {
			t.Fatalf("unescapeName(%q) = %q, %v; want %q", esc, got, ok, name)
		}
	}
	for _, bad := range []string{"", "a_", "a_4", "a_zz", "_G0"} {
		if got, ok := unescapeName(bad); ok {
			t.Fatalf("unescapeName(%q) = %q, true; want false", bad, got)
		}
	}
}

// TestDeleteNode: a node's topic is listed once it subscribed, and gone
// after DeleteNode; Publish to it then returns nil at once, and the
// Subscribe of a new process with the same node id makes it again.
func TestDeleteNode(t *testing.T) {
	k := testengines.Kafka(t)
	b := newBus(t, k.Bootstrap)
	ctx := context.Background()
	c := newCollector()
	cancel, err := b.Subscribe("gw_gone", c.delivery)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := b.NodeTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(nodes, "gw_gone") {
		t.Fatalf("NodeTopics = %v, want gw_gone in it", nodes)
	}
	cancel()
	if err := b.DeleteNode(ctx, "gw_gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteNode(ctx, "gw_gone"); err != nil {
		t.Fatalf("DeleteNode of a node with no topic: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err = b.NodeTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(nodes, "gw_gone") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NodeTopics = %v 10 s after DeleteNode", nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if err := b.Publish(ctx, "gw_gone", item("alice", 1, "{}")); err != nil || time.Since(start) > time.Second {
		t.Fatalf("Publish to a deleted node: %v after %v", err, time.Since(start))
	}
	// The node's process restarts with the same node id.
	again := newBus(t, k.Bootstrap, samePrefix(b))
	subscribe(t, again, "gw_gone", c.delivery)
	if err := again.Publish(ctx, "gw_gone", item("alice", 2, "{}")); err != nil {
		t.Fatal(err)
	}
	if got := c.waitFor(t, 1, 10*time.Second); !slices.Equal(got, []string{"alice/2/0/{}"}) {
		t.Fatalf("after a new Subscribe got %q", got)
	}
}
