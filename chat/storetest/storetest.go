// Package storetest is the conformance suite for chat.Store. Every backend
// runs it from its own tests, so that memory, disk and the distributed
// engines agree on what the contract in chat/store.go means:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) chat.Store { return memory.NewStore() })
//	}
//
// Run covers the behaviour of a live store; RunDurable adds what a store
// that survives a restart must keep. Tests use only the chat.Store methods
// and an optional io.Closer, never backend internals.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
)

// base is the Time of the first batch in every test. Tests move forward
// from it in whole hours so that retention cuts are unambiguous.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Run runs the chat.Store conformance suite. open returns a new, empty
// store for one subtest; it registers its own cleanup.
func Run(t *testing.T, open func(t *testing.T) chat.Store) {
	t.Run("ApplyReadBack", func(t *testing.T) { testApplyReadBack(t, open(t)) })
	t.Run("FrameBytesExact", func(t *testing.T) { testFrameBytesExact(t, open(t)) })
	t.Run("ReadInboxWindow", func(t *testing.T) { testReadInboxWindow(t, open(t)) })
	t.Run("ReadInboxFnError", func(t *testing.T) { testReadInboxFnError(t, open(t)) })
	t.Run("LastSeq", func(t *testing.T) { testLastSeq(t, open(t)) })
	t.Run("Message", func(t *testing.T) { testMessage(t, open(t)) })
	t.Run("MessageByClientID", func(t *testing.T) { testMessageByClientID(t, open(t)) })
	t.Run("UpsertStatus", func(t *testing.T) { testUpsertStatus(t, open(t)) })
	t.Run("Expire", func(t *testing.T) { testExpire(t, open(t)) })
	t.Run("BatchReuse", func(t *testing.T) { testBatchReuse(t, open(t)) })
	t.Run("ManyUsers", func(t *testing.T) { testManyUsers(t, open(t)) })
	t.Run("ConcurrentReaders", func(t *testing.T) { testConcurrentReaders(t, open(t)) })
	t.Run("ConcurrentApply", func(t *testing.T) { testConcurrentApply(t, open(t)) })
	t.Run("ClientIDs", func(t *testing.T) { testClientIDs(t, open(t)) })
	t.Run("SharedParts", func(t *testing.T) { testSharedParts(t, open(t)) })
	t.Run("SharedPartMissing", func(t *testing.T) { testSharedPartMissing(t, open(t)) })
	t.Run("State", func(t *testing.T) { testState(t, open(t)) })
}

// testSharedParts checks that an entry with a shared part reads back as
// its own bytes followed by the part's, for every entry sharing it, and
// that parts expire with their batch.
func testSharedParts(t *testing.T, s chat.Store) {
	tail := []byte(`,"msg_id":"m1","body":"hello"}`)
	b := &chat.Batch{Time: base,
		Messages: []chat.MessageMeta{msg("m1", "alice", "bob", "c1", 1)},
		Shared:   []chat.SharedPart{{Key: "m1", Data: tail}},
	}
	for _, u := range []string{"bob", "alice", "carol"} {
		b.Entries = append(b.Entries, chat.Entry{User: u, Seq: 1, Frame: []byte(`{"type":"msg","seq":1`), Shared: "m1"})
	}
	b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: 2, Frame: []byte(`{"plain":2}`)})
	apply(t, s, b)
	tail[2] = 'X' // the store must have copied the part
	want := `{"type":"msg","seq":1,"msg_id":"m1","body":"hello"}`
	for _, u := range []string{"bob", "alice", "carol"} {
		got := read(t, s, u, 0, 10)
		if len(got) == 0 || string(got[0].frame) != want {
			t.Fatalf("ReadInbox(%s) = %v, want first frame %s", u, got, want)
		}
	}
	if got := read(t, s, "bob", 0, 10); len(got) != 2 || string(got[1].frame) != `{"plain":2}` {
		t.Fatalf("ReadInbox(bob) = %v, want the shared entry then {\"plain\":2}", got)
	}
	if _, err := s.Expire(context.Background(), base.Add(time.Minute)); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	for _, u := range []string{"bob", "alice", "carol"} {
		if got := read(t, s, u, 0, 10); len(got) != 0 {
			t.Fatalf("ReadInbox(%s) after Expire = %v, want nothing", u, got)
		}
	}
}

// testSharedPartMissing checks that Apply refuses, writing nothing, an
// entry that names a shared part its batch does not carry.
func testSharedPartMissing(t *testing.T, s chat.Store) {
	err := s.Apply(context.Background(), &chat.Batch{Time: base, Entries: []chat.Entry{
		{User: "bob", Seq: 1, Frame: []byte(`{"a":1`), Shared: "nope"}}})
	if err == nil {
		t.Fatal("Apply of an entry naming a missing shared part succeeded")
	}
	wantLastSeq(t, s, "bob", 0)
}

