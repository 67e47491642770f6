package disk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/chat/storetest"
)

// testOptions keeps test stores small: small memtables flush often, so
// the tests read from sstables as well as memtables.
var testOptions = Options{CacheSize: 8 << 20, MemTableSize: 1 << 20, MaxOpenFiles: 256, Logger: quiet}

var quiet = slog.New(slog.DiscardHandler)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, testOptions)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store { return openTest(t, t.TempDir()) })
}

func TestStoreDurable(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T, dir string) chat.Store { return openTest(t, dir) })
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestApplyRejectsInvalid(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	entry := func(user string, seq uint64) chat.Entry { return chat.Entry{User: user, Seq: seq, Frame: []byte("{}")} }
	for _, tc := range []struct {
		name string
		b    chat.Batch
		want error
	}{
		{"NULInUser", chat.Batch{Time: t0, Entries: []chat.Entry{entry("bob\x00x", 1)}}, ErrInvalidUser},
		{"EmptyUser", chat.Batch{Time: t0, Entries: []chat.Entry{entry("", 1)}}, ErrInvalidUser},
		{"NULInSender", chat.Batch{Time: t0, Messages: []chat.MessageMeta{{ID: "m", From: "a\x00", ClientID: "c"}}}, ErrInvalidUser},
		{"NoID", chat.Batch{Time: t0, Messages: []chat.MessageMeta{{From: "a"}}}, ErrInvalidMessage},
		{"SeqZero", chat.Batch{Time: t0, Entries: []chat.Entry{entry("bob", 0)}}, ErrSeq},
		{"SeqGap", chat.Batch{Time: t0, Entries: []chat.Entry{entry("bob", 1), entry("al", 1), entry("bob", 3)}}, ErrSeq},
		{"SeqBack", chat.Batch{Time: t0, Entries: []chat.Entry{entry("bob", 2), entry("bob", 1)}}, ErrSeq},
		{"NoTime", chat.Batch{Entries: []chat.Entry{entry("bob", 1)}}, ErrNoTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.b.Messages = append(tc.b.Messages, chat.MessageMeta{ID: "witness", From: "a", To: "bob"})
			if err := s.Apply(ctx, &tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want %v", err, tc.want)
			}
			if _, ok, err := s.Message(ctx, "witness"); ok || err != nil {
				t.Fatalf("rejected batch was written in part (Message = %v, %v)", ok, err)
			}
		})
	}
	for name, err := range map[string]error{
		"LastSeq":           second(s.LastSeq(ctx, "a\x00b")),
		"ReadInbox":         s.ReadInbox(ctx, "a\x00b", 0, 1, func(uint64, []byte) error { return nil }),
		"MessageByClientID": third(s.MessageByClientID(ctx, "a\x00b", "c")),
	} {
		if !errors.Is(err, ErrInvalidUser) {
			t.Errorf("%s with a NUL in the user: %v, want ErrInvalidUser", name, err)
		}
	}
}

func second[A any](_ A, err error) error        { return err }
func third[A, B any](_ A, _ B, err error) error { return err }

// TestUserIDBytes checks that ids that extend one another with bytes
// around the separator keep separate inboxes and client-id indexes.
func TestUserIDBytes(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	users := []string{"bob", "bob\x01", "bob\xff", "bo", "\x01", "\xff\xff"}
	b := &chat.Batch{Time: t0}
	for i, u := range users {
		for seq := uint64(1); seq <= uint64(i+1); seq++ {
			b.Entries = append(b.Entries, chat.Entry{User: u, Seq: seq, Frame: storetest.Frame(u, seq)})
		}
		b.Messages = append(b.Messages, chat.MessageMeta{ID: "m" + strconv.Itoa(i), From: u, ClientID: "\x00c", Status: chat.StatusSent})
	}
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		var seqs []uint64
		err := s.ReadInbox(ctx, u, 0, 100, func(seq uint64, frame []byte) error {
			if !bytes.Equal(frame, storetest.Frame(u, seq)) {
				return fmt.Errorf("frame %d of %q = %q", seq, u, frame)
			}
			seqs = append(seqs, seq)
			return nil
		})
		if err != nil || len(seqs) != i+1 {
			t.Errorf("ReadInbox(%q) = %v, %v; want seqs 1..%d", u, seqs, err, i+1)
		}
		if last, err := s.LastSeq(ctx, u); last != uint64(i+1) || err != nil {
			t.Errorf("LastSeq(%q) = %d, %v; want %d", u, last, err, i+1)
		}
		if m, ok, err := s.MessageByClientID(ctx, u, "\x00c"); !ok || err != nil || m.ID != "m"+strconv.Itoa(i) {
			t.Errorf("MessageByClientID(%q) = %+v, %v, %v", u, m, ok, err)
		}
	}
}

