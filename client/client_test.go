package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// recorder collects a Client's events.
type recorder struct {
	mu       sync.Mutex
	msgs     []Message
	receipts []Receipt
	acks     []Ack
	errs     []*ServerError
	states   []StateChange
	unknown  []Unknown
	groups   []GroupEvent
	presence []Presence
	typing   []Typing
	onMsg    func(Message)
}

func (r *recorder) handle(ev Event) {
	r.mu.Lock()
	switch e := ev.(type) {
	case Message:
		r.msgs = append(r.msgs, e)
	case Receipt:
		r.receipts = append(r.receipts, e)
	case Ack:
		r.acks = append(r.acks, e)
	case *ServerError:
		r.errs = append(r.errs, e)
	case StateChange:
		r.states = append(r.states, e)
	case Unknown:
		r.unknown = append(r.unknown, e)
	case GroupEvent:
		r.groups = append(r.groups, e)
	case Presence:
		r.presence = append(r.presence, e)
	case Typing:
		r.typing = append(r.typing, e)
	}
	hook := r.onMsg
	r.mu.Unlock()
	if m, ok := ev.(Message); ok && hook != nil {
		hook(m)
	}
}

func (r *recorder) snapshot() (msgs []Message, receipts []Receipt, acks []Ack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs), slices.Clone(r.receipts), slices.Clone(r.acks)
}

func (r *recorder) count(f func(*recorder) int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return f(r)
}

func (r *recorder) nMsgs() int     { return r.count(func(r *recorder) int { return len(r.msgs) }) }
func (r *recorder) nAcks() int     { return r.count(func(r *recorder) int { return len(r.acks) }) }
func (r *recorder) nReceipts() int { return r.count(func(r *recorder) int { return len(r.receipts) }) }

// nState counts StateChange events with state st.
func (r *recorder) nState(st ConnState) int {
	return r.count(func(r *recorder) int {
		n := 0
		for _, s := range r.states {
			if s.State == st {
				n++
			}
		}
		return n
	})
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type testClient struct {
	*Client
	rec  *recorder
	done chan error
}

// newTestClient returns a Client for user against fs, not yet running.
func newTestClient(t testing.TB, fs *fakeServer, user, dir string, mods ...func(*Config)) *testClient {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		URL:        fs.URL,
		Token:      user,
		User:       strings.Split(user, "#")[0], // the fake's tokens are "user" or "user#device"
		StateDir:   dir,
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
		Handler:    rec.handle,
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", user, err)
	}
	tc := &testClient{Client: c, rec: rec}
	t.Cleanup(func() { tc.stop(t) })
	return tc
}

func (tc *testClient) start(t testing.TB) {
	t.Helper()
	tc.done = make(chan error, 1)
	go func() { tc.done <- tc.Run(context.Background()) }()
}

// stop closes the client and checks that Run returned nil.
func (tc *testClient) stop(t testing.TB) {
	t.Helper()
	if err := tc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if tc.done != nil {
		if err := <-tc.done; err != nil {
			t.Errorf("Run after Close: %v", err)
		}
		tc.done = nil
	}
}

func startClient(t testing.TB, fs *fakeServer, user, dir string, mods ...func(*Config)) *testClient {
	t.Helper()
	tc := newTestClient(t, fs, user, dir, mods...)
	tc.start(t)
	return tc
}

func send(t testing.TB, c *testClient, to, body string) string {
	t.Helper()
	id, err := c.Send(context.Background(), to, body)
	if err != nil {
		t.Fatalf("Send(%q, %q): %v", to, body, err)
	}
	return id
}

func bodies(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	return out
}

// checkSeqs fails unless msgs carry seqs first, first+1, … in order.
func checkSeqs(t testing.TB, msgs []Message, first uint64) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != first+uint64(i) {
			t.Fatalf("message %d has seq %d, want %d (seqs must be contiguous, each once)", i, m.Seq, first+uint64(i))
		}
	}
}

