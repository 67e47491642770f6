package disk

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/switchboard/switchboard/chat"
)

// benchFrame is the ~200-byte frame of one message entry.
var benchFrame = []byte(`{"type":"msg","id":"01JNB8Z3Q4W5E6R7T8Y9U0I1O2","from":"user-004711","to":"user-000815",` +
	`"seq":123456,"ts":1740830400000,"body":"see you at the station at eight, bring the tickets please!!"}`)

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkApply applies batches of n messages, each one MessageMeta with
// a client id and one inbox entry, to distinct users (Options defaults,
// one fsync per Apply).
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 64, 512} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) { benchApply(b, n) })
	}
}

func benchApply(b *testing.B, n int) {
	const users = 10_000
	s := openBench(b)
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user-%06d", i)
	}
	// Ids are made before the timer starts: they are the Service's cost.
	ids := make([]string, b.N*n)
	cids := make([]string, b.N*n)
	for k := range ids {
		ids[k] = fmt.Sprintf("01JNB8Z%019d", k)
		cids[k] = "c-" + strconv.Itoa(k)
	}
	heads := make([]uint64, users)
	batch := &chat.Batch{Messages: make([]chat.MessageMeta, 0, n), Entries: make([]chat.Entry, 0, n)}
	ctx := context.Background()

	b.ReportAllocs()
	b.SetBytes(int64(n * len(benchFrame)))
	b.ResetTimer()
	for i := range b.N {
		batch.Reset()
		batch.Time = t0
		for j := range n {
			k := i*n + j
			u := k % users
			heads[u]++
			batch.Messages = append(batch.Messages, chat.MessageMeta{
				ID: ids[k], From: names[(u+1)%users], To: names[u], ClientID: cids[k],
				TS: 1_740_830_400_000, Seq: heads[u], Status: chat.StatusSent,
			})
			batch.Entries = append(batch.Entries, chat.Entry{User: names[u], Seq: heads[u], Frame: benchFrame})
		}
		if err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkApplyParallel applies single-message batches from GOMAXPROCS
// goroutines: Pebble merges their fsyncs.
func BenchmarkApplyParallel(b *testing.B) {
	s := openBench(b)
	ids := make([]string, b.N)
	for k := range ids {
		ids[k] = fmt.Sprintf("01JNB8Z%019d", k)
	}
	var next, workers atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchFrame)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := "user-p" + strconv.FormatInt(workers.Add(1), 10)
		var seq uint64
		batch := &chat.Batch{Messages: make([]chat.MessageMeta, 1), Entries: make([]chat.Entry, 1)}
		for pb.Next() {
			seq++
			id := ids[next.Add(1)-1]
			batch.Time = t0
			batch.Messages[0] = chat.MessageMeta{ID: id, From: "sender", To: user, ClientID: id, Seq: seq, Status: chat.StatusSent}
			batch.Entries[0] = chat.Entry{User: user, Seq: seq, Frame: benchFrame}
			if err := s.Apply(ctx, batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReadInbox reads 256 entries from a random point of one user's
// inbox of 64k entries, interleaved on disk with other users' entries and
// flushed to sstables (served from the block cache).
func BenchmarkReadInbox(b *testing.B) {
	const total, page = 64 << 10, 256
	s := openBench(b)
	ctx := context.Background()
	var others uint64
	for first := uint64(1); first <= total; first += page {
		batch := &chat.Batch{Time: t0}
		for seq := first; seq < first+page; seq++ {
			others++
			batch.Entries = append(batch.Entries,
				chat.Entry{User: "reader", Seq: seq, Frame: benchFrame},
				chat.Entry{User: "other-" + strconv.FormatUint(others%512, 10), Seq: others/512 + 1, Frame: benchFrame})
		}
		if err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var read int
	fn := func(seq uint64, frame []byte) error { read += len(frame); return nil }

	b.ReportAllocs()
	b.SetBytes(page * int64(len(benchFrame)))
	b.ResetTimer()
	for range b.N {
		after := rng.Uint64N(total - page)
		if err := s.ReadInbox(ctx, "reader", after, page, fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*page)/b.Elapsed().Seconds(), "entries/s")
	if read != b.N*page*len(benchFrame) {
		b.Fatalf("read %d bytes, want %d", read, b.N*page*len(benchFrame))
	}
}

// BenchmarkMessageByClientIDMiss looks up client ids that were never sent,
// the common case of an idempotency check, among 256k flushed messages.
func BenchmarkMessageByClientIDMiss(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	for i := range 256 {
		batch := &chat.Batch{Time: t0}
		for j := range 1024 {
			k := strconv.Itoa(i*1024 + j)
			batch.Messages = append(batch.Messages, chat.MessageMeta{ID: "m-" + k, From: "sender", To: "bob", ClientID: "c-" + k})
		}
		if err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok, err := s.MessageByClientID(ctx, "sender", "miss-"+strconv.Itoa(i&0xffff)); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
