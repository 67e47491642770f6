package kafka

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/internal/testengines"
)

// smallDelivery is a one-to-one message: one item, a 100-byte body.
func smallDelivery() *chat.Delivery {
	return &chat.Delivery{
		Shared: []byte(`,"from":"bob","body":"` + string(slices.Repeat([]byte("x"), 100)) + `"}`),
		Items:  []chat.Item{{User: "alice", Seq: 42, Head: []byte(`{"type":"msg","seq":42`)}},
	}
}

// BenchmarkPublishRoundTrip: one Publish at a time, from the call to the
// subscribed handler's receipt; reports p50 and p99 of that latency.
func BenchmarkPublishRoundTrip(b *testing.B) {
	for _, comp := range []string{"none", "snappy"} {
		b.Run(comp, func(b *testing.B) {
			bus := newBus(b, testengines.Kafka(b).Bootstrap, func(c *Config) { c.Compression = comp })
			got := make(chan struct{}, 1)
			cancel, err := bus.Subscribe("bench", func(*chat.Delivery) { got <- struct{}{} })
			if err != nil {
				b.Fatal(err)
			}
			defer cancel()
			d := smallDelivery()
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := bus.Publish(ctx, "bench", d); err != nil {
					b.Fatal(err)
				}
				<-got
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkPublishParallel: 64 goroutines publish at once (each waiting
// for its acknowledgement, as the Service's publishers do); the timer
// stops once the handler received every delivery.
func BenchmarkPublishParallel(b *testing.B) {
	for _, comp := range []string{"none", "snappy"} {
		b.Run(comp, func(b *testing.B) {
			bus := newBus(b, testengines.Kafka(b).Bootstrap, func(c *Config) { c.Compression = comp })
			var received atomic.Int64
			all := make(chan struct{})
			var want atomic.Int64
			cancel, err := bus.Subscribe("bench", func(*chat.Delivery) {
				if received.Add(1) == want.Load() {
					close(all)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer cancel()
			want.Store(int64(b.N))
			const inFlight = 64
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range inFlight {
				wg.Go(func() {
					d := smallDelivery()
					for next.Add(1) <= int64(b.N) {
						if err := bus.Publish(context.Background(), "bench", d); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if b.Failed() {
				return
			}
			<-all
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkEmit: Emit throughput, the timer running until Kafka
// acknowledged every value.
func BenchmarkEmit(b *testing.B) {
	bus := newBus(b, testengines.Kafka(b).Bootstrap)
	if err := bus.EnsureStreams(context.Background(), "events"); err != nil {
		b.Fatal(err)
	}
	value := []byte(`{"type":"msg.sent","user":"alice","to":"bob","bytes":120}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	for range b.N {
		if err := bus.Emit("events", "alice", value); err != nil {
			b.Fatal(err)
		}
	}
	if err := bus.cl.Flush(context.Background()); err != nil { // every value acknowledged
		b.Fatal(err)
	}
}

// BenchmarkDecodeDelivery: decoding a 1,024-member group delivery into a
// reused Delivery.
func BenchmarkDecodeDelivery(b *testing.B) {
	d := smallDelivery()
	for range 1023 {
		d.Items = append(d.Items, d.Items[0])
	}
	buf := appendDelivery(nil, d)
	var got chat.Delivery
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for range b.N {
		if err := decodeDelivery(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}