func TestSendAckDeliverReceipts(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", "")

	id := send(t, alice, "bob", "hello bob")
	waitFor(t, "alice's ack", func() bool { return alice.rec.nAcks() == 1 })
	waitFor(t, "bob's message", func() bool { return bob.rec.nMsgs() == 1 })
	msgs, _, _ := bob.rec.snapshot()
	_, _, acks := alice.rec.snapshot()
	m, a := msgs[0], acks[0]
	if a.ClientID != id || a.MsgID == "" || a.TS.IsZero() || a.To != "bob" || a.Body != "hello bob" {
		t.Fatalf("ack = %+v, want client id %s with a msg id and ts", a, id)
	}
	if m.From != "alice" || m.To != "bob" || m.Body != "hello bob" || m.MsgID != a.MsgID || m.Seq != 1 {
		t.Fatalf("bob got %+v, want seq 1 msg %s from alice", m, a.MsgID)
	}
	if !strings.Contains(string(m.Raw), "future_field") {
		t.Fatalf("Raw does not keep unknown fields: %s", m.Raw)
	}

	ctx := context.Background()
	if err := bob.MarkDelivered(ctx, m.MsgID); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, m.MsgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's receipts", func() bool { return alice.rec.nReceipts() == 2 })
	waitFor(t, "bob's outbox to drain", func() bool { return bob.Pending() == 0 })
	ownMsgs, receipts, _ := alice.rec.snapshot()
	// Alice's inbox: her own copy (seq 1), then bob's two receipts.
	if len(ownMsgs) != 1 || !ownMsgs[0].Own || ownMsgs[0].ClientID != id || ownMsgs[0].MsgID != a.MsgID || ownMsgs[0].Seq != 1 {
		t.Fatalf("alice's messages = %+v, want her own copy of %s as seq 1, with client id %s", ownMsgs, a.MsgID, id)
	}
	if m.Own || m.ClientID != "" {
		t.Fatalf("bob's copy of alice's message is marked as his own: %+v", m)
	}
	for i, want := range []Status{StatusDelivered, StatusRead} {
		r := receipts[i]
		if r.Status != want || r.By != "bob" || !slices.Equal(r.MsgIDs, []string{m.MsgID}) || r.Seq != uint64(i+2) {
			t.Fatalf("receipt %d = %+v, want %s of %s by bob with seq %d", i, r, want, m.MsgID, i+2)
		}
	}
	if alice.Cursor() != 3 || bob.Cursor() != 1 {
		t.Fatalf("cursors alice=%d bob=%d, want 3 and 1", alice.Cursor(), bob.Cursor())
	}
}