// testState checks state records: upsert, delete, prefix scans in key
// order that do not spill past the prefix, and no retention.
func testState(t *testing.T, s chat.Store) {
	ctx := context.Background()
	get := func(key string) (string, bool) {
		t.Helper()
		var v string
		ok, err := s.GetState(ctx, key, func(b []byte) { v = string(b) })
		if err != nil {
			t.Fatalf("GetState(%q): %v", key, err)
		}
		return v, ok
	}
	scan := func(prefix string) []string {
		t.Helper()
		var got []string
		err := s.ScanState(ctx, prefix, func(k, v []byte) error {
			got = append(got, string(k)+"="+string(v))
			return nil
		})
		if err != nil {
			t.Fatalf("ScanState(%q): %v", prefix, err)
		}
		return got
	}
	if _, ok := get("g/1"); ok {
		t.Fatal("GetState on an empty store found a value")
	}
	apply(t, s, &chat.Batch{Time: base, State: []chat.KV{
		{Key: "g/1", Value: []byte("one")}, {Key: "g/2", Value: []byte("two")},
		{Key: "g/10", Value: []byte("ten")}, {Key: "g0", Value: []byte("next")},
		{Key: "u/alice", Value: []byte{}}}})
	if v, ok := get("g/1"); !ok || v != "one" {
		t.Fatalf("GetState(g/1) = %q, %v", v, ok)
	}
	if v, ok := get("u/alice"); !ok || v != "" {
		t.Fatalf("GetState(u/alice) = %q, %v; an empty value is a value", v, ok)
	}
	if got, want := scan("g/"), []string{"g/1=one", "g/10=ten", "g/2=two"}; !slices.Equal(got, want) {
		t.Fatalf("ScanState(g/) = %q, want %q", got, want)
	}
	apply(t, s, &chat.Batch{Time: base.Add(time.Hour), State: []chat.KV{
		{Key: "g/1", Value: []byte("uno")}, {Key: "g/2", Value: nil}}})
	if got, want := scan("g/"), []string{"g/1=uno", "g/10=ten"}; !slices.Equal(got, want) {
		t.Fatalf("ScanState(g/) after upsert and delete = %q, want %q", got, want)
	}
	if _, err := s.Expire(ctx, base.Add(24*time.Hour)); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if v, ok := get("g/10"); !ok || v != "ten" {
		t.Fatalf("GetState(g/10) after Expire = %q, %v: state is not subject to retention", v, ok)
	}
	if got := scan(""); len(got) != 4 {
		t.Fatalf("ScanState(\"\") = %q, want 4 records", got)
	}
}

// testClientIDs checks chat.ClientIDLister, for stores that have it: each
// sender's indexed client ids, none of another sender's (even one whose
// name extends the first), and none after they expire.
func testClientIDs(t *testing.T, s chat.Store) {
	l, ok := s.(chat.ClientIDLister)
	if !ok {
		t.Skip("the store does not implement chat.ClientIDLister (optional)")
	}
	list := func(from string) []string {
		t.Helper()
		var ids []string
		if err := l.ClientIDs(context.Background(), from, func(id []byte) { ids = append(ids, string(id)) }); err != nil {
			t.Fatalf("ClientIDs(%q): %v", from, err)
		}
		slices.Sort(ids)
		return ids
	}
	apply(t, s, &chat.Batch{Time: base, Messages: []chat.MessageMeta{
		msg("m1", "al", "bob", "x1", 1), msg("m2", "al", "bob", "x2", 2),
		msg("m3", "alice", "bob", "y1", 3), msg("m4", "al", "carol", "", 0)}})
	apply(t, s, &chat.Batch{Time: base.Add(time.Hour), Messages: []chat.MessageMeta{msg("m5", "al", "bob", "x3", 4)}})
	if got := list("al"); !slices.Equal(got, []string{"x1", "x2", "x3"}) {
		t.Fatalf("ClientIDs(al) = %q, want x1 x2 x3", got)
	}
	if got := list("alice"); !slices.Equal(got, []string{"y1"}) {
		t.Fatalf("ClientIDs(alice) = %q, want y1", got)
	}
	if got := list("nobody"); len(got) != 0 {
		t.Fatalf("ClientIDs(nobody) = %q", got)
	}
	if _, err := s.Expire(context.Background(), base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := list("al"); !slices.Equal(got, []string{"x3"}) {
		t.Fatalf("after Expire, ClientIDs(al) = %q, want x3", got)
	}
}

// RunDurable runs the restart part of the suite. open opens (or reopens)
// the store kept in dir; the suite closes it through io.Closer, when the
// store implements it, before opening the same dir again.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) chat.Store) {
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ExpireAcrossReopen", func(t *testing.T) { testExpireAcrossReopen(t, open) })
	t.Run("UseAfterClose", func(t *testing.T) { testUseAfterClose(t, open) })
}

