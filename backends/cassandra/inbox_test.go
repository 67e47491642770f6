package cassandra

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
)

// TestStatePartitions: every prefix the chat Service scans is one
// partition, and a key is found in the partition its prefixes name.
func TestStatePartitions(t *testing.T) {
	for _, tc := range []struct{ key, prefix, part string }{
		{"w/g1\x00alice", "w/g1\x00", "w/g1\x00"},
		{"ag/a1\x00#g7", "ag/a1\x00#", "ag/a1\x00"},
		{"ahx/h\x00a1", "ahx/h\x00", "ahx/h\x00"},
		{"au/0000018f\x00a1", "au/", "au/"},
		{"at/0000018f\x00a1", "at/00", "at/"},
		{"az/h", "az/", "az/"},
	} {
		part, rest := statePart(tc.key)
		if part != tc.part || part+rest != tc.key {
			t.Errorf("statePart(%q) = %q, %q; want partition %q", tc.key, part, rest, tc.part)
		}
		sp, srest, ok := scanPart(tc.prefix)
		if !ok || sp != tc.part || sp+srest != tc.prefix {
			t.Errorf("scanPart(%q) = %q, %q, %v; want partition %q", tc.prefix, sp, srest, ok, tc.part)
		}
	}
	for _, prefix := range []string{"", "g/", "u/", "a"} {
		if _, _, ok := scanPart(prefix); ok {
			t.Errorf("scanPart(%q) is one partition; its keys are in many", prefix)
		}
	}
	if got := prefixEnd("a\xff\xff"); !bytes.Equal(got, []byte("b")) {
		t.Errorf("prefixEnd(a\\xff\\xff) = %q", got)
	}
	if got := prefixEnd("\xff"); got != nil {
		t.Errorf("prefixEnd(\\xff) = %q, want nil", got)
	}
}

