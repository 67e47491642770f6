package gateway

import (
	"bytes"
	"context"
	"fmt"
	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/presence"
	"testing"

	"github.com/gobwas/ws"

	"github.com/switchboard/switchboard/chat"
)

// openedFake returns a fake connection for user, upgraded and registered.
func openedFake(b *testing.B, g *Gateway, user string) *fakeConn {
	fc := g.openFake(fakeLoop{}, false)
	fc.in = []byte(fmt.Sprintf("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ok:%s\r\n\r\n", user))
	g.OnTraffic(fc)
	c := fc.ctx.(*wsConn)
	if c.state != stateOpen {
		b.Fatal("upgrade failed")
	}
	// A hub worker registers the connection and runs the fake loop's
	// drain; wait for it, so that the benchmark owns the loop alone.
	for !registeredNow(g, c) {
	}
	return fc
}

// BenchmarkSendFramePath is the per-frame path of a client's send on the
// event loop: parse and unmask the frame, validate UTF-8, decode the JSON,
// dispatch a request, and (the Service stubbed to complete at once) encode
// the ack and write it through the loop's mailbox. The store is not
// included: see chat and backends/disk benchmarks.
func BenchmarkSendFramePath(b *testing.B) {
	g, _ := newFakeGateway(b, Config{MessageRate: 1e12, MessageBurst: 1 << 30}, stubService{})
	fc := openedFake(b, g, "alice")
	frame := rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"send","id":"0f8c2a1e-5b8e","to":"user-12345","body":"Hey, are we still on for lunch tomorrow at noon?"}`))
	buf := make([]byte, len(frame)) // the frame is unmasked in place: copy it each time
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, frame)
		fc.in = buf
		g.OnTraffic(fc)
	}
	if got := fc.writes.Load(); got < int64(b.N) {
		b.Fatalf("%d acks written for %d sends", got, b.N)
	}
}

// BenchmarkDeliveryPath is the per-message path of a live delivery: the
// bus handler frames the entry once, finds the user's connections in the
// registry and pushes the frame into each one's loop mailbox; the loop
// checks the cursor and writes it (the fake loop runs the drain at once).
func BenchmarkDeliveryPath(b *testing.B) {
	g, _ := newFakeGateway(b, Config{}, stubService{})
	fc := openedFake(b, g, "bob")
	payload := []byte(`{"type":"msg","seq":1,"msg_id":"01JDQ4ZJ0Y8H2N3K5M6P7Q8R9S","from":"alice","to":"bob","body":"Hey, are we still on for lunch tomorrow at noon?","ts":1732650000000}`)
	head := bytes.IndexByte(payload, ',') + 9 // {"type":"msg","seq":1
	d := chat.Delivery{Shared: payload[head:], Items: []chat.Item{{User: "bob", Head: payload[:head]}}}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		d.Items[0].Seq = seq
		g.hub.deliver(&d)
	}
	if got := fc.writes.Load(); got < int64(b.N) {
		b.Fatalf("%d frames written for %d deliveries", got, b.N)
	}
}

// registeredNow reports whether c's registration has reached its loop.
func registeredNow(g *Gateway, c *wsConn) bool {
	s := g.hub.shard(c.user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users[c.user]) > 0 && len(g.hub.jobs) == 0 && c.registered
}

// BenchmarkFanOutFrame: encoding one frame and sharing it across 1,000
// connections costs one encode and 1,000 reference counts.
func BenchmarkFanOutFrame(b *testing.B) {
	payload := []byte(`{"type":"msg","seq":1,"msg_id":"01JDQ4ZJ0Y8H2N3K5M6P7Q8R9S","from":"alice","to":"g","body":"hello group","ts":1}`)
	b.ReportAllocs()
	for b.Loop() {
		f := textFrame(payload)
		for range 1000 {
			f.retain()
		}
		for range 1000 {
			f.release()
		}
		f.release()
	}
}

// BenchmarkPresenceChange10k is the whole server-side cost of one
// presence change watched by 10,000 connections: the presence service
// finds the subscribers and encodes the frame, and the gateway pushes it
// into each connection's loop mailbox and writes it (the fake loop runs
// each drain at once). One op is one change (bob active, then inactive).
func BenchmarkPresenceChange10k(b *testing.B) {
	g, _ := newFakeGateway(b, Config{}, stubService{})
	pres, err := presence.New(presence.Config{MaxSubscriptions: 4}, memory.NewPresenceStore(), g, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pres.Close()
	const subscribers = 10_000
	fcs := make([]*fakeConn, subscribers)
	for i := range fcs {
		fcs[i] = openedFake(b, g, fmt.Sprintf("s%05d", i))
		c := fcs[i].ctx.(*wsConn)
		if err := pres.Subscribe(context.Background(), c.presenceConn(g), []string{"bob"}); err != nil {
			b.Fatal(err)
		}
	}
	var before int64
	for _, fc := range fcs {
		before += fc.writes.Load()
	}
	ev := presence.Event{User: "bob", Node: g.cfg.Node, Conn: 1}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		ev.Kind, ev.TS = presence.Active, int64(n)
		if n%2 == 0 {
			ev.Kind = presence.Inactive
		}
		pres.Handle(ev)
	}
	var after int64
	for _, fc := range fcs {
		after += fc.writes.Load()
	}
	if got := after - before; got < int64(n)*subscribers {
		b.Fatalf("%d frames written for %d changes × %d subscribers", got, n, subscribers)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/subscribers, "ns/subscriber")
}