// Frame returns the deterministic frame the suite stores at (user, seq).
// Its length varies with seq and it holds bytes that are not valid UTF-8,
// so that truncation, trimming and text re-encoding are all caught.
func Frame(user string, seq uint64) []byte {
	f := fmt.Appendf(nil, `{"type":"msg","to":%q,"seq":%d,"pad":"`, user, seq)
	for i := range seq % 17 {
		f = append(f, 'a'+byte(i))
	}
	return append(f, '"', '}', 0x00, 0xff, 0xfe)
}

// inbox hands out gap-free seqs per user and remembers the heads, the way
// the Service does.
type inbox map[string]uint64

// add appends n entries for user to b with the user's next seqs.
func (h inbox) add(b *chat.Batch, user string, n int) {
	for range n {
		h[user]++
		b.Entries = append(b.Entries, chat.Entry{User: user, Seq: h[user], Frame: Frame(user, h[user])})
	}
}

func msg(id, from, to, clientID string, seq uint64) chat.MessageMeta {
	return chat.MessageMeta{
		ID: id, From: from, To: to, ClientID: clientID,
		TS: 1_740_830_400_000 + int64(seq), Seq: seq, Status: chat.StatusSent,
	}
}

func apply(t *testing.T, s chat.Store, b *chat.Batch) {
	t.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

type item struct {
	seq   uint64
	frame []byte
}

// read returns copies of what ReadInbox passes to fn.
func read(t *testing.T, s chat.Store, user string, after uint64, limit int) []item {
	t.Helper()
	var got []item
	err := s.ReadInbox(context.Background(), user, after, limit, func(seq uint64, frame []byte) error {
		got = append(got, item{seq, bytes.Clone(frame)})
		return nil
	})
	if err != nil {
		t.Fatalf("ReadInbox(%q, %d, %d): %v", user, after, limit, err)
	}
	return got
}

// wantInbox checks that user's inbox read from after holds exactly the
// seqs in want, with the suite's frames.
func wantInbox(t *testing.T, s chat.Store, user string, after uint64, limit int, want []uint64) {
	t.Helper()
	got := read(t, s, user, after, limit)
	seqs := make([]uint64, len(got))
	for i, it := range got {
		seqs[i] = it.seq
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("ReadInbox(%q, after=%d, limit=%d) seqs = %v, want %v", user, after, limit, seqs, want)
	}
	for _, it := range got {
		if w := Frame(user, it.seq); !bytes.Equal(it.frame, w) {
			t.Fatalf("ReadInbox(%q) seq %d frame = %q, want %q", user, it.seq, it.frame, w)
		}
	}
}

func seqRange(first, last uint64) []uint64 {
	var r []uint64
	for s := first; s <= last; s++ {
		r = append(r, s)
	}
	return r
}

func wantLastSeq(t *testing.T, s chat.Store, user string, want uint64) {
	t.Helper()
	got, err := s.LastSeq(context.Background(), user)
	if err != nil {
		t.Fatalf("LastSeq(%q): %v", user, err)
	}
	if got != want {
		t.Fatalf("LastSeq(%q) = %d, want %d", user, got, want)
	}
}

func wantMessage(t *testing.T, s chat.Store, want chat.MessageMeta) {
	t.Helper()
	got, ok, err := s.Message(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("Message(%q): %v", want.ID, err)
	}
	if !ok {
		t.Fatalf("Message(%q) not found", want.ID)
	}
	if got != want {
		t.Fatalf("Message(%q) = %+v, want %+v", want.ID, got, want)
	}
}

func wantNoMessage(t *testing.T, s chat.Store, id string) {
	t.Helper()
	got, ok, err := s.Message(context.Background(), id)
	if err != nil {
		t.Fatalf("Message(%q): %v", id, err)
	}
	if ok {
		t.Fatalf("Message(%q) = %+v, want not found", id, got)
	}
}

func wantByClientID(t *testing.T, s chat.Store, from, clientID string, want chat.MessageMeta) {
	t.Helper()
	got, ok, err := s.MessageByClientID(context.Background(), from, clientID)
	if err != nil {
		t.Fatalf("MessageByClientID(%q, %q): %v", from, clientID, err)
	}
	if !ok {
		t.Fatalf("MessageByClientID(%q, %q) not found", from, clientID)
	}
	if got != want {
		t.Fatalf("MessageByClientID(%q, %q) = %+v, want %+v", from, clientID, got, want)
	}
}

func wantNoClientID(t *testing.T, s chat.Store, from, clientID string) {
	t.Helper()
	got, ok, err := s.MessageByClientID(context.Background(), from, clientID)
	if err != nil {
		t.Fatalf("MessageByClientID(%q, %q): %v", from, clientID, err)
	}
	if ok {
		t.Fatalf("MessageByClientID(%q, %q) = %+v, want not found", from, clientID, got)
	}
}

func wantExpire(t *testing.T, s chat.Store, before time.Time, want int) {
	t.Helper()
	n, err := s.Expire(context.Background(), before)
	if err != nil {
		t.Fatalf("Expire(%v): %v", before, err)
	}
	if n != want {
		t.Fatalf("Expire(%v) = %d batches, want %d", before, n, want)
	}
}

func testApplyReadBack(t *testing.T, s chat.Store) {
	h := inbox{}
	b := &chat.Batch{Time: base}
	b.Messages = append(b.Messages,
		msg("m1", "alice", "bob", "a-1", 1),
		msg("m2", "carol", "bob", "c-1", 2))
	// A user's entries are in seq order but may interleave with others'.
	h.add(b, "bob", 1)
	h.add(b, "alice", 1)
	h.add(b, "bob", 1)
	h.add(b, "alice", 1)
	h.add(b, "bob", 1)
	apply(t, s, b)

	wantInbox(t, s, "bob", 0, 100, seqRange(1, 3))
	wantInbox(t, s, "alice", 0, 100, seqRange(1, 2))
	wantInbox(t, s, "carol", 0, 100, nil)
	wantMessage(t, s, b.Messages[0])
	wantMessage(t, s, b.Messages[1])

	// An empty batch changes nothing.
	apply(t, s, &chat.Batch{Time: base.Add(time.Hour)})
	wantInbox(t, s, "bob", 0, 100, seqRange(1, 3))
	wantLastSeq(t, s, "bob", 3)
}

func testFrameBytesExact(t *testing.T, s chat.Store) {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	big := make([]byte, 256<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	frames := [][]byte{every, []byte(`{"type":"msg","text":"zoë 用户 👋"}`), big, []byte(" {} \n")}
	b := &chat.Batch{Time: base}
	for i, f := range frames {
		b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: uint64(i + 1), Frame: f})
	}
	apply(t, s, b)

	got := read(t, s, "bob", 0, 100)
	if len(got) != len(frames) {
		t.Fatalf("ReadInbox returned %d entries, want %d", len(got), len(frames))
	}
	for i, it := range got {
		if it.seq != uint64(i+1) || !bytes.Equal(it.frame, frames[i]) {
			t.Fatalf("entry %d = seq %d, %d bytes; want seq %d, %d bytes, identical", i, it.seq, len(it.frame), i+1, len(frames[i]))
		}
	}
}

