package cassandra

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
)

// benchMessages is the size of BenchmarkApply's batches.
const benchMessages = 64

// BenchmarkApply applies batches of 64 one-to-one messages, each as the
// Service writes it: the message's metadata (with a client id), its entry
// in the recipient's inbox and in the sender's (own copy), both heads
// naming one shared part of about 200 bytes.
func BenchmarkApply(b *testing.B) {
	b.Run("PerPartition", func(b *testing.B) { benchApply(b, openWriter(b, newNamespace())) })
	b.Run("BatchEntries", func(b *testing.B) { benchApply(b, openWriter(b, newNamespace(), batchEntries)) })
}

func benchApply(b *testing.B, s *Store) {
	ctx := context.Background()
	heads := map[string]uint64{}
	tail := []byte(`,"msg_id":"01JNB8Z0000000000000000000","from":"sender","body":"` + string(make([]byte, 120)) + `"}`)
	for i := range tail {
		if tail[i] == 0 {
			tail[i] = 'x'
		}
	}
	batch := &chat.Batch{}
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		batch.Reset()
		batch.Time = time.Now()
		for k := range benchMessages {
			from, to := fmt.Sprintf("s%d", k), fmt.Sprintf("r%d", k)
			id := fmt.Sprintf("m%d", n)
			n++
			heads[to]++
			heads[from]++
			batch.Messages = append(batch.Messages, chat.MessageMeta{ID: id, From: from, To: to, ClientID: "c" + id, TS: 1, Seq: heads[to], Status: chat.StatusSent})
			batch.Shared = append(batch.Shared, chat.SharedPart{Key: id, Data: tail})
			batch.Entries = append(batch.Entries,
				chat.Entry{User: to, Seq: heads[to], Frame: fmt.Appendf(nil, `{"type":"msg","seq":%d`, heads[to]), Shared: id},
				chat.Entry{User: from, Seq: heads[from], Frame: fmt.Appendf(nil, `{"type":"msg","seq":%d`, heads[from]), Shared: id})
		}
		if err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchMessages*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// benchInbox returns a store whose user "bob" holds 1,000 entries, each
// with a shared part that sharers entries name (bob's and others'): 2, a
// one-to-one message (the part is copied into the entries), or more, a
// group message (the part is stored once).
func benchInbox(b *testing.B, sharers int) *Store {
	s := openWriter(b, newNamespace())
	for first := uint64(1); first <= 1000; first += 100 {
		batch := &chat.Batch{Time: time.Now()}
		for seq := first; seq < first+100; seq++ {
			id := fmt.Sprintf("m%d", seq)
			batch.Shared = append(batch.Shared, chat.SharedPart{Key: id, Data: fmt.Appendf(nil, `,"msg_id":%q,"body":"hello there"}`, id)})
			for k := range sharers {
				u := "bob"
				if k > 0 {
					u = fmt.Sprintf("other%d", k)
				}
				batch.Entries = append(batch.Entries, chat.Entry{User: u, Seq: seq, Frame: fmt.Appendf(nil, `{"type":"msg","seq":%d`, seq), Shared: id})
			}
		}
		if err := s.Apply(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkReadInbox reads 100 entries (a reconnect's sync) from a
// 1,000-entry inbox: the head and one inbox partition, and for group
// messages their stored parts (one IN request).
func BenchmarkReadInbox(b *testing.B) {
	b.Run("OneToOne", func(b *testing.B) { benchReadInbox(b, benchInbox(b, 2)) })
	b.Run("Group", func(b *testing.B) { benchReadInbox(b, benchInbox(b, 3)) })
}

func benchReadInbox(b *testing.B, s *Store) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		after := uint64(i*100) % 900
		got := 0
		err := s.ReadInbox(ctx, "bob", after, 100, func(uint64, []byte) error { got++; return nil })
		if err != nil || got != 100 {
			b.Fatalf("ReadInbox = %d entries, %v", got, err)
		}
	}
	b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkLastSeq reads one head.
func BenchmarkLastSeq(b *testing.B) {
	s := benchInbox(b, 2)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if seq, err := s.LastSeq(ctx, "bob"); err != nil || seq != 1000 {
			b.Fatalf("LastSeq = %d, %v", seq, err)
		}
	}
}