func TestOfflineSendThenReconnectDeliversOnce(t *testing.T) {
	fs := newFakeServer(t)
	fs.SetReject(http.StatusServiceUnavailable)
	bob := startClient(t, fs, "bob", "")
	alice := startClient(t, fs, "alice", t.TempDir())

	waitFor(t, "alice to fail a handshake", func() bool { return alice.rec.nState(StateDisconnected) >= 2 })
	var ids []string
	for i := range 5 {
		ids = append(ids, send(t, alice, "bob", fmt.Sprintf("offline %d", i)))
	}
	if n := alice.Pending(); n != 5 {
		t.Fatalf("Pending = %d, want 5", n)
	}
	alice.rec.mu.Lock()
	var he *HandshakeError
	if !errors.As(alice.rec.states[1].Err, &he) || he.StatusCode != 503 || !IsRetriable(he) {
		t.Errorf("disconnect reason = %v, want a retriable *HandshakeError 503", alice.rec.states[1].Err)
	}
	alice.rec.mu.Unlock()

	fs.SetReject(0)
	waitFor(t, "5 acks", func() bool { return alice.rec.nAcks() == 5 && alice.Pending() == 0 })
	waitFor(t, "5 messages", func() bool { return bob.rec.nMsgs() >= 5 })
	// A resend would arrive right behind: one more round trip rules it out.
	send(t, alice, "bob", "last")
	waitFor(t, "the last message", func() bool { return bob.rec.nMsgs() >= 6 })

	msgs, _, _ := bob.rec.snapshot()
	want := []string{"offline 0", "offline 1", "offline 2", "offline 3", "offline 4", "last"}
	if got := bodies(msgs); !slices.Equal(got, want) {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	checkSeqs(t, msgs, 1)
	_, _, acks := alice.rec.snapshot()
	for i, id := range ids {
		if acks[i].ClientID != id {
			t.Fatalf("ack %d is for %s, want %s (acks in send order)", i, acks[i].ClientID, id)
		}
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	fs := newFakeServer(t)
	dir := t.TempDir()
	bob := startClient(t, fs, "bob", "")

	// Written while the process never connected, then "crash" (Close).
	a1 := newTestClient(t, fs, "alice", dir)
	id1 := send(t, a1, "bob", "one")
	id2 := send(t, a1, "bob", "two")
	a1.stop(t)
	if fs.Connected("alice") != 0 || fs.InboxLen("bob") != 0 {
		t.Fatal("alice connected without Run")
	}

	a2 := newTestClient(t, fs, "alice", dir)
	if n := a2.Pending(); n != 2 {
		t.Fatalf("Pending after restart = %d, want 2", n)
	}
	a2.start(t)
	waitFor(t, "acks", func() bool { return a2.rec.nAcks() == 2 && a2.Pending() == 0 })
	waitFor(t, "bob's messages", func() bool { return bob.rec.nMsgs() == 2 })
	_, _, acks := a2.rec.snapshot()
	if acks[0].ClientID != id1 || acks[1].ClientID != id2 {
		t.Fatalf("acks for %s, %s; want %s, %s", acks[0].ClientID, acks[1].ClientID, id1, id2)
	}
	a2.stop(t)

	// Acked entries are gone for good.
	a3 := newTestClient(t, fs, "alice", dir)
	if n := a3.Pending(); n != 0 {
		t.Fatalf("Pending after ack and restart = %d, want 0", n)
	}
}

func TestFlush(t *testing.T) {
	fs := newFakeServer(t)
	alice := newTestClient(t, fs, "alice", "")
	if err := alice.Flush(context.Background()); err != nil {
		t.Fatalf("Flush of an empty outbox: %v", err)
	}
	for i := range 20 {
		send(t, alice, "bob", fmt.Sprint(i))
	}
	if err := alice.MarkRead(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := alice.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush while not running = %v, want DeadlineExceeded", err)
	}
	alice.start(t)
	if err := alice.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, acks := alice.Pending(), alice.rec.nAcks(); n != 0 || acks != 20 {
		t.Fatalf("after Flush: Pending = %d, acks seen = %d; want 0 and 20", n, acks)
	}
	fs.With(func() {
		if fs.Sends["alice"] != 20 || fs.Received["alice"]["receipt"] != 1 {
			t.Errorf("server saw %d sends and %d receipts, want 20 and 1", fs.Sends["alice"], fs.Received["alice"]["receipt"])
		}
	})
}

func TestStateDirLocked(t *testing.T) {
	fs := newFakeServer(t)
	dir := t.TempDir()
	newTestClient(t, fs, "alice", dir)
	_, err := New(Config{URL: fs.URL, Token: "alice", StateDir: dir})
	if !errors.Is(err, ErrStateLocked) {
		t.Fatalf("second New on one StateDir: %v, want ErrStateLocked", err)
	}
}

// The server drops alice's connection every 37th send, after storing the
// message and before acking it, and bob's connection now and then. Every
// message must be acked once and received once, in order.
func TestKillMidBurst(t *testing.T) {
	fs := newFakeServer(t)
	const n = 300
	fs.With(func() {
		fs.KillAfter = func(user string, sends int) bool { return user == "alice" && sends%37 == 0 }
	})
	bob := newTestClient(t, fs, "bob", t.TempDir())
	bob.rec.onMsg = func(m Message) {
		if m.Seq%50 == 0 {
			fs.KillUser("bob")
		}
	}
	bob.start(t)
	alice := startClient(t, fs, "alice", t.TempDir(), func(c *Config) { c.MaxInFlight = 16 })

	ids := make([]string, n)
	for i := range n {
		ids[i] = send(t, alice, "bob", fmt.Sprintf("m%03d", i))
	}
	waitFor(t, "all acks", func() bool { return alice.Pending() == 0 })
	waitFor(t, "all messages", func() bool { return bob.rec.nMsgs() >= n })
	send(t, alice, "bob", "end")
	waitFor(t, "the end marker", func() bool { return bob.rec.nMsgs() >= n+1 })
	waitFor(t, "its ack", func() bool { return alice.rec.nAcks() >= n+1 })

	msgs, _, _ := bob.rec.snapshot()
	_, _, acks := alice.rec.snapshot()
	if len(msgs) != n+1 || len(acks) != n+1 {
		t.Fatalf("bob got %d messages, alice %d acks; want %d each", len(msgs), len(acks), n+1)
	}
	checkSeqs(t, msgs, 1)
	for i := range n {
		if want := fmt.Sprintf("m%03d", i); msgs[i].Body != want {
			t.Fatalf("message %d is %q, want %q", i, msgs[i].Body, want)
		}
		if acks[i].ClientID != ids[i] || acks[i].MsgID != msgs[i].MsgID {
			t.Fatalf("ack %d = %+v, want client id %s for %s", i, acks[i], ids[i], msgs[i].MsgID)
		}
	}
	if k := alice.rec.nState(StateDisconnected); k < n/37 {
		t.Fatalf("alice disconnected %d times, want at least %d: the test did not kill", k, n/37)
	}
	// A kill can find bob's connection already gone (frames still buffered
	// from the previous one), so only require that some happened.
	if k := bob.rec.nState(StateDisconnected); k < 1 {
		t.Fatalf("bob never disconnected: the test did not kill")
	}
}

func TestCursorPersistsAcrossRestart(t *testing.T) {
	fs := newFakeServer(t)
	dir := t.TempDir()
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", dir)
	for i := range 3 {
		send(t, alice, "bob", fmt.Sprint("before ", i))
	}
	waitFor(t, "3 messages", func() bool { return bob.rec.nMsgs() == 3 })
	bob.stop(t)
	b, err := os.ReadFile(filepath.Join(dir, "cursor"))
	if err != nil || strings.TrimSpace(string(b)) != "3" {
		t.Fatalf("cursor file = %q, %v; want 3", b, err)
	}

	send(t, alice, "bob", "while away")
	waitFor(t, "the message to be stored", func() bool { return fs.InboxLen("bob") == 4 })
	bob2 := startClient(t, fs, "bob", dir)
	waitFor(t, "the new message", func() bool { return bob2.rec.nMsgs() == 1 })
	send(t, alice, "bob", "after")
	waitFor(t, "a live message", func() bool { return bob2.rec.nMsgs() == 2 })
	msgs, _, _ := bob2.rec.snapshot()
	if got := bodies(msgs); !slices.Equal(got, []string{"while away", "after"}) {
		t.Fatalf("after restart bob got %q; want only the two new messages", got)
	}
	checkSeqs(t, msgs, 4)
	if s := fs.SyncsOf("bob"); s[len(s)-1] != 3 {
		t.Fatalf("syncs %v: the restarted client must sync after 3", s)
	}
}

func TestDedupeBySeq(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", "")
	for i := range 3 {
		send(t, alice, "bob", fmt.Sprint(i))
	}
	waitFor(t, "3 messages", func() bool { return bob.rec.nMsgs() == 3 })
	fs.Replay("bob") // seqs 1..3 again
	send(t, alice, "bob", "3")
	waitFor(t, "the 4th message", func() bool { return bob.rec.nMsgs() >= 4 })
	msgs, _, _ := bob.rec.snapshot()
	if got := bodies(msgs); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("bob got %q: replayed seqs must be dropped", got)
	}
	if s := fs.SyncsOf("bob"); len(s) != 1 {
		t.Fatalf("syncs %v: an already-seen seq must not trigger a sync", s)
	}
}

func TestGapTriggersResync(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", "")
	waitFor(t, "bob's first sync", func() bool { return len(fs.SyncsOf("bob")) == 1 })
	fs.With(func() { fs.DropLive["bob"] = 1 })
	for i := range 3 {
		send(t, alice, "bob", fmt.Sprint(i))
	}
	waitFor(t, "3 messages", func() bool { return bob.rec.nMsgs() == 3 })
	msgs, _, _ := bob.rec.snapshot()
	if got := bodies(msgs); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("bob got %q", got)
	}
	checkSeqs(t, msgs, 1)
	if s := fs.SyncsOf("bob"); len(s) < 2 || s[1] != 0 {
		t.Fatalf("syncs %v: want a second sync after 0, triggered by the gap", s)
	}
	if n := bob.rec.nState(StateDisconnected); n != 0 {
		t.Fatalf("bob reconnected %d times; a gap needs a sync, not a reconnect", n)
	}
}

