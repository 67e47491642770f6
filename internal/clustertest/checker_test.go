package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/client"
)

// traffic is a checker: pairs of users, each sender sending numbered
// messages to its receiver through the balancer, every send, ack and
// receipt logged. verify then reads every inbox afresh and asserts what
// the issue asks of each fault: every acked message stored once and
// delivered to its recipient, every inbox's seqs gap-free.
type traffic struct {
	c     *Cluster
	url   string
	pairs []*pair

	mu     sync.Mutex
	acks   map[string]ackLog              // client id -> its ack
	errors map[string]*client.ServerError // client id -> the last error frame naming it
}

type ackLog struct {
	msgID string
	at    time.Time
	body  string
	to    string
}

type pair struct {
	from, to *user
	sent     []sent
}

type sent struct {
	clientID, body string
	at             time.Time
}

func newTraffic(t *testing.T, c *Cluster, url string, pairs int) *traffic {
	tr := &traffic{c: c, url: url, acks: map[string]ackLog{}, errors: map[string]*client.ServerError{}}
	for i := range pairs {
		p := &pair{}
		p.from = tr.connect(t, fmt.Sprintf("s%d", i))
		p.to = tr.connect(t, fmt.Sprintf("r%d", i))
		tr.pairs = append(tr.pairs, p)
	}
	return tr
}

func (tr *traffic) connect(t *testing.T, name string) *user {
	t.Helper()
	return connect(t, tr.c, tr.url, name, "phone", func(ev client.Event) {
		switch ev := ev.(type) {
		case client.Ack:
			tr.mu.Lock()
			tr.acks[ev.ClientID] = ackLog{msgID: ev.MsgID, at: time.Now(), body: ev.Body, to: ev.To}
			tr.mu.Unlock()
		case *client.ServerError:
			if ev.ID != "" {
				tr.mu.Lock()
				tr.errors[ev.ID] = ev
				tr.mu.Unlock()
			}
		}
	})
}

// send has every sender send n messages, one every interval, and returns
// when all are queued in the clients' outboxes (not acked).
func (tr *traffic) send(t *testing.T, n int, interval time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range tr.pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			base := len(p.sent)
			for i := range n {
				body := fmt.Sprintf("%s->%s #%d", p.from.name, p.to.name, base+i)
				id, err := p.from.c.Send(context.Background(), p.to.name, body)
				if err != nil {
					t.Errorf("%s: Send: %v", p.from.name, err)
					return
				}
				p.sent = append(p.sent, sent{clientID: id, body: body, at: time.Now()})
				<-tick.C
			}
		}()
	}
	wg.Wait()
}

// ackedAll waits until every message sent was acked. It uses Flush, not
// Pending: the outbox entry is removed a moment before its Ack event is
// handed to the handler, and Flush returns only after the event.
func (tr *traffic) ackedAll(t *testing.T, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for _, p := range tr.pairs {
		if err := p.from.c.Flush(ctx); err != nil {
			t.Fatalf("%s: every send acked within %v: %v (%d still pending)", p.from.name, within, err, p.from.c.Pending())
		}
	}
}

// verify asserts the checker's invariants, reading every inbox with a
// fresh device that syncs it from the start.
func (tr *traffic) verify(t *testing.T) {
	t.Helper()
	tr.ackedAll(t, 90*time.Second)
	tr.mu.Lock()
	acks := make(map[string]ackLog, len(tr.acks))
	for k, v := range tr.acks {
		acks[k] = v
	}
	errs := make(map[string]*client.ServerError, len(tr.errors))
	for k, v := range tr.errors {
		errs[k] = v
	}
	tr.mu.Unlock()
	total := 0
	for _, p := range tr.pairs {
		want := map[string]string{} // body -> msg id
		for _, s := range p.sent {
			a, ok := acks[s.clientID]
			if !ok {
				t.Fatalf("%s's send %q (%s) has no ack although its outbox is empty (its last error frame: %v)", p.from.name, s.body, s.clientID, errs[s.clientID])
			}
			want[s.body] = a.msgID
		}
		total += len(want)
		// The receiver's own device, which stayed connected (or
		// reconnected) throughout, shows every acked message, once.
		// An ack can overtake its delivery: wait for them.
		var got map[string]int
		complete := func() bool {
			got = map[string]int{}
			for _, m := range p.to.messages() {
				got[m.Body]++
			}
			for body := range want {
				if got[body] == 0 {
					return false
				}
			}
			return true
		}
		deadline := time.Now().Add(30 * time.Second)
		for !complete() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		for body := range want {
			if got[body] != 1 {
				t.Errorf("%s's device received %q %d times, want once", p.to.name, body, got[body])
			}
		}
		// The store: a fresh device reads the whole inbox.
		for _, u := range []*user{p.to, p.from} {
			entries := tr.readInbox(t, u.name)
			checkInbox(t, u.name, entries)
			if u == p.to {
				count := map[string][]string{}
				seen := map[uint64]bool{}
				for _, e := range entries {
					if e.typ == "msg" && e.from != u.name && !seen[e.seq] {
						seen[e.seq] = true
						count[e.body] = append(count[e.body], e.msgID)
					}
				}
				for body, id := range want {
					if ids := count[body]; len(ids) != 1 || ids[0] != id {
						t.Errorf("%s's inbox holds %q as %v, want exactly once as %s (the acked id)", u.name, body, ids, id)
					}
				}
			}
		}
	}
	t.Logf("checker: %d acked messages, each stored once and delivered; every inbox gap-free", total)
}

// entry is one inbox entry as a sync returns it.
type entry struct {
	seq             uint64
	typ, from, body string
	msgID           string
}

// readInbox reads name's whole inbox with a sync from seq 0 on a raw
// connection of a new device, and returns its entries in order.
func (tr *traffic) readInbox(t *testing.T, name string) []entry {
	t.Helper()
	for _, g := range tr.c.Gateways {
		select {
		case <-g.Done():
			continue
		default:
		}
		raw := dialRaw(t, g.Addr(), tr.c.Token(t, name, "verify"))
		defer raw.c.Close()
		var out []entry
		raw.write(t, map[string]any{"type": "sync", "after": 0, "id": "verify"})
		for {
			f := raw.next(t)
			if f["type"] == "synced" && f["id"] == "verify" {
				return out
			}
			seq, ok := f["seq"].(float64)
			if !ok || f["type"] == "synced" {
				continue
			}
			e := entry{seq: uint64(seq)}
			e.typ, _ = f["type"].(string)
			e.from, _ = f["from"].(string)
			e.body, _ = f["body"].(string)
			e.msgID, _ = f["msg_id"].(string)
			out = append(out, e)
		}
	}
	t.Fatal("no gateway alive")
	return nil
}

// checkInbox fails unless entries (one whole inbox, from a sync) have the
// seqs 1…N in order, without a gap or a repeat. Live frames may arrive
// during the sync too; a repeat of the same seq with the same content is
// the live copy, not a second entry.
func checkInbox(t *testing.T, name string, entries []entry) {
	t.Helper()
	byseq := map[uint64]entry{}
	var maxSeq uint64
	for _, e := range entries {
		if prev, ok := byseq[e.seq]; ok && prev != e {
			t.Errorf("%s's inbox: seq %d holds two entries: %+v and %+v", name, e.seq, prev, e)
		}
		byseq[e.seq] = e
		maxSeq = max(maxSeq, e.seq)
	}
	for s := uint64(1); s <= maxSeq; s++ {
		if _, ok := byseq[s]; !ok {
			t.Errorf("%s's inbox: seq %d missing (a gap below %d)", name, s, maxSeq)
		}
	}
}
