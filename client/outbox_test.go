package client

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openTestLog(t *testing.T, dir string) (*outbox, []*entry) {
	t.Helper()
	l, entries, err := openOutboxLog(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ob := newOutbox(l, entries)
	t.Cleanup(func() { ob.close() })
	return ob, entries
}

func testEntry(i int) *entry {
	return &entry{id: fmt.Sprint("id", i), frame: []byte(fmt.Sprintf(`{"type":"send","id":"id%d","to":"b","body":"%d"}`, i, i)), send: true}
}

func ids(entries []*entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.id)
	}
	return out
}

func TestOutboxLogRecovery(t *testing.T) {
	dir := t.TempDir()
	ob, _ := openTestLog(t, dir)
	for i := range 4 {
		if err := ob.add(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.remove("id1"); err != nil {
		t.Fatal(err)
	}
	ob.close()

	path := filepath.Join(dir, outboxName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	// Damage the record of id2 (a flipped byte) and tear a record at the end.
	lines[2] = bytes.Replace(lines[2], []byte(`"body":"2"`), []byte(`"body":"X"`), 1)
	torn := addRecord(testEntry(9))
	data = append(bytes.Join(lines, nil), torn[:len(torn)/2]...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	ob2, entries := openTestLog(t, dir)
	if got := fmt.Sprint(ids(entries)); got != "[id0 id3]" {
		t.Fatalf("recovered %s, want [id0 id3] (id1 removed, id2 damaged, id9 torn)", got)
	}
	// The file was rewritten clean: appends after recovery are readable.
	if err := ob2.add(testEntry(5)); err != nil {
		t.Fatal(err)
	}
	ob2.close()
	_, entries = openTestLog(t, dir)
	if got := fmt.Sprint(ids(entries)); got != "[id0 id3 id5]" {
		t.Fatalf("after append: %s", got)
	}
}

func TestOutboxCompacts(t *testing.T) {
	dir := t.TempDir()
	ob, _ := openTestLog(t, dir)
	const n = 600
	for i := range n {
		if err := ob.add(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n - 1 {
		if _, err := ob.remove(fmt.Sprint("id", i)); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, outboxName))
	if err != nil {
		t.Fatal(err)
	}
	if one := int64(len(addRecord(testEntry(n - 1)))); fi.Size() > one*(compactMin+2)*2 {
		t.Fatalf("outbox is %d bytes after removing %d of %d entries; compaction did not run", fi.Size(), n-1, n)
	}
	if len(ob.entries) > 64 {
		t.Fatalf("%d entries in memory for 1 live", len(ob.entries))
	}
	ob.close()
	_, entries := openTestLog(t, dir)
	if got := fmt.Sprint(ids(entries)); got != fmt.Sprintf("[id%d]", n-1) {
		t.Fatalf("after reopen: %s", got)
	}
}

func TestOutboxTakeOrderWindowRetry(t *testing.T) {
	ob := newOutbox(nil, nil)
	for i := range 5 {
		if err := ob.add(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	has := func(got [][]byte, ids ...string) bool {
		if len(got) != len(ids) {
			return false
		}
		for i, id := range ids {
			if !bytes.Contains(got[i], []byte(`"`+id+`"`)) {
				return false
			}
		}
		return true
	}
	now := time.Now()
	got, _ := ob.take(now, 3, nil)
	if !has(got, "id0", "id1", "id2") || ob.inflight != 3 {
		t.Fatalf("took %q (in flight %d), want the window of 3 in order", got, ob.inflight)
	}
	if got, _ := ob.take(now, 3, nil); len(got) != 0 {
		t.Fatalf("took %q with a full window", got)
	}
	ob.remove("id0")
	// id1 and id2 are refused "retry later": nothing goes out until then,
	// and then in the original order.
	ob.retry(ob.byID["id1"], now.Add(time.Second))
	ob.retry(ob.byID["id2"], now.Add(time.Second/2))
	got, next := ob.take(now, 3, nil)
	if len(got) != 0 || !next.Equal(now.Add(time.Second)) {
		t.Fatalf("took %q next %v while paused; want nothing until %v", got, next, now.Add(time.Second))
	}
	got, _ = ob.take(now.Add(time.Second), 3, nil)
	if !has(got, "id1") {
		t.Fatalf("after the pause took %q, want id1 alone (window 1)", got)
	}
	ob.remove("id1") // window 2
	got, _ = ob.take(now.Add(time.Second), 3, nil)
	if !has(got, "id2", "id3") {
		t.Fatalf("after an ack took %q, want id2 id3 (window 2)", got)
	}
	ob.resetInflight()
	got, _ = ob.take(now, 10, nil)
	if !has(got, "id2", "id3", "id4") {
		t.Fatalf("after reconnect took %q, want id2..id4 in order, window reset", got)
	}
}

func TestCursorFile(t *testing.T) {
	dir := t.TempDir()
	if seq, err := loadCursor(dir); seq != 0 || err != nil {
		t.Fatalf("missing cursor = %d, %v", seq, err)
	}
	if err := saveCursor(dir, 42); err != nil {
		t.Fatal(err)
	}
	if seq, err := loadCursor(dir); seq != 42 || err != nil {
		t.Fatalf("cursor = %d, %v; want 42", seq, err)
	}
	os.WriteFile(filepath.Join(dir, cursorName), []byte("garbage"), 0o600)
	c, err := New(Config{Token: "t", StateDir: dir})
	if err != nil {
		t.Fatalf("New with a damaged cursor: %v", err)
	}
	defer c.Close()
	if c.Cursor() != 0 {
		t.Fatalf("damaged cursor loaded as %d, want 0 (lag, never lead)", c.Cursor())
	}
}

func TestBackoff(t *testing.T) {
	base, top := 100*time.Millisecond, 2*time.Second
	for attempt, cap := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		cap *= time.Millisecond
		if got := backoffCap(base, top, attempt); got != cap {
			t.Fatalf("cap(%d) = %v, want %v", attempt, got, cap)
		}
		var hi time.Duration
		lo := cap
		for range 200 {
			d := backoff(base, top, attempt)
			if d < 0 || d > cap {
				t.Fatalf("backoff(%d) = %v, outside [0, %v]", attempt, d, cap)
			}
			lo, hi = min(lo, d), max(hi, d)
			if r := retryDelay(base, top, attempt); r < cap/2 || r > cap {
				t.Fatalf("retryDelay(%d) = %v, outside [%v, %v]", attempt, r, cap/2, cap)
			}
		}
		if lo > cap/4 || hi < cap*3/4 {
			t.Fatalf("backoff(%d) spans [%v, %v] over 200 draws: not full jitter over [0, %v]", attempt, lo, hi, cap)
		}
	}
	if got := backoffCap(base, top, 1000); got != top {
		t.Fatalf("cap(1000) = %v, want %v", got, top)
	}
}

// FuzzHandle feeds arbitrary server frames to a session: no panic, and the
// cursor never moves back.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"type":"msg","seq":1,"msg_id":"m1","from":"a","to":"b","body":"hi","ts":1}`,
		`{"type":"msg","seq":3,"msg_id":"m3"}`,
		`{"type":"receipt","seq":2,"status":"read","msg_ids":["m1"],"by":"b","ts":2}`,
		`{"type":"synced","seq":7}`,
		`{"type":"ack","id":"x","msg_id":"m","ts":1}`,
		`{"type":"error","id":"x","code":"rate_limited","message":"slow"}`,
		`{"type":"future","seq":1}`,
		`[1,2]`, `{"seq":-1}`, `{"type":"msg","seq":18446744073709551615}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := New(Config{Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Send(context.Background(), "b", "x"); err != nil {
			t.Fatal(err)
		}
		s := &session{c: c, syncWanted: make(chan struct{}, 1), syncing: true}
		for _, frame := range bytes.Split(p, []byte("\n")) {
			before := c.Cursor()
			_ = s.handle(frame)
			if c.Cursor() < before {
				t.Fatalf("cursor moved back from %d to %d on %q", before, c.Cursor(), frame)
			}
		}
	})
}
