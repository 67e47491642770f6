package chat_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
)

// pipeStore is a chat.PipelinedStore over the memory store: ApplyAsync
// queues the batch for one goroutine that applies the batches in order,
// each taking a while, as a store a round trip away would. A failure
// fails the batches queued while it was in flight.
type pipeStore struct {
	*memory.Store
	delay time.Duration

	mu       sync.Mutex
	queue    []pipeJob
	started  int // batches ApplyAsync was given
	poison   int // batches up to this index fail: queued while a failure was in flight
	failNext bool
	wake     chan struct{}

	inFlight, most atomic.Int32
}

type pipeJob struct {
	i    int
	b    *chat.Batch
	done func(error)
}

func newPipeStore(delay time.Duration) *pipeStore {
	s := &pipeStore{Store: memory.NewStore(), delay: delay, wake: make(chan struct{}, 1)}
	go s.run()
	return s
}

func (s *pipeStore) ApplyAsync(_ context.Context, b *chat.Batch, done func(error)) {
	n := s.inFlight.Add(1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	s.mu.Lock()
	s.started++
	s.queue = append(s.queue, pipeJob{s.started, b, done})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *pipeStore) run() {
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			j := s.queue[0]
			s.queue = s.queue[1:]
			fail, poisoned := s.failNext, j.i <= s.poison
			s.failNext = false
			s.mu.Unlock()
			time.Sleep(s.delay)
			var err error
			switch {
			case poisoned:
				err = chat.ErrEarlierBatch
			case fail:
				err = errDisk
			default:
				err = s.Store.Apply(context.Background(), j.b)
			}
			if err != nil {
				s.mu.Lock()
				s.poison = max(s.poison, s.started)
				s.mu.Unlock()
			}
			s.inFlight.Add(-1)
			j.done(err)
		}
	}
}

// With a PipelinedStore the Service has several batches in the store at
// once, and every inbox stays gap-free and in order.
func TestPipelinedApply(t *testing.T) {
	store := newPipeStore(3 * time.Millisecond)
	svc, _, _ := newService(t, store, chat.Config{})
	c := newCompleter()
	const n = 300
	for i := range n {
		svc.Submit(send(fmt.Sprint("u", i%7), fmt.Sprint(i), "bob", fmt.Sprint("m", i), c))
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // several batches
		}
	}
	c.wait(t, n)
	for id, res := range c.got {
		if res.Err != nil {
			t.Fatalf("send %s: %v", id, res.Err)
		}
	}
	if got := store.most.Load(); got < 2 {
		t.Fatalf("at most %d batches in the store at once; want the applies to overlap", got)
	}
	entries := inbox(t, svc, "bob")
	if len(entries) != n {
		t.Fatalf("bob's inbox holds %d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		if e["seq"].(float64) != float64(i+1) {
			t.Fatalf("entry %d has seq %v", i, e["seq"])
		}
	}
}

// Config.ApplyDepth bounds the batches in the store at once.
func TestApplyDepth(t *testing.T) {
	for _, depth := range []int{1, 2, chat.PipelineDepth} {
		store := newPipeStore(3 * time.Millisecond)
		svc, _, _ := newService(t, store, chat.Config{ApplyDepth: depth})
		c := newCompleter()
		const n = 300
		for i := range n {
			svc.Submit(send(fmt.Sprint("u", i%7), fmt.Sprint(i), "bob", fmt.Sprint("m", i), c))
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		c.wait(t, n)
		if got := int(store.most.Load()); got > depth || depth > 1 && got < 2 {
			t.Fatalf("ApplyDepth %d: at most %d batches in the store at once", depth, got)
		}
		if got := len(inbox(t, svc, "bob")); got != n {
			t.Fatalf("ApplyDepth %d: bob's inbox holds %d entries, want %d", depth, got, n)
		}
	}
	if _, err := chat.New(chat.Config{ApplyDepth: chat.PipelineDepth + 1}, memory.NewStore(), nil, nil, nil, nil); err == nil {
		t.Fatal("an ApplyDepth above PipelineDepth was accepted")
	}
}

// A failed batch fails those in the store behind it; their requests get
// the error, nothing of them is stored, and what follows continues
// without a gap.
func TestPipelinedFailure(t *testing.T) {
	store := newPipeStore(5 * time.Millisecond)
	svc, _, _ := newService(t, store, chat.Config{})
	c := newCompleter()
	svc.Submit(send("alice", "first", "bob", "first", c))
	c.wait(t, 1)
	store.mu.Lock()
	store.failNext = true
	store.mu.Unlock()
	const n = 60
	for i := range n {
		svc.Submit(send("alice", fmt.Sprint(i), "bob", fmt.Sprint("m", i), c))
		time.Sleep(200 * time.Microsecond)
	}
	c.wait(t, n)
	var failed []string
	earlier := 0
	for i := range n {
		id := fmt.Sprint(i)
		if err := c.got[id].Err; err != nil {
			if !errors.Is(err, errDisk) && !errors.Is(err, chat.ErrEarlierBatch) {
				t.Fatalf("send %s: %v", id, err)
			}
			if errors.Is(err, chat.ErrEarlierBatch) {
				earlier++
			}
			failed = append(failed, id)
		}
	}
	t.Logf("%d sends failed, %d of them for an earlier batch's failure", len(failed), earlier)
	if len(failed) == 0 {
		t.Fatal("no send failed; want the failed batch's")
	}
	for _, id := range failed { // the clients' resends
		svc.Submit(send("alice", id, "bob", "m"+id, c))
	}
	c.wait(t, len(failed))
	for _, id := range failed {
		if err := c.got[id].Err; err != nil {
			t.Fatalf("resend %s: %v", id, err)
		}
	}
	entries := inbox(t, svc, "bob")
	if len(entries) != n+1 {
		t.Fatalf("bob's inbox holds %d entries, want %d: every message once", len(entries), n+1)
	}
	seen := map[string]bool{}
	for i, e := range entries {
		if e["seq"].(float64) != float64(i+1) {
			t.Fatalf("entry %d has seq %v: a gap", i, e["seq"])
		}
		body := e["body"].(string)
		if seen[body] {
			t.Fatalf("%q stored twice", body)
		}
		seen[body] = true
	}
}