// TestInboxPartitions: an inbox of 2,500 entries spans three partitions
// (1,024 seqs each); reads cross them in order, at any window, and Expire
// of batches that straddle a partition boundary deletes exactly their
// entries.
func TestInboxPartitions(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	for i := range 5 {
		b := &chat.Batch{Time: t0.Add(time.Duration(i) * time.Hour)}
		for seq := uint64(i*500 + 1); seq <= uint64(i*500+500); seq++ {
			b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: seq, Frame: []byte(fmt.Sprint(seq))})
		}
		mustApply(t, s, b)
	}
	read := func(after uint64, limit int) []uint64 {
		t.Helper()
		var seqs []uint64
		err := s.ReadInbox(ctx, "bob", after, limit, func(seq uint64, f []byte) error {
			if string(f) != fmt.Sprint(seq) {
				return fmt.Errorf("seq %d holds %q", seq, f)
			}
			seqs = append(seqs, seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	seqRange := func(first, last uint64) []uint64 {
		var r []uint64
		for x := first; x <= last; x++ {
			r = append(r, x)
		}
		return r
	}
	for _, tc := range []struct {
		after       uint64
		limit       int
		first, last uint64
	}{
		{0, 5000, 1, 2500},
		{1000, 100, 1001, 1100}, // crosses seq 1023 | 1024
		{1023, 1, 1024, 1024},
		{2040, 20, 2041, 2060}, // crosses 2047 | 2048
		{2490, 100, 2491, 2500},
	} {
		if got := read(tc.after, tc.limit); !slices.Equal(got, seqRange(tc.first, tc.last)) {
			t.Fatalf("ReadInbox(after %d, limit %d) = %d entries from %v, want %d..%d", tc.after, tc.limit, len(got), got[:min(len(got), 1)], tc.first, tc.last)
		}
	}
	if n, err := s.Expire(ctx, t0.Add(2*time.Hour)); err != nil || n != 2 {
		t.Fatalf("Expire = %d, %v; want the first 2 batches", n, err)
	}
	if got := read(0, 5000); !slices.Equal(got, seqRange(1001, 2500)) {
		t.Fatalf("after Expire, ReadInbox = %d entries from %v, want 1001..2500", len(got), got[:min(len(got), 1)])
	}
	if last, err := s.LastSeq(ctx, "bob"); err != nil || last != 2500 {
		t.Fatalf("LastSeq = %d, %v; want 2500", last, err)
	}
}

// TestSharedInline: a part named by at most InlineShared entries is
// copied into them and not stored; one named by more is stored once; both
// read back exactly and expire with their batch.
func TestSharedInline(t *testing.T) {
	s := openWriter(t, newNamespace())
	ctx := context.Background()
	b := &chat.Batch{Time: t0, Shared: []chat.SharedPart{
		{Key: "one2one", Data: []byte(`,"msg_id":"one2one"}`)},
		{Key: "group", Data: []byte(`,"msg_id":"group"}`)},
	}}
	b.Entries = []chat.Entry{
		{User: "bob", Seq: 1, Frame: []byte(`{"seq":1`), Shared: "one2one"},
		{User: "alice", Seq: 1, Frame: []byte(`{"seq":1`), Shared: "one2one"},
		{User: "bob", Seq: 2, Frame: []byte(`{"g":1`), Shared: "group"},
		{User: "alice", Seq: 2, Frame: []byte(`{"g":1`), Shared: "group"},
		{User: "carol", Seq: 1, Frame: []byte(`{"g":1`), Shared: "group"},
	}
	mustApply(t, s, b)
	for _, e := range b.Entries {
		want := string(e.Frame) + map[string]string{"one2one": `,"msg_id":"one2one"}`, "group": `,"msg_id":"group"}`}[e.Shared]
		if got := frameAt(t, s, e.User, e.Seq); got != want {
			t.Fatalf("(%s, %d) = %q, want %q", e.User, e.Seq, got, want)
		}
	}
	stored := func(key string) bool {
		var n int
		if err := s.query(ctx, `SELECT count(*) FROM shared_parts WHERE ns = ? AND k = ?`, s.ns, []byte(key)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if stored("one2one") || !stored("group") {
		t.Fatalf("stored: one2one %v, group %v; want only the group's part", stored("one2one"), stored("group"))
	}
	if n, err := s.Expire(ctx, t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if stored("group") {
		t.Fatal("the group's part outlived its batch")
	}
	for _, u := range []string{"bob", "alice", "carol"} {
		s.ReadInbox(ctx, u, 0, 10, func(seq uint64, _ []byte) error {
			t.Fatalf("ReadInbox(%s) after Expire: seq %d", u, seq)
			return nil
		})
	}
}

// TestManySharedParts: a read whose entries name more stored parts than
// one request carries (partsPerRequest) gets every one.
func TestManySharedParts(t *testing.T) {
	s := openWriter(t, newNamespace())
	const n = 2*partsPerRequest + 50
	b := &chat.Batch{Time: t0}
	for seq := uint64(1); seq <= n; seq++ {
		id := fmt.Sprint("m", seq)
		b.Shared = append(b.Shared, chat.SharedPart{Key: id, Data: []byte("," + id + "}")})
		for _, u := range []string{"bob", "alice", "carol"} {
			b.Entries = append(b.Entries, chat.Entry{User: u, Seq: seq, Frame: []byte("{" + u), Shared: id})
		}
	}
	mustApply(t, s, b)
	next := uint64(1)
	err := s.ReadInbox(context.Background(), "bob", 0, 1000, func(seq uint64, f []byte) error {
		if want := fmt.Sprintf("{bob,m%d}", seq); seq != next || string(f) != want {
			return fmt.Errorf("seq %d = %q, want seq %d = %q", seq, f, next, want)
		}
		next++
		return nil
	})
	if err != nil || next != n+1 {
		t.Fatalf("ReadInbox: %v after %d entries, want %d", err, next-1, n)
	}
}
