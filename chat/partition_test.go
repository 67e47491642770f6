package chat_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
)

// partitions is a set of partitioned Services over one store, whose
// Forwarder submits each forward to its target at once: the command log
// of a cluster, in memory.
type partitions struct {
	t     *testing.T
	store chat.Store
	n     int
	mu    sync.Mutex
	svcs  []*chat.Service
	buses []*fwdBus
	res   *forwardResults
}

type fwdBus struct {
	recorder
	p    *partitions
	fail atomic.Bool // Forward fails while set
	sent atomic.Int64
}

func (b *fwdBus) Forward(_ context.Context, to int, r *chat.Request) error {
	if b.fail.Load() {
		return errors.New("log unavailable")
	}
	b.p.mu.Lock()
	target := b.p.svcs[to]
	b.p.mu.Unlock()
	cp := *r
	cp.From = r.From
	cp.Body = append([]byte(nil), r.Body...)
	cp.Done = b.p.res
	for {
		err := target.Submit(&cp)
		if err == nil {
			b.sent.Add(1)
			return nil
		}
		if !errors.Is(err, chat.ErrOverloaded) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// forwardResults counts what the targets made of the forwards.
type forwardResults struct {
	applied, dup, failed atomic.Int64
}

func (f *forwardResults) Complete(_ *chat.Request, res chat.Result) {
	switch {
	case res.Err != nil:
		f.failed.Add(1)
	case res.Dup:
		f.dup.Add(1)
	default:
		f.applied.Add(1)
	}
}

func newPartitions(t *testing.T, n int) *partitions {
	t.Helper()
	p := &partitions{t: t, store: memory.NewStore(), n: n, svcs: make([]*chat.Service, n),
		buses: make([]*fwdBus, n), res: &forwardResults{}}
	for i := range n {
		p.start(i)
	}
	t.Cleanup(func() {
		for _, s := range p.svcs {
			s.Close()
		}
	})
	return p
}

// start (re)starts partition i's Service, as a worker taking it over.
func (p *partitions) start(i int) {
	p.t.Helper()
	bus := &fwdBus{recorder: recorder{seen: map[string][]uint64{}}, p: p}
	svc, err := chat.New(chat.Config{Partitions: p.n, Partition: i}, p.store, bus, memory.NewDirectory(), nil, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.svcs[i], p.buses[i] = svc, bus
	p.mu.Unlock()
}

func (p *partitions) submit(r *chat.Request) {
	p.t.Helper()
	if err := p.svcs[chat.Route(r, p.n)].Submit(r); err != nil {
		p.t.Fatal(err)
	}
}

// userOn returns a user id that partition i of n owns.
func userOn(i, n int, name string) string {
	for k := 0; ; k++ {
		if u := fmt.Sprint(name, k); chat.PartitionOf(u, n) == i {
			return u
		}
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PartitionOf is FNV-1a: the partition of a user must never change
// between versions, or inboxes would change owners.
func TestPartitionOfIsFNV1a(t *testing.T) {
	for _, u := range []string{"", "alice", "bob", "ünïcode", strings.Repeat("x", 128)} {
		h := fnv.New32a()
		h.Write([]byte(u))
		for _, n := range []int{2, 3, 16, 1024} {
			if got, want := chat.PartitionOf(u, n), int(h.Sum32()%uint32(n)); got != want {
				t.Fatalf("PartitionOf(%q, %d) = %d, want %d", u, n, got, want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { chat.PartitionOf("alice", 16) }); n != 0 {
		t.Fatalf("PartitionOf allocates %v times", n)
	}
}

func TestRoute(t *testing.T) {
	alice, grp := userOn(2, 4, "alice"), userOn(3, 4, "group")
	cases := []struct {
		r    chat.Request
		want int
	}{
		{chat.Request{Kind: chat.KindSend, From: alice, To: []byte("bob")}, 2},
		{chat.Request{Kind: chat.KindTyping, From: alice, To: []byte("bob")}, 2},
		{chat.Request{Kind: chat.KindSend, From: alice, Group: []byte(grp)}, 3},
		{chat.Request{Kind: chat.KindSend, From: alice, To: []byte("bob"), AssetID: []byte("a")}, 2},
		{chat.Request{Kind: chat.KindReceipt, From: alice}, 2},
		{chat.Request{Kind: chat.KindTyping, From: alice, Group: []byte(grp)}, 3},
		{chat.Request{Kind: chat.KindMsgInfo, From: alice}, 2},
		{chat.Request{Kind: chat.KindGroup, Op: chat.GroupAdd, From: alice, Group: []byte(grp)}, 3},
		{chat.Request{Kind: chat.KindGroup, Op: chat.GroupCreate, From: alice}, 2},
		{chat.Request{Kind: chat.KindGroup, Op: chat.GroupList, From: alice}, 2},
		{chat.Request{Kind: chat.KindAsset, From: alice}, chat.ControlPartition},
		{chat.Request{Kind: chat.KindProfile, From: alice}, chat.ControlPartition},
	}
	for _, c := range cases {
		if got := chat.Route(&c.r, 4); got != c.want {
			t.Errorf("Route(kind %d, group %q, asset %q) = %d, want %d", c.r.Kind, c.r.Group, c.r.AssetID, got, c.want)
		}
		if got := chat.Route(&c.r, 1); got != 0 {
			t.Errorf("one partition: Route = %d", got)
		}
	}
}

// A message to a user of another partition is stored once by the
// sender's partition and reaches the recipient's inbox through a forward,
// in the order sent, with gap-free seqs; resends stay duplicates.
func TestPartitionedSendForwarded(t *testing.T) {
	p := newPartitions(t, 3)
	alice, bob := userOn(1, 3, "alice"), userOn(2, 3, "bob")
	c := newCompleter()
	const n = 200
	for i := range n {
		p.submit(send(alice, fmt.Sprint(i), bob, fmt.Sprint("m", i), c))
	}
	c.wait(t, n)
	eventually(t, "bob has every message", func() bool { return len(inbox(t, p.svcs[2], bob)) == n })
	for i, e := range inbox(t, p.svcs[2], bob) {
		if e["body"] != fmt.Sprint("m", i) || e["from"] != alice || e["msg_id"] != c.got[fmt.Sprint(i)].MsgID {
			t.Fatalf("bob's entry %d: %v", i, e)
		}
	}
	if got := len(inbox(t, p.svcs[1], alice)); got != n {
		t.Fatalf("alice's own copies: %d, want %d", got, n)
	}
	// Bob's partition delivered his entries; alice's partition hers.
	p.buses[2].mu.Lock()
	delivered := len(p.buses[2].seen[bob])
	p.buses[2].mu.Unlock()
	if delivered != 0 {
		// No route registered: nothing to deliver. (Routes are tested
		// elsewhere; here only the inbox counts.)
		t.Fatalf("bob had no route, yet %d deliveries", delivered)
	}

	dup := newCompleter()
	for i := range n {
		p.submit(send(alice, fmt.Sprint(i), bob, "again", dup))
	}
	dup.wait(t, n)
	for id, r := range dup.got {
		if !r.Dup || r.MsgID != c.got[id].MsgID {
			t.Fatalf("resend %s: %+v", id, r)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := len(inbox(t, p.svcs[2], bob)); got != n {
		t.Fatalf("after resends bob has %d entries, want %d", got, n)
	}
	if p.res.failed.Load() != 0 {
		t.Fatalf("%d forwards failed", p.res.failed.Load())
	}
}

// Receipts (the reader's partition's) and group messages reach users of
// every partition; a receipt of a group message moves the group's
// watermarks on the control partition, which tells the sender once every
// member has read it; message info reads the status its recipient's
// partition wrote.
func TestPartitionedReceiptsAndGroups(t *testing.T) {
	p := newPartitions(t, 3)
	alice, bob, carol := userOn(1, 3, "alice"), userOn(2, 3, "bob"), userOn(0, 3, "carol")
	c := newCompleter()
	p.submit(send(alice, "1", bob, "hi", c))
	c.wait(t, 1)
	id := c.got["1"].MsgID
	eventually(t, "bob has the message", func() bool { return len(inbox(t, p.svcs[2], bob)) == 1 })
	p.submit(&chat.Request{Kind: chat.KindReceipt, From: bob, Status: chat.StatusRead, MsgIDs: [][]byte{[]byte(id)}, ClientID: []byte("r"), Done: c})
	c.wait(t, 1)
	if err := c.got["r"].Err; err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice has the receipt", func() bool {
		es := inbox(t, p.svcs[1], alice)
		return len(es) == 2 && es[1]["type"] == "receipt" && es[1]["status"] == "read" && es[1]["by"] == bob
	})

	gid := createGroup(t, p.svcs[chat.PartitionOf(carol, 3)], carol, alice, bob)
	if chat.PartitionOf(gid, 3) != chat.PartitionOf(carol, 3) {
		t.Fatalf("group %s is partition %d's, not its creator's", gid, chat.PartitionOf(gid, 3))
	}
	gm := groupSend(alice, "gm", gid, "hello team")
	gm.Done = c
	p.submit(gm)
	c.wait(t, 1)
	if err := c.got["gm"].Err; err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name string
		svc  *chat.Service
		n    int // entries: the message (and the receipt), the group's creation, the group message
	}{{alice, p.svcs[1], 4}, {bob, p.svcs[2], 3}, {carol, p.svcs[0], 2}} {
		eventually(t, u.name+" has the group's entries", func() bool {
			es := inbox(t, u.svc, u.name)
			return len(es) == u.n && es[u.n-1]["body"] == "hello team" && es[u.n-2]["type"] == "group"
		})
	}
	gmID := c.got["gm"].MsgID
	for _, reader := range []string{bob, carol} {
		p.submit(&chat.Request{Kind: chat.KindReceipt, From: reader, Status: chat.StatusRead, MsgIDs: [][]byte{[]byte(gmID)}, ClientID: []byte("r" + reader), Done: c})
	}
	c.wait(t, 2)
	// Read implies delivered: a receipt entry for each.
	eventually(t, "alice has the group's read receipt", func() bool {
		es := inbox(t, p.svcs[1], alice)
		last := es[len(es)-1]
		return len(es) == 6 && last["type"] == "receipt" && last["group"] == gid && last["all"] == true && last["status"] == "read"
	})
	info := &chat.Request{Kind: chat.KindMsgInfo, From: alice, MsgIDs: [][]byte{[]byte(id)}, ClientID: []byte("info"), Done: c}
	p.submit(info)
	c.wait(t, 1)
	if res := c.got["info"]; res.Err != nil || !strings.Contains(string(res.Data), `"status":"read"`) {
		t.Fatalf("msg info of the message bob read: %s, %v", res.Data, res.Err)
	}
}

// An attachment sent to a user of another partition: the sender's
// partition checks it from the store and grants the recipient, and the
// control partition, which owns the asset's record, learns that it was
// sent (the unsent collector leaves it alone).
func TestPartitionedAttachment(t *testing.T) {
	p := newPartitions(t, 3)
	alice, bob := userOn(1, 3, "alice"), userOn(2, 3, "bob")
	ctl := p.svcs[chat.ControlPartition]
	newAsset(t, ctl, alice, "ASSET1", "aa11")
	if ids, err := ctl.ExpiredAssets(context.Background(), 1<<62, 0, 10); err != nil || len(ids) != 1 {
		t.Fatalf("unsent assets before the send: %v, %v", ids, err)
	}
	c := newCompleter()
	r := send(alice, "1", bob, "look", c)
	r.AssetID = []byte("ASSET1")
	p.submit(r)
	c.wait(t, 1)
	if err := c.got["1"].Err; err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob has the attachment", func() bool {
		es := inbox(t, p.svcs[2], bob)
		return len(es) == 1 && es[0]["attachment"] != nil
	})
	if !mayRead(ctl, "ASSET1", bob) {
		t.Fatal("bob may not read what he was sent")
	}
	eventually(t, "the asset to be marked sent", func() bool {
		ids, err := ctl.ExpiredAssets(context.Background(), 1<<62, 0, 10)
		return err == nil && len(ids) == 0
	})
	// Someone who may not see it cannot send it, from any partition.
	carol := userOn(0, 3, "carol")
	r = send(carol, "2", bob, "mine?", c)
	r.AssetID = []byte("ASSET1")
	p.submit(r)
	c.wait(t, 1)
	if c.got["2"].Err == nil {
		t.Fatal("carol sent an asset she cannot see")
	}
}

// A relay that cannot forward leaves its entries in the outbox; the
// partition's next owner sends them, and what had arrived already is
// dropped as a duplicate: every entry arrives once.
func TestPartitionedTakeoverResendsOutbox(t *testing.T) {
	p := newPartitions(t, 2)
	alice, bob := userOn(0, 2, "alice"), userOn(1, 2, "bob")
	c := newCompleter()
	for i := range 10 {
		p.submit(send(alice, fmt.Sprint(i), bob, fmt.Sprint("m", i), c))
	}
	c.wait(t, 10)
	eventually(t, "bob has 10", func() bool { return len(inbox(t, p.svcs[1], bob)) == 10 })

	// The log goes away: the next sends are stored and answered, and
	// wait in the outbox.
	p.buses[0].fail.Store(true)
	for i := 10; i < 30; i++ {
		p.submit(send(alice, fmt.Sprint(i), bob, fmt.Sprint("m", i), c))
	}
	c.wait(t, 20)
	time.Sleep(50 * time.Millisecond)
	if got := len(inbox(t, p.svcs[1], bob)); got != 10 {
		t.Fatalf("bob has %d entries while the log is down, want 10", got)
	}
	// The owner stops (its relay gives up), and a new one takes over.
	p.svcs[0].Close()
	p.start(0)
	eventually(t, "bob has 30", func() bool { return len(inbox(t, p.svcs[1], bob)) == 30 })
	for i, e := range inbox(t, p.svcs[1], bob) {
		if e["body"] != fmt.Sprint("m", i) {
			t.Fatalf("bob's entry %d: %v", i, e)
		}
	}

	// A takeover that resends what had arrived: the relay's progress
	// mark is written lazily, so the next owner may start before it.
	before := p.res.dup.Load()
	p.svcs[0].Close()
	p.start(0)
	p.submit(send(alice, "30", bob, "m30", c))
	c.wait(t, 1)
	eventually(t, "bob has 31", func() bool { return len(inbox(t, p.svcs[1], bob)) == 31 })
	time.Sleep(50 * time.Millisecond)
	if got := len(inbox(t, p.svcs[1], bob)); got != 31 {
		t.Fatalf("bob has %d entries, want 31", got)
	}
	t.Logf("forwards dropped as duplicates after the second takeover: %d", p.res.dup.Load()-before)
	if p.res.failed.Load() != 0 {
		t.Fatalf("%d forwards failed", p.res.failed.Load())
	}
}

// fwdBody is a KindForward request's body: frames at consecutive outbox
// seqs from first, from partition src.
func fwdBody(src int, first uint64, frames ...[]byte) []byte {
	return fwdBodyEpoch(src, 0, first, frames...)
}

func fwdBodyEpoch(src int, epoch, first uint64, frames ...[]byte) []byte {
	b := binary.AppendUvarint(nil, uint64(src))
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, uint64(len(frames)))
	for _, f := range frames {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// A forward sent twice is applied once.
func TestForwardAppliedOnce(t *testing.T) {
	p := newPartitions(t, 2)
	alice, bob := userOn(0, 2, "alice"), userOn(1, 2, "bob")
	c := newCompleter()
	p.submit(send(alice, "1", bob, "once", c))
	c.wait(t, 1)
	eventually(t, "bob has it", func() bool { return len(inbox(t, p.svcs[1], bob)) == 1 })
	// Replay the whole outbox of partition 0 to partition 1 by hand.
	var frames, payloads [][]byte
	err := p.store.ReadInbox(context.Background(), "\x02o/0/1", 0, 100, func(seq uint64, frame []byte) error {
		frames = append(frames, fwdBody(0, seq, frame))
		payloads = append(payloads, append([]byte(nil), frame...))
		return nil
	})
	if err != nil || len(frames) != 1 {
		t.Fatalf("outbox: %d frames, %v", len(frames), err)
	}
	payload := payloads[0]
	res := newCompleter()
	p.svcs[1].Submit(&chat.Request{Kind: chat.KindForward, ClientID: []byte("replay"), Body: frames[0], Done: res})
	res.wait(t, 1)
	if r := res.got["replay"]; r.Err != nil || !r.Dup {
		t.Fatalf("replayed forward: %+v", r)
	}
	// One past the next from its source is refused until the one before
	// it is applied.
	gap := fwdBody(0, 3, payload)
	p.svcs[1].Submit(&chat.Request{Kind: chat.KindForward, ClientID: []byte("gap"), Body: gap, Done: res})
	res.wait(t, 1)
	if r := res.got["gap"]; !errors.Is(r.Err, chat.ErrForwardGap) {
		t.Fatalf("a forward past the next: %+v", r)
	}
	// A forward from a partition that does not exist, or from itself, or
	// cut short, is refused.
	for i, body := range [][]byte{fwdBody(5, 1, payload), fwdBody(1, 1, payload), fwdBody(0, 2, payload[:len(payload)-3]),
		fwdBody(0, 2, payload)[:10], fwdBody(0, 0, payload)} {
		id := fmt.Sprint("bad", i)
		p.svcs[1].Submit(&chat.Request{Kind: chat.KindForward, ClientID: []byte(id), Body: body, Done: res})
		res.wait(t, 1)
		if r := res.got[id]; !errors.Is(r.Err, chat.ErrBadForward) {
			t.Fatalf("bad forward %d: %+v", i, r)
		}
	}
	if got := len(inbox(t, p.svcs[1], bob)); got != 1 {
		t.Fatalf("bob has %d entries, want 1", got)
	}
}

// Every partition forwards to every other at once: each sender's
// messages reach each recipient once, in order, and every inbox is
// gap-free (inbox checks the seqs).
func TestPartitionedAllToAll(t *testing.T) {
	const n, msgs = 3, 30
	p := newPartitions(t, n)
	var users []string
	for i := range n {
		users = append(users, userOn(i, n, "x"), userOn(i, n, "y"))
	}
	c := newCompleter()
	var wg sync.WaitGroup
	for _, from := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range msgs {
				for _, to := range users {
					if to != from {
						p.submit(send(from, fmt.Sprint(from, ">", to, "#", k), to, fmt.Sprint(from, "#", k), c))
					}
				}
			}
		}()
	}
	wg.Wait()
	total := len(users) * (len(users) - 1) * msgs
	c.wait(t, total)
	// Each user's inbox: msgs from each other user, plus a copy of each of
	// their own sends.
	want := (len(users)-1)*msgs + (len(users)-1)*msgs
	for _, u := range users {
		svc := p.svcs[chat.PartitionOf(u, n)]
		eventually(t, u+"'s inbox to fill", func() bool { return len(inbox(t, svc, u)) == want })
		next := map[string]int{}
		for _, e := range inbox(t, svc, u) {
			if e["from"] == u {
				continue // own copies
			}
			from := e["from"].(string)
			if e["body"] != fmt.Sprint(from, "#", next[from]) {
				t.Fatalf("%s: from %s got %v, want #%d", u, from, e["body"], next[from])
			}
			next[from]++
		}
	}
	if f := p.res.failed.Load(); f != 0 {
		t.Fatalf("%d forwards failed", f)
	}
}

// A relay that fell behind sends what queued up in few records, and a
// record that starts below the target's mark applies only what is new.
func TestRelayCoalesces(t *testing.T) {
	p := newPartitions(t, 2)
	alice, bob := userOn(0, 2, "alice"), userOn(1, 2, "bob")
	c := newCompleter()
	p.buses[0].fail.Store(true)
	const n = 20
	for i := range n {
		p.submit(send(alice, fmt.Sprint(i), bob, fmt.Sprint("m", i), c))
		c.wait(t, 1) // one batch, one outbox entry, each
	}
	var entries int
	p.store.ReadInbox(context.Background(), "\x02o/0/1", 0, 100, func(uint64, []byte) error { entries++; return nil })
	if entries < n/2 {
		t.Fatalf("%d outbox entries for %d sends one after another", entries, n)
	}
	before := p.buses[0].sent.Load()
	p.buses[0].fail.Store(false)
	eventually(t, "bob has every message", func() bool { return len(inbox(t, p.svcs[1], bob)) == n })
	if records := p.buses[0].sent.Load() - before; records >= int64(entries) {
		t.Fatalf("%d records for %d outbox entries: not coalesced", records, entries)
	}
	for i, e := range inbox(t, p.svcs[1], bob) {
		if e["body"] != fmt.Sprint("m", i) {
			t.Fatalf("bob's entry %d: %v", i, e)
		}
	}

	// The last two outbox entries again, and a new one after them: only
	// the new one is applied.
	var frames [][]byte
	p.store.ReadInbox(context.Background(), "\x02o/0/1", uint64(entries-2), 2, func(_ uint64, f []byte) error {
		frames = append(frames, append([]byte(nil), f...))
		return nil
	})
	frames = append(frames, frames[1]) // its items again, as the next seq
	res := newCompleter()
	p.svcs[1].Submit(&chat.Request{Kind: chat.KindForward, ClientID: []byte("x"), Body: fwdBody(0, uint64(entries-1), frames...), Done: res})
	res.wait(t, 1)
	if r := res.got["x"]; r.Err != nil || r.Dup {
		t.Fatalf("a record with two old forwards and a new one: %+v", r)
	}
	if got := len(inbox(t, p.svcs[1], bob)); got != n+1 {
		t.Fatalf("bob has %d entries, want %d (the new forward's once)", got, n+1)
	}
}

// Once a source's forwards carry a larger epoch (its new owner's), those
// of a smaller one (a deposed owner that resumed) are dropped.
func TestForwardFencedByEpoch(t *testing.T) {
	p := newPartitions(t, 2)
	alice, bob := userOn(0, 2, "alice"), userOn(1, 2, "bob")
	c := newCompleter()
	p.submit(send(alice, "1", bob, "one", c))
	c.wait(t, 1)
	eventually(t, "bob has it", func() bool { return len(inbox(t, p.svcs[1], bob)) == 1 })
	var payload []byte
	p.store.ReadInbox(context.Background(), "\x02o/0/1", 0, 1, func(_ uint64, f []byte) error {
		payload = append([]byte(nil), f...)
		return nil
	})
	res := newCompleter()
	submit := func(id string, epoch, seq uint64) chat.Result {
		p.svcs[1].Submit(&chat.Request{Kind: chat.KindForward, ClientID: []byte(id), Body: fwdBodyEpoch(0, epoch, seq, payload), Done: res})
		res.wait(t, 1)
		return res.got[id]
	}
	if r := submit("new", 5, 2); r.Err != nil || r.Dup {
		t.Fatalf("epoch 5, seq 2: %+v", r)
	}
	if r := submit("zombie", 3, 3); r.Err != nil || !r.Dup {
		t.Fatalf("epoch 3 after epoch 5: %+v, want dropped", r)
	}
	if r := submit("next", 5, 3); r.Err != nil || r.Dup {
		t.Fatalf("epoch 5, seq 3: %+v", r)
	}
	if got := len(inbox(t, p.svcs[1], bob)); got != 3 {
		t.Fatalf("bob has %d entries, want 3 (the zombie's dropped)", got)
	}
}

// A group created on one partition, with members on the others: its
// messages and events reach every member, each member's list of groups is
// kept by the member's own partition, a member who leaves drops it, and
// message info reads the group's watermarks from the store.
func TestPartitionedGroups(t *testing.T) {
	p := newPartitions(t, 3)
	alice, bob, carol := userOn(1, 3, "alice"), userOn(2, 3, "bob"), userOn(0, 3, "carol")
	gid := createGroup(t, p.svcs[1], alice, bob, carol)
	if chat.PartitionOf(gid, 3) != 1 {
		t.Fatalf("alice's group %s belongs to partition %d", gid, chat.PartitionOf(gid, 3))
	}
	c := newCompleter()
	gm := groupSend(alice, "m", gid, "hello")
	gm.Done = c
	p.submit(gm)
	c.wait(t, 1)
	if err := c.got["m"].Err; err != nil {
		t.Fatal(err)
	}
	list := func(user string) []any {
		r := &chat.Request{Kind: chat.KindGroup, Op: chat.GroupList, From: user, ClientID: []byte("l" + user), Done: c}
		p.submit(r)
		c.wait(t, 1)
		res := c.got["l"+user]
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		var v struct{ Groups []any }
		if err := json.Unmarshal(append(append([]byte("{"), res.Data[1:]...), '}'), &v); err != nil {
			t.Fatalf("group.list %s: %v", res.Data, err)
		}
		return v.Groups
	}
	for _, u := range []string{alice, bob, carol} {
		eventually(t, u+" has the group message", func() bool { return len(msgs(t, p.svcs[chat.PartitionOf(u, 3)], u, gid)) == 1 })
		eventually(t, u+"'s list of groups", func() bool { return len(list(u)) == 1 })
	}
	leave := &chat.Request{Kind: chat.KindGroup, Op: chat.GroupLeave, From: bob, Group: []byte(gid), ClientID: []byte("leave"), Done: c}
	p.submit(leave)
	c.wait(t, 1)
	if err := c.got["leave"].Err; err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's list of groups to be empty", func() bool { return len(list(bob)) == 0 })
	r := &chat.Request{Kind: chat.KindReceipt, From: carol, Status: chat.StatusRead, MsgIDs: [][]byte{[]byte(c.got["m"].MsgID)}, ClientID: []byte("rc"), Done: c}
	p.submit(r)
	c.wait(t, 1)
	eventually(t, "message info to show carol's read", func() bool {
		info := &chat.Request{Kind: chat.KindMsgInfo, From: alice, MsgIDs: [][]byte{[]byte(c.got["m"].MsgID)}, ClientID: []byte("info"), Done: c}
		p.submit(info)
		c.wait(t, 1)
		return c.got["info"].Err == nil && strings.Contains(string(c.got["info"].Data), `"read":`)
	})
}

// A group icon set on the group's partition: the asset is checked there
// from the store and pinned by the control partition, after which the
// members may read it; an asset that is not the admin's is refused.
func TestPartitionedGroupIcon(t *testing.T) {
	p := newPartitions(t, 3)
	alice, bob := userOn(1, 3, "alice"), userOn(2, 3, "bob")
	ctl := p.svcs[chat.ControlPartition]
	newAsset(t, ctl, alice, "ICON1", "ic01")
	newAsset(t, ctl, bob, "BOBS", "b0b5")
	gid := createGroup(t, p.svcs[1], alice, bob)
	c := newCompleter()
	set := func(id, asset string) chat.Result {
		r := &chat.Request{Kind: chat.KindGroup, Op: chat.GroupIcon, From: alice, Group: []byte(gid), AssetID: []byte(asset), ClientID: []byte(id), Done: c}
		p.submit(r)
		c.wait(t, 1)
		return c.got[id]
	}
	if res := set("bad", "BOBS"); res.Err == nil {
		t.Fatal("alice set bob's asset as the icon")
	}
	if res := set("ok", "ICON1"); res.Err != nil {
		t.Fatal(res.Err)
	}
	eventually(t, "bob to be allowed the icon", func() bool { return mayRead(ctl, "ICON1", bob) })
	if ids, err := ctl.ExpiredAssets(context.Background(), 1<<62, 0, 10); err != nil || slices.Contains(ids, "ICON1") {
		t.Fatalf("the pinned icon is up for collection: %v, %v", ids, err)
	}
}
