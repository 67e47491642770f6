package memory_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/router"
)

// BenchmarkBusPublish publishes to one of 16 subscribed nodes from all
// Ps; the handler does the minimum a gateway does (count).
func BenchmarkBusPublish(b *testing.B) {
	bus := memory.NewBus()
	var delivered atomic.Int64
	nodes := make([]string, 16)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("gw-%d", i)
		if _, err := bus.Subscribe(nodes[i], func(*chat.Delivery) { delivered.Add(1) }); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := &chat.Delivery{Items: []chat.Item{{User: "alice", Seq: 1, Head: []byte(`{"type":"msg"}`)}}}
		i := 0
		for pb.Next() {
			if err := bus.Publish(ctx, nodes[i%len(nodes)], d); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	if delivered.Load() != int64(b.N) {
		b.Fatalf("delivered %d of %d", delivered.Load(), b.N)
	}
}

// BenchmarkDirectoryLookup looks up users with 2 routes each among 100k
// registered users, from all Ps, reusing dst.
func BenchmarkDirectoryLookup(b *testing.B) {
	const users = 100_000
	d := memory.NewDirectory()
	ctx := context.Background()
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user-%d", i)
		for dev := range 2 {
			d.Register(ctx, router.Route{User: names[i], Device: fmt.Sprint(dev), Node: "gw-1", Conn: uint64(2*i + dev)})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]router.Route, 0, 8)
		i := 0
		for pb.Next() {
			dst, _ = d.Lookup(ctx, names[i%users], dst[:0])
			if len(dst) != 2 {
				b.Errorf("Lookup returned %d routes", len(dst))
				return
			}
			i += 7919
		}
	})
}
