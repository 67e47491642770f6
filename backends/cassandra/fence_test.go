package cassandra

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
)

// TestFencing: whichever order two writers of one inbox write in, the
// write of the larger epoch is the one that stays, for the entry, the
// head and the client-id lookup.
func TestFencing(t *testing.T) {
	ns := newNamespace()
	owner, zombie := openNS(t, ns), openNS(t, ns)
	owner.SetWriterEpoch(2)
	zombie.SetWriterEpoch(1)
	ctx := context.Background()

	// The owner first, then the zombie resumes.
	mustApply(t, owner, entryBatch("u", 5, "A", "mA", "cA"))
	mustApply(t, zombie, entryBatch("u", 5, "B", "mB", "cB"))
	if got := frameAt(t, owner, "u", 5); got != "A" {
		t.Fatalf("entry (u,5) = %q after the zombie wrote B, want the owner's A", got)
	}
	// A zombie's later seq moves no head: the owner's head write wins.
	mustApply(t, zombie, entryBatch("u", 6, "C", "", ""))
	if got, err := owner.LastSeq(ctx, "u"); err != nil || got != 5 {
		t.Fatalf("LastSeq(u) = %d, %v after the zombie wrote seq 6; want the owner's 5", got, err)
	}

	// The zombie first, then the owner takes over the same seq.
	mustApply(t, zombie, entryBatch("v", 5, "B", "mB2", "cB2"))
	mustApply(t, owner, entryBatch("v", 5, "A", "mA2", "cA2"))
	if got := frameAt(t, owner, "v", 5); got != "A" {
		t.Fatalf("entry (v,5) = %q, want the owner's A written after the zombie's B", got)
	}

	// The zombie's messages are indexed, but their entries hold the
	// owner's: a resend of them is new.
	for _, cid := range []string{"cB", "cB2"} {
		if m, ok, err := owner.MessageByClientID(ctx, "alice", cid); err != nil || ok {
			t.Fatalf("MessageByClientID(alice, %s) = %+v, %v, %v; want not found (the zombie's message lost its entry)", cid, m, ok, err)
		}
	}
	for _, cid := range []string{"cA", "cA2"} {
		if m, ok, err := owner.MessageByClientID(ctx, "alice", cid); err != nil || !ok {
			t.Fatalf("MessageByClientID(alice, %s) = %+v, %v, %v; want the owner's message", cid, m, ok, err)
		}
	}
}

