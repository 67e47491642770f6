package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
)

func TestSendAckDeliverReceipt(t *testing.T) {
	s := startServer(t, Config{}, nil)
	alice := s.dial(t, "ok:alice")
	bob := s.dial(t, "ok:bob")
	bob.send(map[string]any{"type": "sync", "after": 0})
	if f := bob.read(); f.Type != "synced" || f.Seq != 0 {
		t.Fatalf("bob sync: %+v", f)
	}
	alice.send(map[string]any{"type": "send", "id": "c1", "to": "bob", "body": "hello"})
	ack := alice.read()
	if ack.Type != "ack" || ack.ID != "c1" || len(ack.MsgID) != 26 || ack.TS == 0 {
		t.Fatalf("ack: %+v", ack)
	}
	m := bob.read()
	if m.Type != "msg" || m.Seq != 1 || m.MsgID != ack.MsgID || m.From != "alice" || m.To != "bob" || m.Body != "hello" {
		t.Fatalf("msg: %+v", m)
	}
	bob.send(map[string]any{"type": "receipt", "status": "delivered", "msg_ids": []string{m.MsgID}})
	r := alice.read()
	// Alice's inbox holds her own message at seq 1 (for her other devices).
	if r.Type != "receipt" || r.Status != "delivered" || r.By != "bob" || r.Seq != 2 || len(r.MsgIDs) != 1 || r.MsgIDs[0] != ack.MsgID {
		t.Fatalf("receipt: %+v", r)
	}
	bob.send(map[string]any{"type": "receipt", "id": "r2", "status": "read", "msg_ids": []string{m.MsgID}})
	if f := bob.read(); f.Type != "ack" || f.ID != "r2" {
		t.Fatalf("receipt ack: %+v", f)
	}
	if r := alice.read(); r.Status != "read" || r.Seq != 3 {
		t.Fatalf("read receipt: %+v", r)
	}
	// Idempotent resend: same id, same msg_id, not delivered again.
	alice.send(map[string]any{"type": "send", "id": "c1", "to": "bob", "body": "hello"})
	if f := alice.read(); f.Type != "ack" || f.MsgID != ack.MsgID {
		t.Fatalf("resend ack: %+v", f)
	}
	alice.send(map[string]any{"type": "send", "id": "c2", "to": "bob", "body": "second"})
	alice.readType("ack")
	if m := bob.read(); m.Seq != 2 || m.Body != "second" {
		t.Fatalf("after resend, bob got %+v; want seq 2 'second'", m)
	}
}

func TestOfflineSync(t *testing.T) {
	s := startServer(t, Config{MessageRate: 1e6, MessageBurst: 1e6}, nil)
	alice := s.dial(t, "ok:alice")
	for i := range 600 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "carol", "body": fmt.Sprint("m", i)})
		if f := alice.read(); f.Type != "ack" {
			t.Fatalf("send %d: %+v", i, f)
		}
	}
	carol := s.dial(t, "ok:carol")
	carol.send(map[string]any{"type": "sync", "after": 100, "id": "s1"})
	for i := 101; i <= 600; i++ {
		f := carol.read()
		if f.Type != "msg" || f.Seq != uint64(i) || f.Body != fmt.Sprint("m", i-1) {
			t.Fatalf("entry %d: %+v", i, f)
		}
	}
	if f := carol.read(); f.Type != "synced" || f.Seq != 600 || f.ID != "s1" {
		t.Fatalf("synced: %+v", f)
	}
}

// After retention deleted the oldest entries, a sync from 0 starts at the
// first entry that still exists and goes on in order; live frames then
// continue from there.
func TestSyncAcrossExpiredEntries(t *testing.T) {
	store := memory.NewStore()
	s := startServer(t, Config{}, store)
	alice := s.dial(t, "ok:alice")
	for i := range 5 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint("old", i), "to": "dora", "body": "old"})
		alice.readType("ack")
	}
	if n, err := store.Expire(context.Background(), time.Now().Add(time.Second)); err != nil || n == 0 {
		t.Fatalf("Expire: %d batches, %v", n, err)
	}
	for i := range 2 {
		alice.send(map[string]any{"type": "send", "id": fmt.Sprint("new", i), "to": "dora", "body": fmt.Sprint("new", i)})
		alice.readType("ack")
	}
	dora := s.dial(t, "ok:dora")
	dora.send(map[string]any{"type": "sync", "after": 0})
	for _, want := range []uint64{6, 7} {
		if f := dora.read(); f.Type != "msg" || f.Seq != want {
			t.Fatalf("want msg seq %d, got %+v", want, f)
		}
	}
	if f := dora.read(); f.Type != "synced" || f.Seq != 7 {
		t.Fatalf("synced: %+v", f)
	}
	alice.send(map[string]any{"type": "send", "id": "live", "to": "dora", "body": "live"})
	if f := dora.read(); f.Type != "msg" || f.Seq != 8 || f.Body != "live" {
		t.Fatalf("live after the jump: %+v", f)
	}
}
