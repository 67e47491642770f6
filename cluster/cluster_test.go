package cluster_test

import (
	"context"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/cluster"
	"github.com/switchboard/switchboard/protocol"
)

func ptr(s string) *string { return &s }

func TestCommandRoundTrip(t *testing.T) {
	reqs := []chat.Request{
		{Kind: chat.KindSend, From: "alice", ClientID: []byte("c1"), To: []byte("bob"), Body: []byte(`"hi"`), AssetID: []byte("a1")},
		{Kind: chat.KindGroup, Op: chat.GroupCreate, From: "alice", ClientID: []byte("c2"), Name: []byte("Trip"),
			Members: [][]byte{[]byte("bob"), []byte("carol")}},
		{Kind: chat.KindReceipt, From: "bob", Status: chat.StatusRead, MsgIDs: [][]byte{[]byte("m1"), []byte("m2")}},
		{Kind: chat.KindTyping, From: "bob", Group: []byte("g1"), Stop: true},
		{Kind: chat.KindAsset, From: "alice", PutAt: -5, Asset: &chat.Asset{ID: "a", Owner: "alice", Hash: "h", Size: 1 << 40,
			Mime: "image/png", Kind: "image", Name: "x.png", Created: 7, Thumb: "t", Width: 640, Height: 480, DurationMS: 3, Parent: "p"}},
		{Kind: chat.KindAssetDelete, AssetID: []byte("a"), Collect: &chat.Collect{UnsentBefore: 1, CreatedBefore: 2}},
		{Kind: chat.KindBlob, Sweep: &chat.Sweep{Hash: "h", Step: chat.BlobClaim, Before: 9}},
		{Kind: chat.KindProfile, From: "alice", Profile: &chat.ProfileUpdate{Name: ptr("Alice"), Photo: ptr("")}},
		{Kind: chat.KindProfile, From: "alice", Members: [][]byte{[]byte("bob")}},
	}
	for i, want := range reqs {
		b := cluster.AppendCommand(nil, "node-1", uint64(i)<<40|7, &want)
		var got chat.Request
		node, corr, err := cluster.DecodeCommand(b, &got)
		if err != nil || node != "node-1" || corr != uint64(i)<<40|7 {
			t.Fatalf("%d: DecodeCommand = %q, %d, %v", i, node, corr, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", i, got, want)
		}
		for cut := 0; cut < len(b); cut++ {
			if _, _, err := cluster.DecodeCommand(b[:cut], &got); !errors.Is(err, cluster.ErrBadRecord) {
				t.Fatalf("%d: DecodeCommand of %d of %d bytes: err %v, want ErrBadRecord", i, cut, len(b), err)
			}
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for i, want := range []chat.Result{
		{MsgID: "m1", TS: 1700000000000, Dup: true},
		{Data: []byte(`,"group_id":"g1"`)},
		{Err: chat.ErrNotAdmin},
		{Err: chat.ErrOverloaded},
		{Err: chat.ErrBlobGone},
	} {
		b := cluster.AppendReply(nil, 42, &want)
		corr, got, err := cluster.DecodeReply(b)
		if err != nil || corr != 42 {
			t.Fatalf("%d: DecodeReply: %d, %v", i, corr, err)
		}
		var pe *protocol.Error
		switch {
		case errors.As(want.Err, &pe):
			var gpe *protocol.Error
			if !errors.As(got.Err, &gpe) || *gpe != *pe {
				t.Errorf("%d: err %v, want %v", i, got.Err, want.Err)
			}
			got.Err = want.Err
		case want.Err != nil:
			if !errors.Is(got.Err, want.Err) {
				t.Errorf("%d: err %v, want errors.Is %v", i, got.Err, want.Err)
			}
			got.Err = want.Err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d: got %+v, want %+v", i, got, want)
		}
	}
	other := chat.Result{Err: errors.New("disk on fire")}
	_, got, err := cluster.DecodeReply(cluster.AppendReply(nil, 1, &other))
	if err != nil || got.Err == nil || got.Err.Error() != "worker: disk on fire" {
		t.Errorf("unclassified error: %v, %v", got.Err, err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(cluster.AppendCommand(nil, "n", 1, &chat.Request{Kind: chat.KindSend, From: "a", To: []byte("b"), Body: []byte("x")}))
	f.Add(cluster.AppendCommand(nil, "n", 1, &chat.Request{Kind: chat.KindProfile, Profile: &chat.ProfileUpdate{About: ptr("x")},
		Asset: &chat.Asset{ID: "a"}, Members: [][]byte{[]byte("m")}}))
	f.Add(cluster.AppendReply(nil, 1, &chat.Result{MsgID: "m", Err: chat.ErrNotMember}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r chat.Request
		if node, corr, err := cluster.DecodeCommand(b, &r); err == nil {
			again := cluster.AppendCommand(nil, node, corr, &r)
			var r2 chat.Request
			if _, _, err := cluster.DecodeCommand(again, &r2); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("re-encoding a decoded command does not round trip: %v", err)
			}
		}
		cluster.DecodeReply(b)
	})
}

// memLog is a command log in memory: each Append is handed, in order, to
// the worker on one goroutine (one partition).
type memLog struct {
	mu     sync.Mutex
	fail   error // Append fails with it
	refuse error // Append refuses with it
	ch     chan []byte
}

func (l *memLog) Partitions() int { return 1 }

func (l *memLog) Append(_ int, value []byte, done func(error)) error {
	l.mu.Lock()
	fail, refuse := l.fail, l.refuse
	l.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	if fail != nil {
		go done(fail)
		return nil
	}
	l.ch <- append([]byte(nil), value...)
	go done(nil)
	return nil
}

type replies struct{ rm *cluster.Remote }

func (r *replies) Reply(_ string, payload []byte) { go r.rm.OnReply(payload) }

type result struct {
	r   *chat.Request
	res chat.Result
}

type results chan result

func (c results) Complete(r *chat.Request, res chat.Result) { c <- result{r, res} }

func (c results) next(t *testing.T) chat.Result {
	t.Helper()
	select {
	case r := <-c:
		return r.res
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s")
	}
	return chat.Result{}
}

type setup struct {
	log    *memLog
	remote *cluster.Remote
	svc    *chat.Service
	store  *memory.Store
	worker *cluster.Worker
	offs   *cluster.Offsets
	reg    *prometheus.Registry
}

// newSetup wires a Remote to a Worker over a memLog and a chat.Service
// on the memory backends; run starts the worker's consumer.
func newSetup(t *testing.T, cfg cluster.RemoteConfig, run bool) *setup {
	t.Helper()
	s := &setup{log: &memLog{ch: make(chan []byte, 1024)}, store: memory.NewStore(), offs: cluster.NewOffsets(),
		reg: prometheus.NewRegistry()}
	m := cluster.NewMetrics(s.reg)
	svc, err := chat.New(chat.Config{}, s.store, memory.NewBus(), memory.NewDirectory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.svc = svc
	t.Cleanup(func() { svc.Close() })
	if cfg.Node == "" {
		cfg.Node = "gw-1"
	}
	s.remote, err = cluster.NewRemote(cfg, chat.Config{}, s.log, s.store, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.remote.Close() })
	s.worker = cluster.NewWorker(svc, &replies{s.remote}, m, nil)
	if run {
		s.consume(t)
	}
	return s
}

func (s *setup) consume(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var off int64
		for {
			select {
			case <-ctx.Done():
				return
			case v := <-s.log.ch:
				o := off
				off++
				s.offs.Add(o)
				if err := s.worker.Handle(ctx, v, time.Now(), func() { s.offs.Done(o) }); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func TestSendThroughTheLog(t *testing.T) {
	s := newSetup(t, cluster.RemoteConfig{}, true)
	res := make(results, 16)
	send := func(client string) chat.Result {
		if err := s.remote.Submit(&chat.Request{Kind: chat.KindSend, From: "alice", To: []byte("bob"),
			ClientID: []byte(client), Body: []byte(`"hi"`), Done: res}); err != nil {
			t.Fatal(err)
		}
		return res.next(t)
	}
	first := send("c1")
	if first.Err != nil || first.MsgID == "" || first.Dup {
		t.Fatalf("send: %+v", first)
	}
	if seq, _ := s.remote.LastSeq(context.Background(), "bob"); seq != 1 {
		t.Fatalf("bob's LastSeq = %d after the ack, want 1: the ack must follow the commit", seq)
	}
	again := send("c1")
	if !again.Dup || again.MsgID != first.MsgID {
		t.Fatalf("resend: %+v, want Dup with id %s", again, first.MsgID)
	}
	// A core error comes back with its code.
	if err := s.remote.Submit(&chat.Request{Kind: chat.KindGroup, Op: chat.GroupInfo, From: "alice",
		ClientID: []byte("c2"), Group: []byte("nope"), Done: res}); err != nil {
		t.Fatal(err)
	}
	var pe *protocol.Error
	if r := res.next(t); !errors.As(r.Err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Fatalf("group.info of an unknown group: %v, want not_found", r.Err)
	}
	if got := s.offs.Committable(); got != 3 {
		t.Errorf("Committable = %d, want 3", got)
	}
	// Each of the three requests timed at each stage.
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		counts[mf.GetName()] = mf.GetMetric()[0].GetHistogram().GetSampleCount()
	}
	for _, name := range []string{"switchboard_cluster_request_seconds", "switchboard_cluster_command_wait_seconds", "switchboard_cluster_command_seconds"} {
		if counts[name] != 3 {
			t.Errorf("%s counted %d requests, want 3", name, counts[name])
		}
	}
}

func TestNoFalseAck(t *testing.T) {
	s := newSetup(t, cluster.RemoteConfig{}, true)
	res := make(results, 4)
	s.log.fail = errors.New("kafka: not enough replicas")
	if err := s.remote.Submit(&chat.Request{Kind: chat.KindSend, From: "alice", To: []byte("bob"),
		ClientID: []byte("c1"), Body: []byte(`"hi"`), Done: res}); err != nil {
		t.Fatal(err)
	}
	if r := res.next(t); !errors.Is(r.Err, chat.ErrOverloaded) {
		t.Fatalf("append failed: result %+v, want ErrOverloaded", r)
	}
	s.log.fail, s.log.refuse = nil, errors.New("buffer full")
	if err := s.remote.Submit(&chat.Request{Kind: chat.KindSend, From: "alice", To: []byte("bob"),
		ClientID: []byte("c1"), Body: []byte(`"hi"`), Done: res}); !errors.Is(err, chat.ErrOverloaded) {
		t.Fatalf("append refused: Submit = %v, want ErrOverloaded", err)
	}
	if n := s.remote.Pending(); n != 0 {
		t.Fatalf("%d requests pending after failures", n)
	}
	if seq, _ := s.store.LastSeq(context.Background(), "bob"); seq != 0 {
		t.Fatalf("bob's LastSeq = %d: a refused command was stored", seq)
	}
}

func TestReplyTimeoutAndBound(t *testing.T) {
	// No worker runs: nothing answers.
	s := newSetup(t, cluster.RemoteConfig{ReplyTimeout: 200 * time.Millisecond, MaxPending: 2}, false)
	res := make(results, 4)
	for i := range 3 {
		err := s.remote.Submit(&chat.Request{Kind: chat.KindSend, From: "alice", To: []byte("bob"),
			ClientID: []byte{'c', byte('0' + i)}, Body: []byte(`"hi"`), Done: res})
		if i < 2 && err != nil || i == 2 && !errors.Is(err, chat.ErrOverloaded) {
			t.Fatalf("Submit %d = %v", i, err)
		}
	}
	for range 2 {
		if r := res.next(t); !errors.Is(r.Err, chat.ErrOverloaded) {
			t.Fatalf("unanswered request: %+v, want ErrOverloaded after the timeout", r)
		}
	}
	// The worker starts late: the commands are applied, their replies
	// are stale, and a resend is answered as the duplicate it is.
	s.consume(t)
	deadline := time.Now().Add(10 * time.Second)
	for s.remote.Stats().Stale.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("stale replies: %d, want 2", s.remote.Stats().Stale.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.remote.Submit(&chat.Request{Kind: chat.KindSend, From: "alice", To: []byte("bob"),
		ClientID: []byte("c0"), Body: []byte(`"hi"`), Done: res}); err != nil {
		t.Fatal(err)
	}
	if r := res.next(t); r.Err != nil || !r.Dup {
		t.Fatalf("resend after a timeout: %+v, want the duplicate's ack", r)
	}
}

func TestBadRecordSkipped(t *testing.T) {
	s := newSetup(t, cluster.RemoteConfig{}, false)
	done := make(chan struct{})
	if err := s.worker.Handle(context.Background(), []byte{1, 2, 3}, time.Time{}, func() { close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("done not called for a bad record")
	}
	if s.worker.Stats().Bad.Load() != 1 {
		t.Fatal("bad record not counted")
	}
}

func TestOffsetsOutOfOrder(t *testing.T) {
	o := cluster.NewOffsets()
	for i := int64(10); i < 15; i++ {
		o.Add(i)
	}
	if o.Committable() != -1 {
		t.Fatal("committable before anything is done")
	}
	o.Done(11)
	o.Done(12)
	if got := o.Committable(); got != -1 {
		t.Fatalf("Committable = %d with 10 not done, want -1", got)
	}
	o.Done(10)
	if got := o.Committable(); got != 13 {
		t.Fatalf("Committable = %d, want 13", got)
	}
	if n := o.InFlight(); n != 2 {
		t.Fatalf("InFlight = %d, want 2", n)
	}
	o.Done(14)
	o.Done(13)
	if got := o.Committable(); got != 15 {
		t.Fatalf("Committable = %d, want 15", got)
	}
}

// flaky is a core that fails the first fails forwards it is given, and
// completes everything else at once.
type flaky struct {
	mu    sync.Mutex
	fails int
	seen  int
}

func (f *flaky) Submit(r *chat.Request) error {
	f.mu.Lock()
	f.seen++
	fail := r.Kind == chat.KindForward && f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	go func() {
		if fail {
			r.Done.Complete(r, chat.Result{Err: errors.New("store down")})
			return
		}
		if len(r.Body) == 0 {
			r.Done.Complete(r, chat.Result{Err: chat.ErrBadForward})
			return
		}
		r.Done.Complete(r, chat.Result{})
	}()
	return nil
}

// A forward whose batch failed is submitted again until it is applied,
// and only then done (its offset may be committed); a malformed one is
// done at once.
func TestWorkerRetriesFailedForwards(t *testing.T) {
	core := &flaky{fails: 3}
	w := cluster.NewWorker(core, nil, nil, nil)
	done := make(chan struct{}, 2)
	fwd := cluster.AppendCommand(nil, "", 0, &chat.Request{Kind: chat.KindForward, From: "\x02o/0/1", Body: []byte{0, 1, 1, 0, 0}})
	if err := w.Handle(context.Background(), fwd, time.Now(), func() { done <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the forward was never done")
	}
	core.mu.Lock()
	seen := core.seen
	core.mu.Unlock()
	if seen != 4 || w.Stats().Retried.Load() != 3 {
		t.Fatalf("submitted %d times, %d retries; want 4 and 3", seen, w.Stats().Retried.Load())
	}
	bad := cluster.AppendCommand(nil, "", 0, &chat.Request{Kind: chat.KindForward, From: "\x02o/0/1"})
	if err := w.Handle(context.Background(), bad, time.Now(), func() { done <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a malformed forward was not done")
	}
}