// TestMessageByClientIDAboveHead: a message whose entry is written but
// whose inbox head never moved (its Apply failed before phase 2) is not
// found, so a resend is taken as new rather than answered with a seq no
// reader can see.
func TestMessageByClientIDAboveHead(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	mustApply(t, s, entryBatch("bob", 1, "one", "m1", "c1"))
	// Phase 1 of the Apply of seq 2, without phase 2.
	for _, st := range []stmt{
		newStmt(cqlInsEntry, s.ns, []byte("bob"), int64(0), int64(2), []byte("two"), []byte(nil), []byte("m2")),
		newStmt(cqlInsClient, s.ns, []byte("alice"), []byte("c2"), []byte("m2"), []byte("bob"), int64(1), int64(2), int8(1)),
	} {
		if err := s.write(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if m, ok, err := s.MessageByClientID(ctx, "alice", "c2"); err != nil || ok {
		t.Fatalf("MessageByClientID(c2) = %+v, %v, %v; want not found: seq 2 is above bob's head", m, ok, err)
	}
	if _, ok, err := s.MessageByClientID(ctx, "alice", "c1"); err != nil || !ok {
		t.Fatalf("MessageByClientID(c1) = %v, %v; want found", ok, err)
	}
	var seqs []uint64
	s.ReadInbox(ctx, "bob", 0, 10, func(seq uint64, _ []byte) error { seqs = append(seqs, seq); return nil })
	if !slices.Equal(seqs, []uint64{1}) {
		t.Fatalf("ReadInbox(bob) = %v; want [1]: seq 2 is above the head", seqs)
	}
}

// TestNoWriterEpoch: a Store without an epoch writes nothing.
func TestNoWriterEpoch(t *testing.T) {
	s := openNS(t, newNamespace())
	ctx := context.Background()
	if err := s.Apply(ctx, entryBatch("bob", 1, "x", "m1", "c1")); !errors.Is(err, ErrNoWriterEpoch) {
		t.Fatalf("Apply without an epoch = %v, want ErrNoWriterEpoch", err)
	}
	if _, err := s.Expire(ctx, t0); !errors.Is(err, ErrNoWriterEpoch) {
		t.Fatalf("Expire without an epoch = %v, want ErrNoWriterEpoch", err)
	}
	if _, ok, err := s.Message(ctx, "m1"); ok || err != nil {
		t.Fatalf("Message(m1) = %v, %v: the refused Apply wrote", ok, err)
	}
}

// TestAcquireLease: epochs per shard count up from 1, and concurrent
// takers each get their own.
func TestAcquireLease(t *testing.T) {
	s := openNS(t, newNamespace())
	ctx := context.Background()
	for want := uint32(1); want <= 3; want++ {
		if e, err := s.AcquireLease(ctx, "p0", "w"); err != nil || e != want {
			t.Fatalf("AcquireLease(p0) = %d, %v; want %d", e, err, want)
		}
	}
	if e, err := s.AcquireLease(ctx, "p1", "w"); err != nil || e != 1 {
		t.Fatalf("AcquireLease(p1) = %d, %v; want 1 (shards are independent)", e, err)
	}
	const takers = 4
	got := make([]uint32, takers)
	var wg sync.WaitGroup
	for i := range takers {
		wg.Go(func() {
			e, err := s.AcquireLease(ctx, "p0", "racer")
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
			}
			got[i] = e
		})
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, []uint32{4, 5, 6, 7}) {
		t.Fatalf("concurrent AcquireLease = %v, want 4 5 6 7 in some order", got)
	}
}

// TestWriteTimestamps: timestamps carry the epoch in their high bits and
// strictly increase, also across SetWriterEpoch with a larger epoch.
func TestWriteTimestamps(t *testing.T) {
	s := &Store{}
	if _, err := s.nextTS(); !errors.Is(err, ErrNoWriterEpoch) {
		t.Fatalf("nextTS at epoch 0 = %v, want ErrNoWriterEpoch", err)
	}
	s.SetWriterEpoch(1)
	last := int64(0)
	for range 1000 {
		ts, err := s.nextTS()
		if err != nil || ts <= last || ts>>epochShift != 1 {
			t.Fatalf("nextTS = %x, %v after %x; want larger, epoch 1", ts, err, last)
		}
		last = ts
	}
	s.SetWriterEpoch(2)
	if ts, _ := s.nextTS(); ts>>epochShift != 2 || ts <= last {
		t.Fatalf("nextTS after SetWriterEpoch(2) = %x", ts)
	}
	s.SetWriterEpoch(maxEpoch + 1)
	if _, err := s.nextTS(); !errors.Is(err, ErrEpochExhausted) {
		t.Fatalf("nextTS at epoch %d = %v, want ErrEpochExhausted", maxEpoch+1, err)
	}
	s.SetWriterEpoch(3)
	s.base = time.Now().Add(-(1 << epochShift) * time.Microsecond)
	if _, err := s.nextTS(); !errors.Is(err, ErrEpochExhausted) {
		t.Fatalf("nextTS 2^44 µs into an epoch = %v, want ErrEpochExhausted", err)
	}
}

// TestForwardedMessageCommittedByEcho: a message whose recipient's entry
// another partition writes (Seq 0) is committed by its copy in the
// sender's inbox: found once that copy's head moved, not found (a resend
// is new) when its Apply stopped before, as for a message with its own
// recipient entry.
func TestForwardedMessageCommittedByEcho(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	mustApply(t, s, &chat.Batch{Time: t0,
		Messages: []chat.MessageMeta{{ID: "m1", From: "alice", To: "bob", ClientID: "c1", TS: 1, EchoSeq: 1, Status: chat.StatusSent}},
		Entries:  []chat.Entry{{User: "alice", Seq: 1, Frame: []byte("echo one")}}})
	if m, ok, err := s.MessageByClientID(ctx, "alice", "c1"); err != nil || !ok || m.ID != "m1" {
		t.Fatalf("MessageByClientID(c1) = %+v, %v, %v; want m1", m, ok, err)
	}
	if m, ok, err := s.Message(ctx, "m1"); err != nil || !ok || m.To != "bob" || m.Seq != 0 {
		t.Fatalf("Message(m1) = %+v, %v, %v; want to bob, seq 0", m, ok, err)
	}
	// Phase 1 of the Apply of the next one, without phase 2: the sender's
	// copy at seq 2 is above alice's head.
	for _, st := range []stmt{
		newStmt(cqlInsEntry, s.ns, []byte("alice"), int64(0), int64(2), []byte("echo two"), []byte(nil), []byte("m2")),
		newStmt(cqlNewClient, s.ns, []byte("alice"), []byte("c2"), []byte("m2"), []byte("alice"), int64(1), int64(2)),
	} {
		if err := s.write(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if m, ok, err := s.MessageByClientID(ctx, "alice", "c2"); err != nil || ok {
		t.Fatalf("MessageByClientID(c2) = %+v, %v, %v; want not found: its copy is above alice's head", m, ok, err)
	}
}