// Entries the server no longer has (retention) are skipped after a sync
// proves them gone, instead of resyncing forever.
func TestSyncSkipsPurgedEntries(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "")
	for i := range 5 {
		send(t, alice, "bob", fmt.Sprint(i))
	}
	waitFor(t, "5 stored", func() bool { return fs.InboxLen("bob") == 5 })
	fs.Purge("bob", 3)
	bob := startClient(t, fs, "bob", "")
	waitFor(t, "2 messages", func() bool { return bob.rec.nMsgs() == 2 })
	send(t, alice, "bob", "5")
	waitFor(t, "a live message", func() bool { return bob.rec.nMsgs() == 3 })
	msgs, _, _ := bob.rec.snapshot()
	if got := bodies(msgs); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Fatalf("bob got %q", got)
	}
	checkSeqs(t, msgs, 4)
}

func TestCloseCodeSurfaced(t *testing.T) {
	for _, code := range []CloseCode{CloseSlowConsumer, CloseServiceRestart, CloseGoingAway} {
		t.Run(code.String(), func(t *testing.T) {
			fs := newFakeServer(t)
			bob := startClient(t, fs, "bob", "")
			waitFor(t, "bob's sync", func() bool { return len(fs.SyncsOf("bob")) == 1 })
			fs.CloseUser("bob", ws.StatusCode(code), "test reason")
			waitFor(t, "a reconnect", func() bool { return len(fs.SyncsOf("bob")) == 2 })
			bob.rec.mu.Lock()
			defer bob.rec.mu.Unlock()
			var ce *CloseError
			for _, s := range bob.rec.states {
				if s.State == StateDisconnected && errors.As(s.Err, &ce) {
					break
				}
			}
			if ce == nil || ce.Code != code || ce.Reason != "test reason" || ce.Local {
				t.Fatalf("disconnect error %#v, want a *CloseError %s from the server", ce, code)
			}
			if !IsRetriable(ce) {
				t.Fatalf("IsRetriable(%v) = false", ce)
			}
		})
	}
}

