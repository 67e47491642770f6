package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/chat/bustest"
	"github.com/switchboard/switchboard/chat/storetest"
	"github.com/switchboard/switchboard/router"
	"github.com/switchboard/switchboard/router/routertest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store { return memory.NewStore() })
}

func TestBus(t *testing.T) {
	bustest.Run(t, func(t *testing.T) chat.Bus { return memory.NewBus() })
}

func TestDirectory(t *testing.T) {
	routertest.Run(t, func(t *testing.T) router.Directory { return memory.NewDirectory() })
}

// TestStoreRejectsGap checks the memory store's extra strictness: an entry
// that does not continue its user's inbox fails the whole batch.
func TestStoreRejectsGap(t *testing.T) {
	s := memory.NewStore()
	ctx := context.Background()
	ok := &chat.Batch{Time: batchTime, Entries: []chat.Entry{{User: "bob", Seq: 1, Frame: []byte("{}")}}}
	if err := s.Apply(ctx, ok); err != nil {
		t.Fatal(err)
	}
	for _, seqs := range [][]uint64{{3}, {1}, {2, 4}, {2, 2}} {
		b := &chat.Batch{Time: batchTime, Messages: []chat.MessageMeta{{ID: "m-bad", From: "a", To: "bob"}}}
		for _, seq := range seqs {
			b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: seq, Frame: []byte("{}")})
		}
		if err := s.Apply(ctx, b); err == nil {
			t.Fatalf("Apply of seqs %v after 1 succeeded", seqs)
		}
	}
	if last, _ := s.LastSeq(ctx, "bob"); last != 1 {
		t.Fatalf("LastSeq = %d after rejected batches, want 1", last)
	}
	if _, found, _ := s.Message(ctx, "m-bad"); found {
		t.Fatal("a rejected batch's message was stored")
	}
}

func TestDirectoryLookupAllocs(t *testing.T) {
	d := memory.NewDirectory()
	ctx := context.Background()
	for i := range 4 {
		d.Register(ctx, router.Route{User: "alice", Device: fmt.Sprint(i), Node: "gw-1", Conn: uint64(i)})
	}
	dst := make([]router.Route, 0, 8)
	if n := testing.AllocsPerRun(100, func() { dst, _ = d.Lookup(ctx, "alice", dst[:0]) }); n != 0 {
		t.Fatalf("Lookup allocates %v times per call with a large enough dst", n)
	}
}

func TestBusPublishAllocs(t *testing.T) {
	b := memory.NewBus()
	var got uint64
	if _, err := b.Subscribe("gw-1", func(d *chat.Delivery) { got += d.Items[0].Seq }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := &chat.Delivery{Items: []chat.Item{{User: "alice", Seq: 1, Head: []byte("{}")}}}
	if n := testing.AllocsPerRun(100, func() { b.Publish(ctx, "gw-1", d) }); n != 0 {
		t.Fatalf("Publish allocates %v times per call", n)
	}
	if got == 0 {
		t.Fatal("handler not called")
	}
}

var batchTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
