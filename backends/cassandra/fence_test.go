package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// entryBatch is a batch writing frame at (user, seq), and optionally the
// message id whose entry it is (with client id cid of sender "alice").
func entryBatch(user string, seq uint64, frame, id, cid string) *chat.Batch {
	b := &chat.Batch{Time: t0, Entries: []chat.Entry{{User: user, Seq: seq, Frame: []byte(frame)}}}
	if id != "" {
		b.Messages = []chat.MessageMeta{{ID: id, From: "alice", To: user, ClientID: cid, TS: 1, Seq: seq, Status: chat.StatusSent}}
	}
	return b
}

func mustApply(t *testing.T, s *Store, b *chat.Batch) {
	t.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// frameAt reads the frame at (user, seq).
func frameAt(t *testing.T, s *Store, user string, seq uint64) string {
	t.Helper()
	var got []string
	err := s.ReadInbox(context.Background(), user, seq-1, 1, func(_ uint64, f []byte) error {
		got = append(got, string(f))
		return nil
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadInbox(%s, %d) = %q, %v; want one entry", user, seq, got, err)
	}
	return got[0]
}

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
// whose inbox head never moved (its Apply failed before phase 3) is not
// found, so a resend is taken as new rather than answered with a seq no
// reader can see.
func TestMessageByClientIDAboveHead(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	mustApply(t, s, entryBatch("bob", 1, "one", "m1", "c1"))
	// Phases 1 and 2 of the Apply of seq 2, without phase 3.
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

// TestStatePartitions: every prefix the chat Service scans is one
// partition, and a key is found in the partition its prefixes name.
func TestStatePartitions(t *testing.T) {
	for _, tc := range []struct{ key, prefix, part string }{
		{"w/g1\x00alice", "w/g1\x00", "w/g1\x00"},
		{"ag/a1\x00#g7", "ag/a1\x00#", "ag/a1\x00"},
		{"ahx/h\x00a1", "ahx/h\x00", "ahx/h\x00"},
		{"au/0000018f\x00a1", "au/", "au/"},
		{"at/0000018f\x00a1", "at/00", "at/"},
		{"az/h", "az/", "az/"},
	} {
		part, rest := statePart(tc.key)
		if part != tc.part || part+rest != tc.key {
			t.Errorf("statePart(%q) = %q, %q; want partition %q", tc.key, part, rest, tc.part)
		}
		sp, srest, ok := scanPart(tc.prefix)
		if !ok || sp != tc.part || sp+srest != tc.prefix {
			t.Errorf("scanPart(%q) = %q, %q, %v; want partition %q", tc.prefix, sp, srest, ok, tc.part)
		}
	}
	for _, prefix := range []string{"", "g/", "u/", "a"} {
		if _, _, ok := scanPart(prefix); ok {
			t.Errorf("scanPart(%q) is one partition; its keys are in many", prefix)
		}
	}
	if got := prefixEnd("a\xff\xff"); !bytes.Equal(got, []byte("b")) {
		t.Errorf("prefixEnd(a\\xff\\xff) = %q", got)
	}
	if got := prefixEnd("\xff"); got != nil {
		t.Errorf("prefixEnd(\\xff) = %q, want nil", got)
	}
}

// TestInboxPartitions: an inbox of 2,500 entries spans three partitions
// (1,024 seqs each); reads cross them in order, at any window, and Expire
// of batches that straddle a partition boundary deletes exactly their
// entries.
func TestInboxPartitions(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	for i := range 5 {
		b := &chat.Batch{Time: t0.Add(time.Duration(i) * time.Hour)}
		for seq := uint64(i*500 + 1); seq <= uint64(i*500+500); seq++ {
			b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: seq, Frame: []byte(fmt.Sprint(seq))})
		}
		mustApply(t, s, b)
	}
	read := func(after uint64, limit int) []uint64 {
		t.Helper()
		var seqs []uint64
		err := s.ReadInbox(ctx, "bob", after, limit, func(seq uint64, f []byte) error {
			if string(f) != fmt.Sprint(seq) {
				return fmt.Errorf("seq %d holds %q", seq, f)
			}
			seqs = append(seqs, seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	seqRange := func(first, last uint64) []uint64 {
		var r []uint64
		for x := first; x <= last; x++ {
			r = append(r, x)
		}
		return r
	}
	for _, tc := range []struct {
		after       uint64
		limit       int
		first, last uint64
	}{
		{0, 5000, 1, 2500},
		{1000, 100, 1001, 1100}, // crosses seq 1023 | 1024
		{1023, 1, 1024, 1024},
		{2040, 20, 2041, 2060}, // crosses 2047 | 2048
		{2490, 100, 2491, 2500},
	} {
		if got := read(tc.after, tc.limit); !slices.Equal(got, seqRange(tc.first, tc.last)) {
			t.Fatalf("ReadInbox(after %d, limit %d) = %d entries from %v, want %d..%d", tc.after, tc.limit, len(got), got[:min(len(got), 1)], tc.first, tc.last)
		}
	}
	if n, err := s.Expire(ctx, t0.Add(2*time.Hour)); err != nil || n != 2 {
		t.Fatalf("Expire = %d, %v; want the first 2 batches", n, err)
	}
	if got := read(0, 5000); !slices.Equal(got, seqRange(1001, 2500)) {
		t.Fatalf("after Expire, ReadInbox = %d entries from %v, want 1001..2500", len(got), got[:min(len(got), 1)])
	}
	if last, err := s.LastSeq(ctx, "bob"); err != nil || last != 2500 {
		t.Fatalf("LastSeq = %d, %v; want 2500", last, err)
	}
}

// TestSharedInline: a part named by at most InlineShared entries is
// copied into them and not stored; one named by more is stored once; both
// read back exactly and expire with their batch.
func TestSharedInline(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	b := &chat.Batch{Time: t0, Shared: []chat.SharedPart{
		{Key: "one2one", Data: []byte(`,"msg_id":"one2one"}`)},
		{Key: "group", Data: []byte(`,"msg_id":"group"}`)},
	}}
	b.Entries = []chat.Entry{
		{User: "bob", Seq: 1, Frame: []byte(`{"seq":1`), Shared: "one2one"},
		{User: "alice", Seq: 1, Frame: []byte(`{"seq":1`), Shared: "one2one"},
		{User: "bob", Seq: 2, Frame: []byte(`{"g":1`), Shared: "group"},
		{User: "alice", Seq: 2, Frame: []byte(`{"g":1`), Shared: "group"},
		{User: "carol", Seq: 1, Frame: []byte(`{"g":1`), Shared: "group"},
	}
	mustApply(t, s, b)
	for _, e := range b.Entries {
		want := string(e.Frame) + map[string]string{"one2one": `,"msg_id":"one2one"}`, "group": `,"msg_id":"group"}`}[e.Shared]
		if got := frameAt(t, s, e.User, e.Seq); got != want {
			t.Fatalf("(%s, %d) = %q, want %q", e.User, e.Seq, got, want)
		}
	}
	stored := func(key string) bool {
		var n int
		if err := s.query(ctx, `SELECT count(*) FROM shared_parts WHERE ns = ? AND k = ?`, s.ns, []byte(key)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if stored("one2one") || !stored("group") {
		t.Fatalf("stored: one2one %v, group %v; want only the group's part", stored("one2one"), stored("group"))
	}
	if n, err := s.Expire(ctx, t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if stored("group") {
		t.Fatal("the group's part outlived its batch")
	}
	for _, u := range []string{"bob", "alice", "carol"} {
		s.ReadInbox(ctx, u, 0, 10, func(seq uint64, _ []byte) error {
			t.Fatalf("ReadInbox(%s) after Expire: seq %d", u, seq)
			return nil
		})
	}
}
