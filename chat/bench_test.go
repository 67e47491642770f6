package chat_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/disk"
	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
)

type countDone struct {
	n        atomic.Int64
	done     chan struct{}
	want     int64
	inflight chan struct{} // a slot per request in flight, as clients would
}

func (c *countDone) Complete(_ *chat.Request, res chat.Result) {
	if res.Err != nil {
		panic(res.Err)
	}
	<-c.inflight
	if c.n.Add(1) == c.want {
		close(c.done)
	}
}

// benchSends returns n sends from 1,000 senders to 1,000 recipients,
// each completing done, which bounds them in flight as clients would.
func benchSends(n int) ([]chat.Request, *countDone) {
	body := []byte("Hey, are we still on for lunch tomorrow at noon?")
	reqs := make([]chat.Request, n)
	done := &countDone{done: make(chan struct{}), want: int64(n), inflight: make(chan struct{}, 16384)}
	for i := range reqs {
		reqs[i] = chat.Request{Kind: chat.KindSend, From: "user-" + strconv.Itoa(i%1000),
			ClientID: []byte(fmt.Sprint("c", i)), To: []byte("user-" + strconv.Itoa((i+1)%1000)), Body: body, Done: done}
	}
	return reqs, done
}

// BenchmarkServiceSend measures the committer end to end: dedupe lookup,
// id and seq assignment, frame encoding, one durable Apply per batch,
// answers and publishing, with 1,000 senders writing to 1,000 recipients.
// It reports durable messages per second.
func BenchmarkServiceSend(b *testing.B) {
	for _, backend := range []string{"memory", "disk"} {
		b.Run(backend, func(b *testing.B) {
			var store chat.Store = memory.NewStore()
			if backend == "disk" {
				s, err := disk.Open(b.TempDir(), disk.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				store = s
			}
			svc, err := chat.New(chat.Config{}, store, memory.NewBus(), memory.NewDirectory(), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			reqs, done := benchSends(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range reqs {
				done.inflight <- struct{}{}
				if err := svc.Submit(&reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			<-done.done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// benchFwdBus is the memory bus with forwards handed straight to their
// target partition's Service, counted.
type benchFwdBus struct {
	*memory.Bus
	svcs                 []*chat.Service
	submitted, completed atomic.Int64
}

func (b *benchFwdBus) Forward(_ context.Context, p int, r *chat.Request) error {
	cp := *r
	cp.Body = append([]byte(nil), r.Body...)
	cp.Done = b
	b.submitted.Add(1)
	for {
		err := b.svcs[p].Submit(&cp)
		if err == nil {
			return nil
		}
		if !errors.Is(err, chat.ErrOverloaded) {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (b *benchFwdBus) Complete(_ *chat.Request, res chat.Result) {
	if res.Err != nil {
		panic(res.Err)
	}
	b.completed.Add(1)
}

// BenchmarkPartitionedSend is BenchmarkServiceSend/memory with the
// inboxes split over partitions, one Service each, over one memory store:
// a send goes to its sender's partition, and its recipient's entry, on
// another partition for all but one in n, is forwarded there. It reports
// messages per second once every send is acked and every forward applied:
// the sequencers' own CPU, with a store that costs nothing.
func BenchmarkPartitionedSend(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprint("partitions=", n), func(b *testing.B) {
			store := memory.NewStore()
			bus := &benchFwdBus{Bus: memory.NewBus(), svcs: make([]*chat.Service, n)}
			for i := range n {
				svc, err := chat.New(chat.Config{Partitions: n, Partition: i}, store, bus, memory.NewDirectory(), nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer svc.Close()
				bus.svcs[i] = svc
			}
			reqs, done := benchSends(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range reqs {
				done.inflight <- struct{}{}
				if err := bus.svcs[chat.Route(&reqs[i], n)].Submit(&reqs[i]); err != nil {
					b.Fatal(err)
				}
			}
			<-done.done
			for n > 1 && (bus.completed.Load() < bus.submitted.Load() || bus.submitted.Load() == 0) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