// TestExpireLargeBatch expires a batch that lists more keys than one
// Expire commit holds.
func TestExpireLargeBatch(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	const n = expireBatchKeys + expireBatchKeys/2
	b := &chat.Batch{Time: t0}
	for seq := uint64(1); seq <= n; seq++ {
		b.Entries = append(b.Entries, chat.Entry{User: "bob", Seq: seq, Frame: storetest.Frame("bob", seq)})
	}
	small := &chat.Batch{Time: t0.Add(time.Second), Entries: []chat.Entry{{User: "al", Seq: 1, Frame: []byte("{}")}}}
	for _, b := range []*chat.Batch{b, small, {Time: t0.Add(time.Hour), Entries: []chat.Entry{{User: "al", Seq: 2, Frame: []byte("{}")}}}} {
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Expire(ctx, t0.Add(time.Minute)); got != 2 || err != nil {
		t.Fatalf("Expire = %d, %v; want 2", got, err)
	}
	count := 0
	s.ReadInbox(ctx, "bob", 0, 1<<20, func(uint64, []byte) error { count++; return nil })
	if count != 0 {
		t.Fatalf("%d entries left after Expire", count)
	}
	if last, _ := s.LastSeq(ctx, "bob"); last != n {
		t.Fatalf("LastSeq = %d, want %d", last, n)
	}
}

func TestMetaEncoding(t *testing.T) {
	for _, m := range []chat.MessageMeta{
		{},
		{ID: "01JNB8Z", From: "zoë", To: "用户", ClientID: "\x00\xff", TS: -1, Seq: ^uint64(0), Status: chat.StatusRead},
		{ID: strings.Repeat("x", 300), TS: 1 << 62, Seq: 1},
	} {
		enc := appendMeta(nil, &m)
		got, err := decodeMeta(enc)
		if err != nil || got != m {
			t.Fatalf("decodeMeta(appendMeta(%+v)) = %+v, %v", m, got, err)
		}
		for i := range enc {
			if _, err := decodeMeta(enc[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeMeta of %d of %d bytes: %v, want ErrCorrupt", i, len(enc), err)
			}
		}
		if _, err := decodeMeta(append(enc, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeMeta with a trailing byte: %v, want ErrCorrupt", err)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(appendMeta(nil, &chat.MessageMeta{ID: "m", From: "a", To: "b", ClientID: "c", TS: 5, Seq: 7, Status: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if enc := appendMeta(nil, &m); !bytes.Equal(enc, b) {
			// Varints have one canonical encoding as written, but a
			// decoder may accept padded ones; it must still round-trip.
			if m2, err := decodeMeta(enc); err != nil || m2 != m {
				t.Fatalf("re-encoding %+v does not round-trip", m)
			}
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{CacheSize: -1}, {MemTableSize: 4 << 30}, {MemTables: -1}, {BloomBitsPerKey: -1}, {Compactions: -1}, {MaxOpenFiles: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", o)
		}
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
	if err := (&Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
}

// The crash test re-executes the test binary as a child that applies
// batches and prints each one's acknowledgement after Apply returned; the
// parent SIGKILLs it mid-stream and checks every acknowledged write.
const crashEnv = "SWITCHBOARD_DISK_CRASH_DIR"

const (
	crashUsers      = 8
	crashMaxBatches = 400             // the parent kills the child after this many acks,
	crashMaxTime    = 2 * time.Second // or after this long
)

// crashBatch is batch k of the child: entries for two users and one
// message per entry. heads is updated.
func crashBatch(k int, heads []uint64) *chat.Batch {
	b := &chat.Batch{Time: t0.Add(time.Duration(k) * time.Millisecond)}
	for j, u := range []int{k % crashUsers, (k + 3) % crashUsers} {
		user := "u" + strconv.Itoa(u)
		for range 1 + (k+j)%3 {
			heads[u]++
			b.Entries = append(b.Entries, chat.Entry{User: user, Seq: heads[u], Frame: storetest.Frame(user, heads[u])})
		}
		b.Messages = append(b.Messages, chat.MessageMeta{
			ID: fmt.Sprintf("m-%d-%d", k, j), From: "sender", To: user,
			ClientID: fmt.Sprintf("c-%d-%d", k, j), Seq: heads[u], Status: chat.StatusSent,
		})
	}
	return b
}

func crashChild(dir string) {
	s, err := Open(dir, testOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	heads := make([]uint64, crashUsers)
	for k := 0; k < 100*crashMaxBatches; k++ {
		b := crashBatch(k, heads)
		if err := s.Apply(context.Background(), b); err != nil {
			fmt.Fprintln(os.Stderr, "child: apply:", err)
			os.Exit(2)
		}
		line := []byte("ack " + strconv.Itoa(k))
		for _, e := range b.Entries {
			line = fmt.Appendf(line, " %s=%d", e.User, e.Seq)
		}
		// One write per line: a line in the pipe is whole.
		if _, err := os.Stdout.Write(append(line, '\n')); err != nil {
			os.Exit(3) // the parent is gone
		}
	}
	os.Exit(0)
}

func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	acked := make(map[string]uint64) // user → highest acknowledged seq
	var batches []int                // acknowledged batch numbers
	parse := func(line string) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "ack" {
			return // the test framework's own output
		}
		k, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("bad ack line %q", line)
		}
		batches = append(batches, k)
		for _, kv := range f[2:] {
			user, seq, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(seq, 10, 64)
			if err != nil {
				t.Fatalf("bad ack line %q", line)
			}
			acked[user] = max(acked[user], n)
		}
	}

	deadline := time.NewTimer(crashMaxTime)
	defer deadline.Stop()
	exited := false
read:
	for len(batches) < crashMaxBatches {
		select {
		case line, ok := <-lines:
			if !ok {
				exited = true
				break read
			}
			parse(line)
		case <-deadline.C:
			break read
		}
	}
	cmd.Process.Kill() // SIGKILL
	for line := range lines {
		parse(line) // acknowledged before the kill
	}
	err = cmd.Wait()
	if exited || len(batches) == 0 {
		t.Fatalf("child stopped by itself or acknowledged nothing (%d acks, wait: %v)\n%s", len(batches), err, stderr.String())
	}
	t.Logf("child killed after %d acknowledged batches", len(batches))

	s := openTest(t, dir)
	ctx := context.Background()
	for u := range crashUsers {
		user := "u" + strconv.Itoa(u)
		last, err := s.LastSeq(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if last < acked[user] {
			t.Errorf("LastSeq(%s) = %d, below acknowledged %d", user, last, acked[user])
		}
		next := uint64(1)
		err = s.ReadInbox(ctx, user, 0, 1<<20, func(seq uint64, frame []byte) error {
			if seq != next {
				return fmt.Errorf("ReadInbox(%s): seq %d, want %d (a gap)", user, seq, next)
			}
			if !bytes.Equal(frame, storetest.Frame(user, seq)) {
				return fmt.Errorf("ReadInbox(%s): seq %d frame %q", user, seq, frame)
			}
			next++
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		if next-1 != last {
			t.Errorf("inbox of %s ends at %d, LastSeq is %d", user, next-1, last)
		}
	}
	for _, k := range batches {
		for j := range 2 {
			id := fmt.Sprintf("m-%d-%d", k, j)
			if _, ok, err := s.Message(ctx, id); !ok || err != nil {
				t.Fatalf("acknowledged message %s lost (%v, %v)", id, ok, err)
			}
			if m, ok, err := s.MessageByClientID(ctx, "sender", fmt.Sprintf("c-%d-%d", k, j)); !ok || err != nil || m.ID != id {
				t.Fatalf("client id of acknowledged message %s lost (%+v, %v, %v)", id, m, ok, err)
			}
		}
	}
}

// A second Open of a directory that another process holds fails with
// ErrLocked. (Within one process Pebble refuses with an error of its own.)
func TestOpenLocked(t *testing.T) {
	if dir := os.Getenv("DISK_TEST_HOLD"); dir != "" {
		if _, err := Open(dir, testOptions); err != nil {
			fmt.Println("open failed:", err)
			os.Exit(1)
		}
		fmt.Println("holding")
		io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenLocked$")
	cmd.Env = append(os.Environ(), "DISK_TEST_HOLD="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	if _, err := Open(dir, testOptions); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a held store: %v, want ErrLocked", err)
	}
}

// Expire of M/ items: a message written with its inbox entry goes with
// its client-id index entry, and a later status upsert neither brings it
// back nor loses the later batch's own entries.
func TestExpireDerivedKeys(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx := context.Background()
	m := chat.MessageMeta{ID: "01AAAAAAAAAAAAAAAAAAAAAAAA", From: "alice", To: "bob", ClientID: "c1", TS: 1, Seq: 1, Status: chat.StatusSent}
	if err := s.Apply(ctx, &chat.Batch{Time: t0, Messages: []chat.MessageMeta{m},
		Entries: []chat.Entry{{User: "bob", Seq: 1, Frame: []byte(`{"seq":1}`)}}}); err != nil {
		t.Fatal(err)
	}
	read := m
	read.Status = chat.StatusRead
	if err := s.Apply(ctx, &chat.Batch{Time: t0.Add(time.Hour), Messages: []chat.MessageMeta{read},
		Entries: []chat.Entry{{User: "alice", Seq: 1, Frame: []byte(`{"receipt":1}`)}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	if _, ok, _ := s.Message(ctx, m.ID); ok {
		t.Fatal("message still there after its first batch expired")
	}
	if _, ok, _ := s.MessageByClientID(ctx, "alice", "c1"); ok {
		t.Fatal("client-id index entry still there")
	}
	var bob, alice int
	s.ReadInbox(ctx, "bob", 0, 10, func(uint64, []byte) error { bob++; return nil })
	s.ReadInbox(ctx, "alice", 0, 10, func(uint64, []byte) error { alice++; return nil })
	if bob != 0 || alice != 1 {
		t.Fatalf("inboxes after the first expiry: bob %d (want 0), alice %d (want 1)", bob, alice)
	}
	if n, err := s.Expire(ctx, t0.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("second Expire: %d, %v", n, err)
	}
	alice = 0
	s.ReadInbox(ctx, "alice", 0, 10, func(uint64, []byte) error { alice++; return nil })
	if alice != 0 {
		t.Fatal("receipt entry still there after its batch expired")
	}
}

// recordHandler keeps the messages of the records it handles.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// TestFlushesAreLogged: Pebble's flushes show in the log at debug level,
// to be set against slow commits.
func TestFlushesAreLogged(t *testing.T) {
	h := &recordHandler{}
	o := testOptions
	o.Logger = slog.New(h)
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	value := bytes.Repeat([]byte("x"), 64<<10)
	for i := range 64 { // 4 MiB through 1 MiB memtables
		b := &chat.Batch{Time: time.Now(), State: []chat.KV{{Key: fmt.Sprintf("k%d", i), Value: value}}}
		if err := s.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		logged := slices.Contains(h.msgs, "store flush")
		h.mu.Unlock()
		if logged {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flush logged after 4 MiB through 1 MiB memtables: %q", h.msgs)
		}
		time.Sleep(10 * time.Millisecond) // flushes run in the background
	}
}