func testReadInboxWindow(t *testing.T, s chat.Store) {
	h := inbox{}
	for i, n := range []int{4, 3, 3} {
		b := &chat.Batch{Time: base.Add(time.Duration(i) * time.Hour)}
		h.add(b, "bob", n)
		h.add(b, "alice", 1)
		apply(t, s, b)
	}
	for _, tc := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 100, seqRange(1, 10)},
		{0, 10, seqRange(1, 10)},
		{0, 1, []uint64{1}},
		{3, 4, seqRange(4, 7)}, // crosses the first batch boundary
		{8, 10, []uint64{9, 10}},
		{9, 1, []uint64{10}},
		{10, 5, nil},
		{25, 5, nil},
		{^uint64(0), 5, nil},
		{0, 0, nil}, // "at most limit": none
	} {
		wantInbox(t, s, "bob", tc.after, tc.limit, tc.want)
	}
	wantInbox(t, s, "alice", 1, 100, seqRange(2, 3))
	wantInbox(t, s, "nobody", 0, 100, nil)
	// A user whose id is a prefix of another's sees only its own inbox.
	wantInbox(t, s, "bo", 0, 100, nil)
	wantInbox(t, s, "bobby", 0, 100, nil)
}

func testReadInboxFnError(t *testing.T, s chat.Store) {
	b := &chat.Batch{Time: base}
	inbox{}.add(b, "bob", 10)
	apply(t, s, b)

	stop := errors.New("storetest: stop")
	for _, stopAt := range []int{1, 3, 10} {
		calls := 0
		err := s.ReadInbox(context.Background(), "bob", 0, 100, func(seq uint64, frame []byte) error {
			calls++
			if calls == stopAt {
				return fmt.Errorf("at %d: %w", seq, stop)
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("stop at %d: ReadInbox error = %v, want the fn's error", stopAt, err)
		}
		if calls != stopAt {
			t.Fatalf("stop at %d: fn called %d times after returning an error", stopAt, calls)
		}
	}
}

func testLastSeq(t *testing.T, s chat.Store) {
	wantLastSeq(t, s, "bob", 0)

	h := inbox{}
	b := &chat.Batch{Time: base}
	h.add(b, "bob", 3)
	h.add(b, "alice", 1)
	apply(t, s, b)
	wantLastSeq(t, s, "bob", 3)
	wantLastSeq(t, s, "alice", 1)
	wantLastSeq(t, s, "carol", 0)
	wantLastSeq(t, s, "bo", 0)

	b = &chat.Batch{Time: base.Add(time.Hour)}
	h.add(b, "bob", 2)
	apply(t, s, b)
	wantLastSeq(t, s, "bob", 5)
	wantLastSeq(t, s, "alice", 1)

	// A batch of messages only (a receipt's status upsert) does not move heads.
	apply(t, s, &chat.Batch{Time: base.Add(2 * time.Hour), Messages: []chat.MessageMeta{msg("m9", "alice", "bob", "", 5)}})
	wantLastSeq(t, s, "bob", 5)
}

func testMessage(t *testing.T, s chat.Store) {
	wantNoMessage(t, s, "m1")

	odd := chat.MessageMeta{
		ID: "01JNB8Z0000000000000000000", From: "zoë", To: "用户", ClientID: "c/1:2 x",
		TS: 1<<53 + 1, Seq: 1<<40 + 7, Status: chat.StatusRead,
	}
	plain := msg("m1", "alice", "bob", "", 1)
	apply(t, s, &chat.Batch{Time: base, Messages: []chat.MessageMeta{odd, plain}})

	wantMessage(t, s, odd)
	wantMessage(t, s, plain)
	wantNoMessage(t, s, "m2")
	wantNoMessage(t, s, "m")
	wantNoMessage(t, s, "m10")
}

func testMessageByClientID(t *testing.T, s chat.Store) {
	a1 := msg("m1", "alice", "bob", "c-1", 1)
	dupA := msg("m2", "alice", "bob", "dup", 2)
	dupB := msg("m3", "bob", "alice", "dup", 1)
	none := msg("m4", "alice", "bob", "", 3)
	split1 := msg("m5", "ab", "bob", "c", 4)
	split2 := msg("m6", "a", "bob", "bc", 5)
	apply(t, s, &chat.Batch{Time: base, Messages: []chat.MessageMeta{a1, dupA, dupB, none, split1, split2}})

	wantByClientID(t, s, "alice", "c-1", a1)
	wantNoClientID(t, s, "alice", "c-2")
	wantNoClientID(t, s, "bob", "c-1")
	wantNoClientID(t, s, "carol", "c-1")
	// Client ids are per sender.
	wantByClientID(t, s, "alice", "dup", dupA)
	wantByClientID(t, s, "bob", "dup", dupB)
	// A message without a client id is not indexed.
	wantNoClientID(t, s, "alice", "")
	// (from, clientID) is a pair, not a concatenation.
	wantByClientID(t, s, "ab", "c", split1)
	wantByClientID(t, s, "a", "bc", split2)
	wantNoClientID(t, s, "abc", "")
	wantNoClientID(t, s, "a", "b")
}

func testUpsertStatus(t *testing.T, s chat.Store) {
	m := msg("m1", "alice", "bob", "c-1", 1)
	b := &chat.Batch{Time: base, Messages: []chat.MessageMeta{m}}
	inbox{}.add(b, "bob", 1)
	apply(t, s, b)
	wantByClientID(t, s, "alice", "c-1", m)

	for i, st := range []chat.Status{chat.StatusDelivered, chat.StatusRead} {
		m.Status = st
		apply(t, s, &chat.Batch{Time: base.Add(time.Duration(i+1) * time.Minute), Messages: []chat.MessageMeta{m}})
		wantMessage(t, s, m)
		wantByClientID(t, s, "alice", "c-1", m)
	}
	wantInbox(t, s, "bob", 0, 100, []uint64{1})
	wantLastSeq(t, s, "bob", 1)
}

func testExpire(t *testing.T, s chat.Store) {
	wantExpire(t, s, base.Add(24*time.Hour), 0) // empty store

	t0, t1, t2 := base, base.Add(time.Hour), base.Add(2*time.Hour)
	h := inbox{}

	b0 := &chat.Batch{Time: t0, Messages: []chat.MessageMeta{msg("m0", "alice", "bob", "c0", 1)}}
	h.add(b0, "bob", 2)
	h.add(b0, "alice", 1)
	apply(t, s, b0)
	// A second batch with the same Time is a separate batch.
	b0b := &chat.Batch{Time: t0, Messages: []chat.MessageMeta{msg("m0b", "carol", "alice", "c0b", 2)}}
	h.add(b0b, "alice", 1)
	apply(t, s, b0b)
	m1 := msg("m1", "alice", "bob", "c1", 3)
	b1 := &chat.Batch{Time: t1, Messages: []chat.MessageMeta{m1}}
	h.add(b1, "bob", 1)
	apply(t, s, b1)
	m2 := msg("m2", "carol", "bob", "c2", 4)
	b2 := &chat.Batch{Time: t2, Messages: []chat.MessageMeta{m2}}
	h.add(b2, "bob", 2)
	apply(t, s, b2)

	wantExpire(t, s, t0, 0) // nothing is before the first batch
	wantInbox(t, s, "bob", 0, 100, seqRange(1, 5))

	wantExpire(t, s, t1, 2) // b0 and b0b
	wantInbox(t, s, "bob", 0, 100, seqRange(3, 5))
	wantInbox(t, s, "alice", 0, 100, nil)
	wantLastSeq(t, s, "bob", 5)
	wantLastSeq(t, s, "alice", 2)
	wantNoMessage(t, s, "m0")
	wantNoMessage(t, s, "m0b")
	wantNoClientID(t, s, "alice", "c0")
	wantNoClientID(t, s, "carol", "c0b")
	wantMessage(t, s, m1)
	wantByClientID(t, s, "alice", "c1", m1)
	wantMessage(t, s, m2)
	wantByClientID(t, s, "carol", "c2", m2)

	wantExpire(t, s, t1, 0) // idempotent

	wantExpire(t, s, t2, 1) // b1; b2's Time is not before t2
	wantInbox(t, s, "bob", 0, 100, seqRange(4, 5))
	wantNoMessage(t, s, "m1")
	wantNoClientID(t, s, "alice", "c1")
	wantMessage(t, s, m2)

	wantExpire(t, s, t2.Add(time.Nanosecond), 1)
	wantInbox(t, s, "bob", 0, 100, nil)
	wantNoMessage(t, s, "m2")
	wantNoClientID(t, s, "carol", "c2")
	wantLastSeq(t, s, "bob", 5)
	wantLastSeq(t, s, "alice", 2)

	// The inbox continues after its entries expired.
	b3 := &chat.Batch{Time: t2.Add(time.Hour)}
	h.add(b3, "bob", 1)
	apply(t, s, b3)
	wantInbox(t, s, "bob", 0, 100, []uint64{6})
	wantLastSeq(t, s, "bob", 6)
	wantExpire(t, s, t2.Add(48*time.Hour), 1)
	wantLastSeq(t, s, "bob", 6)
}

// testBatchReuse checks that Apply copies what it keeps: the Service
// resets and refills one Batch, and reuses frame buffers.
func testBatchReuse(t *testing.T, s chat.Store) {
	b := &chat.Batch{Time: base}
	buf := make([]byte, 0, 1024)
	for seq := uint64(1); seq <= 3; seq++ {
		start := len(buf)
		buf = append(buf, Frame("bob", seq)...)
		b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: seq, Frame: buf[start:len(buf):len(buf)]})
	}
	b.Messages = append(b.Messages, msg("m1", "alice", "bob", "c-1", 1))
	apply(t, s, b)

	for i := range buf {
		buf[i] = 'X'
	}
	b.Reset()
	b.Time = base.Add(time.Hour)
	b.Entries = append(b.Entries, chat.Entry{User: "alice", Seq: 1, Frame: Frame("alice", 1)})
	apply(t, s, b)

	wantInbox(t, s, "bob", 0, 100, seqRange(1, 3))
	wantInbox(t, s, "alice", 0, 100, []uint64{1})
	wantMessage(t, s, msg("m1", "alice", "bob", "c-1", 1))
}

