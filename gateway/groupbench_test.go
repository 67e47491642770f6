package gateway

import (
	"flag"

	"github.com/switchboard/switchboard/backends/disk"
	"github.com/switchboard/switchboard/chat"

	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
)

// BenchmarkGroupFanout1024 measures group fan-out over real WebSockets on
// loopback: one gateway (memory backends, 2 event loops), 1,024 members
// each on its own connection, member 0 sending to the group. Each member
// has a reader goroutine reading raw text frames; the reader that brings a
// message's count to 1,023 (every member but the sender) records the time
// from send to that last member having it.
//
// Setup (dial, sync and group creation) runs once here; the measured work is
// in the sub-benchmarks, each b.N group messages:
//
//   - closed-loop: one message in flight: the next is sent once every
//     member has the previous. Reports last-member-p50/p99/max-ms and
//     deliveries/s (1,023 × messages / elapsed).
//   - pipelined-64: member 0 sends as fast as acks come back, at most 64
//     un-acked; the run ends when every member has every message. Reports
//     deliveries/s and the same latency figures (which here include queueing
//     behind up to 63 earlier messages).
//
// Run: go test -run '^$' -bench BenchmarkGroupFanout -benchtime 1000x -count 1 ./gateway/
// (add -args -fanout.disk to use the durable disk store instead of memory).
var fanoutDisk = flag.Bool("fanout.disk", false, "BenchmarkGroupFanout1024: use the disk store")