// A connection replaced by a newer one of the same device (4003) stops
// Run: reconnecting would replace the newer one in turn.
func TestReplacedStopsRun(t *testing.T) {
	fs := newFakeServer(t)
	c, err := New(Config{URL: fs.URL, Token: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	waitFor(t, "bob's sync", func() bool { return len(fs.SyncsOf("bob")) == 1 })
	fs.CloseUser("bob", ws.StatusCode(CloseReplaced), "replaced")
	select {
	case err := <-done:
		if !errors.Is(err, ErrReplaced) || IsRetriable(err) {
			t.Fatalf("Run = %v, want a non-retriable error matching ErrReplaced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after a 4003: it reconnected")
	}
	if n := len(fs.SyncsOf("bob")); n != 1 {
		t.Fatalf("%d syncs: the client reconnected after 4003", n)
	}
}

func TestUnauthorizedStopsRun(t *testing.T) {
	fs := newFakeServer(t)
	c, err := New(Config{URL: fs.URL, Token: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Run(context.Background())
	var he *HandshakeError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &he) || he.StatusCode != 401 || IsRetriable(err) {
		t.Fatalf("Run = %v, want a non-retriable *HandshakeError 401 matching ErrUnauthorized", err)
	}
}

func TestTokenSourceRenews(t *testing.T) {
	fs := newFakeServer(t)
	var mu sync.Mutex
	calls := 0
	c := startClient(t, fs, "", "", func(cfg *Config) {
		cfg.TokenSource = func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls < 3 {
				return "bad", nil // expired: 401, retried because a source can renew
			}
			return "carol", nil
		}
	})
	waitFor(t, "carol to connect", func() bool { return fs.Connected("carol") == 1 })
	if n := c.rec.nState(StateDisconnected); n != 2 {
		t.Fatalf("%d failed attempts, want 2", n)
	}
}

func TestRunStopsOnContext(t *testing.T) {
	fs := newFakeServer(t)
	c := newTestClient(t, fs, "alice", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "connection", func() bool { return fs.Connected("alice") == 1 })
	if err := c.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	waitFor(t, "the server to see the close", func() bool { return fs.Connected("alice") == 0 })
	if n := c.rec.nState(StateStopped); n != 1 {
		t.Fatalf("%d StateStopped events, want 1", n)
	}
	c.Close()
	if _, err := c.Send(context.Background(), "bob", "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}

func TestRetriableErrorResendsSameID(t *testing.T) {
	fs := newFakeServer(t)
	seen := make(map[string]int)
	fs.With(func() {
		fs.RejectSend = func(user string, f *fakeFrame) string {
			seen[f.ID]++
			if seen[f.ID] <= 2 {
				return CodeRateLimited
			}
			return ""
		}
	})
	alice := startClient(t, fs, "alice", "")
	bob := startClient(t, fs, "bob", "")
	id := send(t, alice, "bob", "patience")
	waitFor(t, "the ack", func() bool { return alice.rec.nAcks() == 1 })
	waitFor(t, "the message", func() bool { return bob.rec.nMsgs() == 1 })
	fs.With(func() {
		if seen[id] != 3 || len(seen) != 1 {
			t.Errorf("server saw %v, want id %s three times", seen, id)
		}
	})
	alice.rec.mu.Lock()
	defer alice.rec.mu.Unlock()
	if len(alice.rec.errs) != 2 || alice.rec.errs[0].Code != CodeRateLimited || alice.rec.errs[0].ID != id {
		t.Fatalf("errors %v, want two rate_limited for %s", alice.rec.errs, id)
	}
}

// A rate limit that refuses a run of pipelined sends must not reorder them:
// the refused ones go out again in their original order.
func TestRateLimitKeepsOrder(t *testing.T) {
	fs := newFakeServer(t)
	fs.With(func() {
		fs.RejectSend = func(user string, f *fakeFrame) string {
			if n := fs.Sends[user]; n > 10 && n <= 40 {
				return CodeRateLimited
			}
			return ""
		}
	})
	bob := startClient(t, fs, "bob", "")
	alice := newTestClient(t, fs, "alice", "", func(c *Config) { c.MaxInFlight = 16 })
	const n = 60
	for i := range n {
		send(t, alice, "bob", fmt.Sprintf("m%02d", i))
	}
	alice.start(t)
	waitFor(t, "all messages", func() bool { return bob.rec.nMsgs() == n })
	msgs, _, _ := bob.rec.snapshot()
	for i, m := range msgs {
		if want := fmt.Sprintf("m%02d", i); m.Body != want {
			t.Fatalf("message %d is %q, want %q: order lost on retry", i, m.Body, want)
		}
	}
}

func TestPermanentErrorDropsEntry(t *testing.T) {
	fs := newFakeServer(t)
	fs.With(func() {
		fs.RejectSend = func(user string, f *fakeFrame) string {
			if f.Body == "bad" {
				return CodeBadRequest
			}
			return ""
		}
	})
	alice := startClient(t, fs, "alice", t.TempDir())
	bad := send(t, alice, "bob", "bad")
	send(t, alice, "bob", "good")
	waitFor(t, "the outbox to drain", func() bool { return alice.Pending() == 0 && alice.rec.nAcks() == 1 })
	alice.rec.mu.Lock()
	defer alice.rec.mu.Unlock()
	if len(alice.rec.errs) != 1 || alice.rec.errs[0].ID != bad || IsRetriable(alice.rec.errs[0]) {
		t.Fatalf("errors %v, want one permanent error for %s", alice.rec.errs, bad)
	}
	if len(alice.rec.acks) != 1 {
		t.Fatalf("%d acks, want 1", len(alice.rec.acks))
	}
}

func TestUnknownSequencedFrameMovesCursor(t *testing.T) {
	fs := newFakeServer(t)
	bob := startClient(t, fs, "bob", "")
	alice := startClient(t, fs, "alice", "")
	waitFor(t, "bob's sync", func() bool { return len(fs.SyncsOf("bob")) == 1 })
	fs.With(func() {
		fs.Store("bob", map[string]any{"type": "group_invite", "seq": 1, "group": "g1"})
	})
	send(t, alice, "bob", "after the invite")
	waitFor(t, "the message", func() bool { return bob.rec.nMsgs() == 1 })
	msgs, _, _ := bob.rec.snapshot()
	if msgs[0].Seq != 2 || len(bob.rec.unknown) != 1 || bob.rec.unknown[0].Type != "group_invite" {
		t.Fatalf("msgs %+v unknown %+v", msgs, bob.rec.unknown)
	}
}

func TestMarkReadSplitsLongLists(t *testing.T) {
	fs := newFakeServer(t)
	bob := startClient(t, fs, "bob", "")
	ids := make([]string, 600)
	for i := range ids {
		ids[i] = fmt.Sprint("m", i)
	}
	if err := bob.MarkRead(context.Background(), ids...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acks", func() bool { return bob.Pending() == 0 })
	fs.With(func() {
		if n := fs.Received["bob"]["receipt"]; n != 3 {
			t.Errorf("%d receipt frames for 600 ids, want 3", n)
		}
	})
}

func TestOutboxFull(t *testing.T) {
	c, err := New(Config{Token: "x", MaxOutbox: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for range 2 {
		if _, err := c.Send(ctx, "bob", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Send(ctx, "bob", "x"); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("third Send = %v, want ErrOutboxFull", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{
			name: "no token",
			cfg:  Config{},
			want: "Token or TokenSource",
		},
		{
			name: "http scheme",
			cfg:  Config{Token: "t", URL: "http://x/v1/ws"},
			want: "scheme",
		},
		{
			name: "backoff inverted",
			cfg:  Config{Token: "t", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
			want: "backoff",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