func user(i int) string { return fmt.Sprintf("user-%04d", i) }

func testManyUsers(t *testing.T, s chat.Store) {
	const users, batches = 500, 6
	h := inbox{}
	var msgs []chat.MessageMeta
	for bi := range batches {
		b := &chat.Batch{Time: base.Add(time.Duration(bi) * time.Hour)}
		for u := range users {
			n := (u+bi)%3 + 1
			h.add(b, user(u), n)
			m := msg(fmt.Sprintf("m-%d-%d", bi, u), user((u+1)%users), user(u), fmt.Sprintf("c-%d", bi), h[user(u)])
			b.Messages = append(b.Messages, m)
			msgs = append(msgs, m)
		}
		apply(t, s, b)
	}
	for u := range users {
		wantLastSeq(t, s, user(u), h[user(u)])
		wantInbox(t, s, user(u), 0, 1000, seqRange(1, h[user(u)]))
	}
	for i := 0; i < len(msgs); i += 37 {
		wantMessage(t, s, msgs[i])
		wantByClientID(t, s, msgs[i].From, msgs[i].ClientID, msgs[i])
	}
}

// testConcurrentReaders runs readers against one writer and checks that
// a batch is visible to every reader once Apply has returned, and that no
// reader ever sees a gap or a torn frame.
func testConcurrentReaders(t *testing.T, s chat.Store) {
	const users, batches, readers = 32, 150, 4
	acked := make([]atomic.Uint64, users) // per user: last seq whose Apply returned
	var ackedMsgs atomic.Int64            // messages m-0 .. m-(n-1) are durable
	done := make(chan struct{})
	ctx := context.Background()

	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for iter := 0; ; iter++ {
				select {
				case <-done:
					if iter > 0 {
						return
					}
				default:
				}
				u := rng.IntN(users)
				floor := acked[u].Load()
				last, err := s.LastSeq(ctx, user(u))
				if err != nil {
					t.Errorf("LastSeq: %v", err)
					return
				}
				if last < floor {
					t.Errorf("LastSeq(%s) = %d after Apply of seq %d returned", user(u), last, floor)
					return
				}
				next := uint64(1)
				err = s.ReadInbox(ctx, user(u), 0, 1<<20, func(seq uint64, frame []byte) error {
					if seq != next {
						return fmt.Errorf("ReadInbox(%s): seq %d, want %d", user(u), seq, next)
					}
					if w := Frame(user(u), seq); !bytes.Equal(frame, w) {
						return fmt.Errorf("ReadInbox(%s): seq %d frame %q, want %q", user(u), seq, frame, w)
					}
					next++
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if next-1 < floor {
					t.Errorf("ReadInbox(%s) ended at %d after Apply of seq %d returned", user(u), next-1, floor)
					return
				}
				if n := ackedMsgs.Load(); n > 0 {
					id := fmt.Sprintf("m-%d", rng.Int64N(n))
					if _, ok, err := s.Message(ctx, id); err != nil || !ok {
						t.Errorf("Message(%s) = %v, %v after its Apply returned", id, ok, err)
						return
					}
				}
			}
		})
	}

	h := inbox{}
	var nmsg int64
	for bi := range batches {
		b := &chat.Batch{Time: base.Add(time.Duration(bi) * time.Second)}
		for k := range 8 {
			u := user((bi*8 + k) % users)
			h.add(b, u, 1+k%3)
			b.Messages = append(b.Messages, msg(fmt.Sprintf("m-%d", nmsg), "sender", u, fmt.Sprintf("c-%d", nmsg), h[u]))
			nmsg++
		}
		if err := s.Apply(ctx, b); err != nil {
			t.Errorf("Apply: %v", err)
			break
		}
		for _, e := range b.Entries {
			var u int
			fmt.Sscanf(e.User, "user-%d", &u)
			acked[u].Store(e.Seq)
		}
		ackedMsgs.Store(nmsg)
	}
	close(done)
	wg.Wait()
}