func BenchmarkGroupFanout1024(b *testing.B) {
	const members = 1024
	const maxMsgs = 1 << 20 // messages over all sub-benchmark runs
	const wait = 10 * time.Second
	var store chat.Store
	if *fanoutDisk {
		ds, err := disk.Open(b.TempDir(), disk.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ds.Close() })
		store = ds
	}
	s := startServer(b, Config{MessageRate: 1e6, MessageBurst: 1e6}, store)
	conns := make([]*wsClient, members)
	names := make([]string, 0, members-1)
	for i := range conns {
		conns[i] = s.dial(b, fmt.Sprintf("ok:m%04d", i))
		conns[i].synced()
		if i > 0 {
			names = append(names, fmt.Sprintf("m%04d", i))
		}
	}
	ack := conns[0].request(map[string]any{"type": "group.create", "id": "g", "name": "bench", "members": names})
	if ack.Type != "ack" {
		b.Fatalf("group.create: %+v", ack)
	}
	group := ack.GroupID

	base := time.Now() // send and arrival times are monotonic offsets from base
	var (
		sendAt    = make([]atomic.Int64, maxMsgs) // ns after base
		lat       = make([]atomic.Int64, maxMsgs) // ns from send to the last member
		recv      = make([]atomic.Int32, maxMsgs) // members that have message i
		completed atomic.Int64                    // messages every member has
		acked     atomic.Int64                    // acks member 0 received
		stopping  atomic.Bool
		failure   atomic.Pointer[error] // first reader error
		notify    = make(chan struct{}, 1)
		ackNotify = make(chan struct{}, 1)
		readers   sync.WaitGroup
	)
	fail := func(err error) {
		if !stopping.Load() {
			failure.CompareAndSwap(nil, &err)
			gfPoke(notify)
			gfPoke(ackNotify)
		}
	}
	typeMsg, typeAck, typeErr := []byte(`"type":"msg"`), []byte(`"type":"ack"`), []byte(`"type":"error"`)
	bodyKey := []byte(`"body":"`)
	for m, c := range conns {
		conn := c.conn
		readers.Go(func() {
			next := int64(0) // index of the next message this member expects
			for {
				conn.SetReadDeadline(time.Now().Add(wait))
				p, err := wsutil.ReadServerText(conn)
				if err != nil {
					fail(fmt.Errorf("member %d after %d messages: %w", m, next, err))
					return
				}
				if m == 0 {
					// The sender: count acks; its own copies are skipped.
					if bytes.Contains(p, typeAck) {
						acked.Add(1)
						gfPoke(ackNotify)
					} else if bytes.Contains(p, typeErr) {
						fail(fmt.Errorf("member 0: %s", p))
						return
					}
					continue
				}
				if !bytes.Contains(p, typeMsg) {
					continue
				}
				i, ok := gfBodyIndex(p, bodyKey)
				if !ok || i != next || i >= maxMsgs {
					fail(fmt.Errorf("member %d: want message %d, got %s", m, next, p))
					return
				}
				next++
				if recv[i].Add(1) == members-1 {
					lat[i].Store(int64(time.Since(base)) - sendAt[i].Load())
					completed.Add(1)
					gfPoke(notify)
				}
			}
		})
	}
	b.Cleanup(func() {
		stopping.Store(true)
		for _, c := range conns {
			c.conn.Close()
		}
		readers.Wait()
	})

	check := func(b *testing.B) {
		if err := failure.Load(); err != nil {
			b.Fatal(*err)
		}
	}
	// waitFor waits until counter reaches want, at most wait.
	waitFor := func(b *testing.B, counter *atomic.Int64, ch chan struct{}, want int64, what string) {
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		for counter.Load() < want {
			check(b)
			select {
			case <-ch:
			case <-deadline.C:
				b.Fatalf("%s: %d of %d after %v", what, counter.Load(), want, wait)
			}
		}
		check(b)
	}
	var seq int64 // index of the next message, over all runs
	var buf []byte
	send := func(b *testing.B, conn net.Conn) {
		if seq >= maxMsgs {
			b.Fatalf("more than %d messages", maxMsgs)
		}
		now := int64(time.Since(base))
		sendAt[seq].Store(now)
		buf = fmt.Appendf(buf[:0], `{"type":"send","id":"s%d","group":%q,"body":"%d %d"}`, seq, group, seq, now)
		if err := wsutil.WriteClientText(conn, buf); err != nil {
			b.Fatalf("send %d: %v", seq, err)
		}
		seq++
	}
	report := func(b *testing.B, first int64, elapsed time.Duration) {
		n := seq - first
		l := make([]int64, n)
		for i := range l {
			l[i] = lat[first+int64(i)].Load()
		}
		slices.Sort(l)
		ms := func(ns int64) float64 { return float64(ns) / 1e6 }
		b.ReportMetric(ms(l[int(float64(n-1)*0.50)]), "last-member-p50-ms")
		b.ReportMetric(ms(l[int(float64(n-1)*0.99)]), "last-member-p99-ms")
		b.ReportMetric(ms(l[n-1]), "last-member-max-ms")
		b.ReportMetric(float64(members-1)*float64(n)/elapsed.Seconds(), "deliveries/s")
	}
	owner := conns[0].conn

	b.Run("closed-loop", func(b *testing.B) {
		first := seq
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			send(b, owner)
			waitFor(b, &completed, notify, seq, "messages every member has")
		}
		elapsed := time.Since(start)
		b.StopTimer()
		report(b, first, elapsed)
	})

	b.Run("pipelined-64", func(b *testing.B) {
		const window = 64
		first := seq
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			waitFor(b, &acked, ackNotify, seq-window+1, "acks")
			send(b, owner)
		}
		waitFor(b, &completed, notify, seq, "messages every member has")
		elapsed := time.Since(start)
		b.StopTimer()
		report(b, first, elapsed)
	})
}

// gfPoke wakes ch's waiter without blocking.
func gfPoke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// gfBodyIndex returns the message index at the start of the body of frame p.
func gfBodyIndex(p, key []byte) (int64, bool) {
	at := bytes.Index(p, key)
	if at < 0 {
		return 0, false
	}
	var n int64
	digits := 0
	for _, ch := range p[at+len(key):] {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int64(ch-'0')
		digits++
	}
	return n, digits > 0
}
