package cassandra

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard/switchboard/chat"
)

var _ chat.PipelinedStore = (*Store)(nil)

// applyAll starts the Apply of each batch at once, one after the other
// (as the Service's applier does), and returns their results in order.
func applyAll(s *Store, batches ...*chat.Batch) []error {
	chans := make([]chan error, len(batches))
	for i, b := range batches {
		chans[i] = make(chan error, 1)
		s.ApplyAsync(context.Background(), b, func(err error) { chans[i] <- err })
	}
	errs := make([]error, len(batches))
	for i, ch := range chans {
		errs[i] = <-ch
	}
	return errs
}

// TestApplyAsyncChained: batches started before the previous one has
// returned are applied in their order, each continuing the inboxes and
// overwriting a message's status in order.
func TestApplyAsyncChained(t *testing.T) {
	s := openWriter(t, newNamespace())
	var batches []*chat.Batch
	for seq := uint64(1); seq <= 20; seq++ {
		b := entryBatch("bob", seq, fmt.Sprint("frame ", seq), fmt.Sprint("m", seq), fmt.Sprint("c", seq))
		// Every batch also moves m1's status: the last one must win.
		// (Delivered and read: sent is a new message's, whose status
		// is left null.)
		b.Messages = append(b.Messages, chat.MessageMeta{ID: "m1", From: "alice", To: "bob", ClientID: "c1", TS: 1, Seq: 1, Status: chat.Status(2 + seq%2)})
		batches = append(batches, b)
	}
	for i, err := range applyAll(s, batches...) {
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if seq, err := s.LastSeq(context.Background(), "bob"); err != nil || seq != 20 {
		t.Fatalf("LastSeq = %d, %v; want 20", seq, err)
	}
	for seq := uint64(1); seq <= 20; seq++ {
		if got, want := frameAt(t, s, "bob", seq), fmt.Sprint("frame ", seq); got != want {
			t.Fatalf("seq %d holds %q, want %q", seq, got, want)
		}
	}
	m, ok, err := s.Message(context.Background(), "m1")
	if err != nil || !ok || m.Status != chat.Status(2+20%2) {
		t.Fatalf("m1 = %+v, %v, %v; want the last batch's status %d", m, ok, err, 2+20%2)
	}
}

// TestApplyAsyncFailureFailsLater: when a batch fails, those started
// after it fail with chat.ErrEarlierBatch and none of their entries
// becomes visible; the next batch continues from the last head.
func TestApplyAsyncFailureFailsLater(t *testing.T) {
	s := openWriter(t, newNamespace())
	mustApply(t, s, entryBatch("bob", 1, "one", "m1", "c1"))
	bad := &chat.Batch{Time: t0, Entries: []chat.Entry{{User: "bob", Seq: 2}, {User: "bob", Seq: 4}}} // a gap: refused
	errs := applyAll(s, bad, entryBatch("bob", 2, "two", "m2", "c2"), entryBatch("carol", 1, "c-one", "m3", "c3"))
	if !errors.Is(errs[0], ErrInvalidBatch) {
		t.Fatalf("the invalid batch: %v, want ErrInvalidBatch", errs[0])
	}
	for i, err := range errs[1:] {
		if !errors.Is(err, chat.ErrEarlierBatch) {
			t.Fatalf("batch %d after the failed one: %v, want chat.ErrEarlierBatch", i+1, err)
		}
	}
	for user, want := range map[string]uint64{"bob": 1, "carol": 0} {
		if seq, err := s.LastSeq(context.Background(), user); err != nil || seq != want {
			t.Fatalf("LastSeq(%s) = %d, %v; want %d: a batch after the failed one became visible", user, seq, err, want)
		}
	}
	// The chain goes on once the failed batches are done.
	mustApply(t, s, entryBatch("bob", 2, "two again", "m4", "c4"))
	if got := frameAt(t, s, "bob", 2); got != "two again" {
		t.Fatalf("seq 2 = %q", got)
	}
}
