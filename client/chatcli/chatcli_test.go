package chatcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/client/internal/fakeserver"

	"github.com/switchboard/switchboard/internal/testserver"
)

// term is one running chat: what the user types goes to in, the screen is out.
type term struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *testserver.SyncBuffer
	done chan error
}

var clock = time.Date(2025, 1, 2, 12, 4, 5, 0, time.UTC)

func startChat(t *testing.T, fs *fakeserver.Server, user string, mods ...func(*Options)) *term {
	t.Helper()
	pr, pw := io.Pipe()
	tm := &term{t: t, in: pw, out: &testserver.SyncBuffer{}, done: make(chan error, 1)}
	opts := Options{
		User:       user,
		Server:     fs.URL,
		Token:      user,
		StateDir:   t.TempDir(),
		Now:        func() time.Time { return clock },
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
	for _, m := range mods {
		m(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { tm.done <- Run(ctx, opts, pr, tm.out) }()
	t.Cleanup(func() {
		cancel()
		pw.Close()
		select {
		case err := <-tm.done:
			if err != nil {
				t.Errorf("%s: Run: %v", user, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return", user)
		}
	})
	return tm
}

func (tm *term) typeLine(line string) {
	tm.t.Helper()
	if _, err := fmt.Fprintln(tm.in, line); err != nil {
		tm.t.Fatalf("typing %q: %v", line, err)
	}
}

// waitUntil polls cond, failing after 10s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor polls the screen until re matches, failing after 10s.
func (tm *term) waitFor(re string) {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(tm.out.String()) {
		if time.Now().After(deadline) {
			tm.t.Fatalf("screen never matched %q:\n%s", re, tm.out.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTwoTerminalsChat(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	bob := startChat(t, fs, "bob")
	alice.waitFor(`(?m)^connected$`)
	bob.waitFor(`(?m)^connected$`)

	alice.typeLine("bob: hello")
	alice.waitFor(`(?m)^\[12:04:05\] you → bob: hello  ✓$`)
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] alice: hello$`)
	alice.waitFor(`(?m)^  ✓✓ delivered \(msg to bob: "hello"\)\n(.*\n)*  ✓✓ read \(msg to bob: "hello"\)$`)

	bob.typeLine("alice: hi alice, long time")
	bob.waitFor(`(?m)^\[12:04:05\] you → alice: hi alice, long time  ✓$`)
	alice.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] bob: hi alice, long time$`)
	bob.waitFor(`(?m)^  ✓✓ delivered \(msg to alice: "hi alice, long time"\)\n(.*\n)*  ✓✓ read \(msg to alice: "hi alice, long time"\)$`)

	t.Logf("alice's screen:\n%s\nbob's screen:\n%s", alice.out.String(), bob.out.String())
	alice.typeLine("/quit")
	select {
	case err := <-alice.done:
		alice.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("Run after /quit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("/quit did not end Run")
	}
}

// A backlog synced at startup is acknowledged with a few batched receipts,
// not two per message (which would trip the server's rate limit).
func TestBacklogReceiptsAreBatched(t *testing.T) {
	fs := fakeserver.New(t)
	const n = 100
	fs.With(func() {
		for i := 1; i <= n; i++ {
			fs.Store("bob", map[string]any{"type": "msg", "seq": i, "msg_id": fmt.Sprint("m", i),
				"from": "alice", "to": "bob", "body": fmt.Sprint("backlog ", i), "ts": clock.UnixMilli()})
		}
	})
	bob := startChat(t, fs, "bob")
	bob.waitFor(fmt.Sprintf(`(?m)^\[12:04:05\] alice: backlog %d$`, n))
	var got int
	waitUntil(t, func() bool {
		fs.With(func() { got = fs.Received["bob"]["receipt"] })
		return got >= 2
	})
	bob.typeLine("/quit") // flushes what is still batched
	<-bob.done
	bob.done <- nil
	fs.With(func() { got = fs.Received["bob"]["receipt"] })
	if got > 10 {
		t.Fatalf("%d receipt frames for %d messages; want them batched", got, n)
	}
}

func TestAutoReadOff(t *testing.T) {
	fs := fakeserver.New(t)
	off := false
	alice := startChat(t, fs, "alice")
	bob := startChat(t, fs, "bob", func(o *Options) { o.AutoRead = &off })
	bob.waitFor(`(?m)^connected$`)
	alice.typeLine("bob: one")
	alice.waitFor(`✓✓ delivered \(msg to bob: "one"\)`)
	// Once bob's next message arrives, a read receipt sent before it would
	// have arrived too.
	bob.typeLine("alice: two")
	alice.waitFor(`bob: two`)
	if strings.Contains(alice.out.String(), "✓✓ read") {
		t.Fatalf("read receipt sent with AutoRead off:\n%s", alice.out.String())
	}
}

// echo "bob: hi" | switchboard chat --user alice: the line is sent before
// Run returns at the end of input.
func TestPipedInputIsSentBeforeExit(t *testing.T) {
	fs := fakeserver.New(t)
	out := &testserver.SyncBuffer{}
	opts := Options{User: "alice", Token: "alice", Server: fs.URL, StateDir: t.TempDir(), Now: func() time.Time { return clock }}
	if err := Run(context.Background(), opts, strings.NewReader("bob: piped\n"), out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "you → bob: piped  ✓") || fs.InboxLen("bob") != 1 {
		t.Fatalf("not sent before exit (bob's inbox: %d):\n%s", fs.InboxLen("bob"), out.String())
	}
}

func TestCommandsAndUsage(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	alice.typeLine("hello there")
	alice.waitFor(`(?m)^to send, type "name: message" \(e\.g\. "bob: hi"\); /help for help$`)
	alice.typeLine("bob:")
	alice.typeLine("/help")
	alice.waitFor(`/quit  leave`)
	alice.typeLine("/frobnicate now")
	alice.waitFor(`(?m)^unknown command /frobnicate; /help for help$`)
	if n := strings.Count(alice.out.String(), `to send, type`); n != 2 {
		t.Fatalf(`%d usage hints for "hello there" and "bob:", want 2`, n)
	}
}

func TestOfflineLineIsQueuedThenSent(t *testing.T) {
	fs := fakeserver.New(t)
	fs.SetReject(503)
	alice := startChat(t, fs, "alice")
	alice.waitFor(`(?m)^connecting…$`)
	alice.typeLine("bob: are you there?")
	alice.waitFor(`(?m)^  … queued: will send when connected$`)
	fs.SetReject(0)
	alice.waitFor(`(?m)^connected\n(.*\n)*\[12:04:05\] you → bob: are you there\?  ✓$`)
}

func TestDisconnectShown(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	alice.waitFor(`(?m)^connected$`)
	waitUntil(t, func() bool { return fs.Connected("alice") == 1 })
	fs.CloseUser("alice", ws.StatusCode(client.CloseSlowConsumer), "did not read")
	alice.waitFor(`(?m)^disconnected: 4000 slow consumer \(did not read\), retrying (now|in [0-9.]+m?s)\nconnected$`)
}

func TestBadTokenEndsRun(t *testing.T) {
	fs := fakeserver.New(t)
	out := &testserver.SyncBuffer{}
	pr, pw := io.Pipe() // input that never ends: only the 401 can stop Run
	defer pw.Close()
	err := Run(context.Background(), Options{User: "mallory", Token: "bad", Server: fs.URL, StateDir: t.TempDir()}, pr, out)
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(out.String(), "rejected the token for mallory (401)") {
		t.Fatalf("screen:\n%s", out.String())
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line     string
		to, body string
		ok       bool
	}{
		{
			line: "bob: hello",
			to:   "bob",
			body: "hello",
			ok:   true,
		},
		{
			line: "bob:  time is 12:04 ",
			to:   "bob",
			body: "time is 12:04",
			ok:   true,
		},
		{
			line: "hello",
		},
		{
			line: "bob:",
		},
		{
			line: ": hi",
		},
		{
			line: "see you: soon",
		},
	} {
		to, body, ok := parseLine(tc.line)
		if to != tc.to || body != tc.body || ok != tc.ok {
			t.Errorf("parseLine(%q) = %q, %q, %v; want %q, %q, %v", tc.line, to, body, ok, tc.to, tc.body, tc.ok)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	o := Options{User: "alice", Token: "t"}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.Server != client.DefaultURL || o.AutoRead == nil || !*o.AutoRead || o.Now == nil {
		t.Fatalf("defaults not applied: %+v", o)
	}
	if want := filepath.Join("switchboard", "alice"); !strings.HasSuffix(o.StateDir, want) {
		t.Fatalf("StateDir = %q, want it to end in %q", o.StateDir, want)
	}
	o = Options{User: "alice", Device: "laptop", Token: "t"}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("switchboard", "alice@laptop"); !strings.HasSuffix(o.StateDir, want) {
		t.Fatalf("StateDir = %q, want it to end in %q", o.StateDir, want)
	}
	for _, bad := range []Options{{Token: "t"}, {User: "a"}, {User: "../x", Token: "t"}, {User: "a", Device: "x/y", Token: "t"}} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("setDefaults(%+v) accepted", bad)
		}
	}
}
