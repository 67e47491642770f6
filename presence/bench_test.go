package presence_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/presence"
)

// countPusher counts pushes and their bytes. The benchmarks handle events
// from one goroutine, and pushes are made by Handle, so it needs no lock.
type countPusher struct {
	pushes, bytes int
}

func (p *countPusher) Push(_ presence.Conn, frame []byte) {
	p.pushes++
	p.bytes += len(frame)
}

// BenchmarkPresenceChange10k measures one change of a user (online and
// last seen both move) watched by 10,000 connections: the pass over the
// reverse index, the frame encodings and the 10,000 Push calls. In
// "mixed", half the subscribers may see the last seen and half not, so two
// distinct frames are encoded per change.
func BenchmarkPresenceChange10k(b *testing.B) {
	for _, mixed := range []bool{false, true} {
		name := "everyone"
		if mixed {
			name = "mixed"
		}
		b.Run(name, func(b *testing.B) {
			push := &countPusher{}
			s := newService(b, presence.Config{FlushInterval: time.Hour}, memory.NewPresenceStore(), push)
			const subscribers = 10_000
			if mixed {
				if _, err := s.SetPrivacy(ctx, "bob", vis(presence.Contacts), nil); err != nil {
					b.Fatal(err)
				}
			}
			var contacts []string
			for i := range subscribers {
				c := presence.Conn{User: fmt.Sprintf("user-%d", i), Node: "gw-1", ID: uint64(i)}
				must(b, s.Subscribe(ctx, c, []string{"bob"}))
				if i%2 == 0 {
					contacts = append(contacts, c.User)
				}
			}
			if mixed {
				must(b, s.AddContacts(ctx, "bob", contacts))
			}
			*push = countPusher{}
			ts := int64(1_764_170_000_000)
			b.ReportAllocs()
			for b.Loop() {
				ts++
				kind := presence.Active
				if ts%2 == 0 {
					kind = presence.Inactive
				}
				s.Handle(presence.Event{Kind: kind, User: "bob", Node: "gw-2", Conn: 1, TS: ts})
			}
			if push.pushes != b.N*subscribers {
				b.Fatalf("%d pushes for %d changes", push.pushes, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(push.pushes), "ns/push")
			b.SetBytes(int64(push.bytes / b.N))
		})
	}
}

// BenchmarkHandle measures the common event: a user nobody watches.
func BenchmarkHandle(b *testing.B) {
	s := newService(b, presence.Config{FlushInterval: time.Hour}, memory.NewPresenceStore(), &countPusher{})
	users := make([]string, 1024)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	ts := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		ts++
		kind := presence.Active
		if ts%2 == 0 {
			kind = presence.Inactive
		}
		s.Handle(presence.Event{Kind: kind, User: users[ts%1024], Node: "gw-1", Conn: 1, TS: ts})
	}
}

// BenchmarkSubscriptionMemory measures the heap held per subscription:
// 1,000 connections each watching 100 of 1,000 users (100,000
// subscriptions), the users already in memory, so that the figure is the
// reverse index entry, the connection's watch-set entry and a share of
// the per-connection state.
func BenchmarkSubscriptionMemory(b *testing.B) {
	const conns, targets, per = 1000, 1000, 100
	for b.Loop() {
		push := &countPusher{}
		s, err := presence.New(presence.Config{FlushInterval: time.Hour}, memory.NewPresenceStore(), push, nil)
		if err != nil {
			b.Fatal(err)
		}
		users := make([]string, targets)
		for i := range users {
			users[i] = fmt.Sprintf("user-%d", i)
			if _, _, err := s.LastSeen(ctx, users[i]); err != nil { // load into memory
				b.Fatal(err)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for c := range conns {
			conn := presence.Conn{User: users[c%targets], Node: "gw-1", ID: uint64(c)}
			start := (c * 7) % targets
			watch := make([]string, 0, per)
			for j := range per {
				watch = append(watch, users[(start+j)%targets])
			}
			must(b, s.Subscribe(ctx, conn, watch))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(conns*per), "B/sub")
		runtime.KeepAlive(s)
		s.Close()
	}
}

// BenchmarkOnlineUserMemory measures the heap held per online user that
// nobody on this node watches: a gateway of a distributed deployment
// reads every node's presence events, so it holds one entry per online
// user of the deployment, not only of its own connections (100,000 users
// connected on other nodes; the user ids are counted, as the events'
// decoded strings are what the entries keep).
func BenchmarkOnlineUserMemory(b *testing.B) {
	const users = 100_000
	for b.Loop() {
		s, err := presence.New(presence.Config{FlushInterval: time.Hour}, memory.NewPresenceStore(), &countPusher{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range users {
			s.Handle(presence.Event{Kind: presence.Connected, User: fmt.Sprintf("user-%07d", i), Device: "phone",
				Node: "vm-4162-f25c6bb0", Conn: uint64(i), TS: int64(1_764_170_000_000 + i)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/users, "B/user")
		runtime.KeepAlive(s)
		s.Close()
	}
}