// testConcurrentApply applies batches from several goroutines on disjoint
// users: the Service applies from one goroutine, but every method of a
// Store is safe for concurrent use.
func testConcurrentApply(t *testing.T, s chat.Store) {
	const writers, batches, usersPerWriter = 4, 40, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			h := inbox{}
			for bi := range batches {
				b := &chat.Batch{Time: base.Add(time.Duration(bi) * time.Second)}
				for k := range usersPerWriter {
					u := fmt.Sprintf("w%d-u%d", w, k)
					h.add(b, u, 2)
					b.Messages = append(b.Messages, msg(fmt.Sprintf("w%d-m%d-%d", w, bi, k), "x", u, fmt.Sprintf("w%d-%d-%d", w, bi, k), h[u]))
				}
				if err := s.Apply(context.Background(), b); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range writers {
		for k := range usersPerWriter {
			u := fmt.Sprintf("w%d-u%d", w, k)
			wantLastSeq(t, s, u, 2*batches)
			wantInbox(t, s, u, 0, 1000, seqRange(1, 2*batches))
		}
		wantMessage(t, s, msg(fmt.Sprintf("w%d-m%d-%d", w, batches-1, 0), "x", fmt.Sprintf("w%d-u0", w), fmt.Sprintf("w%d-%d-0", w, batches-1), 2*batches))
	}
	wantExpire(t, s, base.Add(time.Hour), writers*batches)
}

// closeStore closes s if it can be closed.
func closeStore(t *testing.T, s chat.Store) {
	t.Helper()
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func testReopen(t *testing.T, open func(t *testing.T, dir string) chat.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	h := inbox{}
	var msgs []chat.MessageMeta
	for bi := range 3 {
		b := &chat.Batch{Time: base.Add(time.Duration(bi) * time.Hour)}
		for _, u := range []string{"alice", "bob", "zoë"} {
			h.add(b, u, bi+1)
			m := msg(fmt.Sprintf("m-%d-%s", bi, u), "carol", u, fmt.Sprintf("c-%d-%s", bi, u), h[u])
			b.Messages = append(b.Messages, m)
			msgs = append(msgs, m)
		}
		apply(t, s, b)
	}
	msgs[0].Status = chat.StatusRead
	apply(t, s, &chat.Batch{Time: base.Add(3 * time.Hour), Messages: msgs[:1]})

	check := func(s chat.Store) {
		t.Helper()
		for _, u := range []string{"alice", "bob", "zoë"} {
			wantLastSeq(t, s, u, h[u])
			wantInbox(t, s, u, 0, 1000, seqRange(1, h[u]))
		}
		for _, m := range msgs {
			wantMessage(t, s, m)
			wantByClientID(t, s, m.From, m.ClientID, m)
		}
	}
	check(s)
	closeStore(t, s)

	s = open(t, dir)
	check(s)
	// The reopened store continues the inboxes.
	b := &chat.Batch{Time: base.Add(4 * time.Hour)}
	h.add(b, "bob", 2)
	apply(t, s, b)
	check(s)
	closeStore(t, s)

	s = open(t, dir)
	check(s)
	closeStore(t, s)
}

func testExpireAcrossReopen(t *testing.T, open func(t *testing.T, dir string) chat.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	h := inbox{}
	b := &chat.Batch{Time: base, Messages: []chat.MessageMeta{msg("m1", "alice", "bob", "c1", 1)}}
	h.add(b, "bob", 2)
	apply(t, s, b)
	closeStore(t, s)

	// A batch applied after a restart with the same Time must be indexed
	// for retention separately from the one before it.
	s = open(t, dir)
	b = &chat.Batch{Time: base, Messages: []chat.MessageMeta{msg("m2", "alice", "bob", "c2", 3)}}
	h.add(b, "bob", 1)
	apply(t, s, b)
	m3 := msg("m3", "alice", "bob", "c3", 4)
	b = &chat.Batch{Time: base.Add(time.Hour), Messages: []chat.MessageMeta{m3}}
	h.add(b, "bob", 1)
	apply(t, s, b)
	closeStore(t, s)

	s = open(t, dir)
	wantExpire(t, s, base.Add(time.Minute), 2)
	closeStore(t, s)

	s = open(t, dir)
	wantInbox(t, s, "bob", 0, 100, []uint64{4})
	wantLastSeq(t, s, "bob", 4)
	wantNoMessage(t, s, "m1")
	wantNoMessage(t, s, "m2")
	wantNoClientID(t, s, "alice", "c1")
	wantNoClientID(t, s, "alice", "c2")
	wantMessage(t, s, m3)
	wantExpire(t, s, base.Add(time.Minute), 0)
	wantExpire(t, s, base.Add(2*time.Hour), 1)
	closeStore(t, s)

	s = open(t, dir)
	wantInbox(t, s, "bob", 0, 100, nil)
	wantLastSeq(t, s, "bob", 4)
	closeStore(t, s)
}

func testUseAfterClose(t *testing.T, open func(t *testing.T, dir string) chat.Store) {
	s := open(t, t.TempDir())
	if _, ok := s.(io.Closer); !ok {
		t.Skip("store has no Close")
	}
	b := &chat.Batch{Time: base}
	inbox{}.add(b, "bob", 1)
	apply(t, s, b)
	closeStore(t, s)

	ctx := context.Background()
	b = &chat.Batch{Time: base}
	b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: 2, Frame: Frame("bob", 2)})
	for name, err := range map[string]error{
		"Apply":             s.Apply(ctx, b),
		"LastSeq":           second(s.LastSeq(ctx, "bob")),
		"Message":           third(s.Message(ctx, "m1")),
		"MessageByClientID": third(s.MessageByClientID(ctx, "a", "c")),
		"ReadInbox":         s.ReadInbox(ctx, "bob", 0, 10, func(uint64, []byte) error { return nil }),
		"Expire":            second(s.Expire(ctx, base.Add(time.Hour))),
	} {
		if !errors.Is(err, chat.ErrClosed) {
			t.Errorf("%s after Close: error %v, want chat.ErrClosed", name, err)
		}
	}
}

func second[A any](_ A, err error) error        { return err }
func third[A, B any](_ A, _ B, err error) error { return err }
