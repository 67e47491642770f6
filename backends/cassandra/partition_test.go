package cassandra

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/chat/storetest"
)

// partitionWriter returns the view of partition p of base with the
// partition's lease taken times times (its epoch is times, for a fresh
// namespace).
func partitionWriter(t *testing.T, base *Store, p, times int) *Store {
	t.Helper()
	s := base.Partition(p)
	var e uint32
	for range times {
		var err error
		if e, err = s.AcquireLease(context.Background(), "commands/"+string(rune('0'+p)), t.Name()); err != nil {
			t.Fatal(err)
		}
	}
	s.SetWriterEpoch(e)
	return s
}

// A partition view is a whole Store.
func TestPartitionStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store {
		return partitionWriter(t, openNS(t, newNamespace()), 3, 1)
	})
}

// Two partitions' sequencers share the data under different epochs: a
// status written by the one with the smaller epoch is not lost to the
// larger epoch's creation of the message; each expires what its own
// batches wrote, and closing a view leaves the session open.
func TestPartitionViews(t *testing.T) {
	ctx := context.Background()
	base := openNS(t, newNamespace())
	p0 := partitionWriter(t, base, 0, 1) // epoch 1
	p1 := partitionWriter(t, base, 1, 3) // epoch 3: its timestamps are all larger

	// p1 stores bob's message (its sender's partition); p0 (the control
	// partition, receipts) marks it read.
	mustApply(t, p1, entryBatch("bob", 1, "to bob", "m1", "c1"))
	read := &chat.Batch{Time: t0, Messages: []chat.MessageMeta{{ID: "m1", From: "alice", To: "bob", ClientID: "c1", TS: 1, Seq: 1, Status: chat.StatusRead}}}
	mustApply(t, p0, read)
	if m, ok, err := base.Message(ctx, "m1"); err != nil || !ok || m.Status != chat.StatusRead {
		t.Fatalf("m1 = %+v, %v, %v; want read", m, ok, err)
	}
	if m, ok, err := base.MessageByClientID(ctx, "alice", "c1"); err != nil || !ok || m.ID != "m1" {
		t.Fatalf("by client id: %+v, %v, %v", m, ok, err)
	}

	mustApply(t, p0, entryBatch("carol", 1, "to carol", "", ""))
	n, err := p0.Expire(ctx, time.Now())
	if err != nil || n != 2 {
		t.Fatalf("partition 0's Expire = %d, %v; want its 2 batches", n, err)
	}
	if got := frameAt(t, base, "bob", 1); got != "to bob" {
		t.Fatalf("bob's entry after partition 0 expired: %q", got)
	}
	var left int
	base.ReadInbox(ctx, "carol", 0, 10, func(uint64, []byte) error { left++; return nil })
	if left != 0 {
		t.Fatalf("carol's entries after partition 0 expired: %d, want 0", left)
	}
	if n, err := p1.Expire(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("partition 1's Expire = %d, %v; want its batch", n, err)
	}
	base.ReadInbox(ctx, "bob", 0, 10, func(uint64, []byte) error { left++; return nil })
	if left != 0 {
		t.Fatalf("bob's entries after partition 1 expired: %d, want 0", left)
	}
	if _, ok, _ := base.Message(ctx, "m1"); ok {
		t.Fatal("m1 outlived both expiries")
	}

	p0.Close()
	if _, err := base.LastSeq(ctx, "bob"); err != nil {
		t.Fatalf("after closing a view: %v", err)
	}
}
