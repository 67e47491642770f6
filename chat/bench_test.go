package chat_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

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
			body := []byte("Hey, are we still on for lunch tomorrow at noon?")
			reqs := make([]chat.Request, b.N)
			done := &countDone{done: make(chan struct{}), want: int64(b.N), inflight: make(chan struct{}, 16384)}
			for i := range reqs {
				reqs[i] = chat.Request{Kind: chat.KindSend, From: "user-" + strconv.Itoa(i%1000),
					ClientID: []byte(fmt.Sprint("c", i)), To: []byte("user-" + strconv.Itoa((i+1)%1000)), Body: body, Done: done}
			}
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
