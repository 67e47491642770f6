package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/client/chatcli"
	"github.com/switchboard/switchboard/internal/testserver"
)

// clientLog keeps every event of a client, for the tests below.
type clientLog struct {
	mu      sync.Mutex
	evs     []client.Event
	changed chan struct{}
}

func (l *clientLog) handle(ev client.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// find returns the events for which match is true.
func find[E client.Event](l *clientLog, match func(E) bool) []E {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []E
	for _, ev := range l.evs {
		if e, ok := ev.(E); ok && match(e) {
			out = append(out, e)
		}
	}
	return out
}

// await waits (20s at most) until match holds for an event, and returns
// the first such event.
func await[E client.Event](t *testing.T, l *clientLog, what string, match func(E) bool) E {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if got := find(l, match); len(got) > 0 {
			return got[0]
		}
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// startLogged runs a Client with tok, whose user it reads from the token.
func startLogged(t *testing.T, srv *testserver.Server, tok string) (*client.Client, *clientLog) {
	t.Helper()
	l := &clientLog{changed: make(chan struct{}, 1)}
	c, err := client.New(client.Config{URL: srv.URL(), Token: tok, Handler: l.handle,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); c.Close(); <-done })
	await(t, l, "a connection", func(s client.StateChange) bool { return s.State == client.StateConnected })
	return c, l
}

// TestClientGroupsOwnCopiesPresence: the Go client against the binary:
// a group created and written to reaches both members, the sender's two
// devices each get the copy (the sending one knows it as its own), the
// group ticks and msg.info follow the members' receipts, and presence.sub
// sees a user come online after "active".
func TestClientGroupsOwnCopiesPresence(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir := srv.DataDir()
	phone, phoneLog := startLogged(t, srv, testserver.Token(t, dir, "alice", "phone"))
	laptop, laptopLog := startLogged(t, srv, testserver.Token(t, dir, "alice", "laptop"))
	bob, bobLog := startLogged(t, srv, testserver.Token(t, dir, "bob", ""))
	carol, carolLog := startLogged(t, srv, testserver.Token(t, dir, "carol", ""))
	ctx := context.Background()
	if phone.User() != "alice" {
		t.Fatalf("User() = %q, want the token's alice", phone.User())
	}

	// Presence: bob watches alice, who then opens the app.
	if err := bob.Subscribe(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	first := await(t, bobLog, "alice's presence", func(p client.Presence) bool { return p.User == "alice" })
	if first.Online == nil || *first.Online {
		t.Fatalf("alice before active: %+v, want offline", first)
	}
	if err := phone.SetActive(ctx, true); err != nil {
		t.Fatal(err)
	}
	await(t, bobLog, "alice online", func(p client.Presence) bool {
		return p.User == "alice" && p.Online != nil && *p.Online && p.LastSeen != nil
	})

	// A group, and a message to it.
	gid, err := phone.CreateGroup(ctx, "Trip", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*clientLog{"phone": phoneLog, "laptop": laptopLog, "bob": bobLog, "carol": carolLog} {
		ev := await(t, l, name+"'s created event", func(e client.GroupEvent) bool { return e.Group == gid })
		if ev.Event != client.GroupCreated || ev.Name != "Trip" || ev.By != "alice" || len(ev.Members) != 3 {
			t.Fatalf("%s: %+v", name, ev)
		}
	}
	id, err := phone.SendGroup(ctx, gid, "hello all")
	if err != nil {
		t.Fatal(err)
	}
	ack := await(t, phoneLog, "the ack", func(a client.Ack) bool { return a.ClientID == id })
	if ack.Group != gid {
		t.Fatalf("ack %+v", ack)
	}
	msgID := ack.MsgID
	for name, l := range map[string]*clientLog{"bob": bobLog, "carol": carolLog} {
		m := await(t, l, name+"'s message", func(m client.Message) bool { return m.MsgID == msgID })
		if m.Group != gid || m.From != "alice" || m.Body != "hello all" || m.Own {
			t.Fatalf("%s got %+v", name, m)
		}
	}
	onPhone := await(t, phoneLog, "the phone's copy", func(m client.Message) bool { return m.MsgID == msgID })
	onLaptop := await(t, laptopLog, "the laptop's copy", func(m client.Message) bool { return m.MsgID == msgID })
	if !onPhone.Own || onPhone.ClientID != id || !onLaptop.Own || onLaptop.ClientID != "" || onLaptop.Group != gid {
		t.Fatalf("copies: phone %+v, laptop %+v", onPhone, onLaptop)
	}
	if err := laptop.MarkRead(ctx, msgID); err != nil || laptop.Pending() != 0 {
		t.Fatalf("a receipt for alice's own message was queued (%v, %d pending)", err, laptop.Pending())
	}

	// A one-to-one message reaches the other device too.
	id2, err := phone.Send(ctx, "bob", "just you")
	if err != nil {
		t.Fatal(err)
	}
	ack2 := await(t, phoneLog, "the second ack", func(a client.Ack) bool { return a.ClientID == id2 })
	m := await(t, laptopLog, "the laptop's copy", func(m client.Message) bool { return m.MsgID == ack2.MsgID })
	if !m.Own || m.ClientID != "" || m.To != "bob" || m.Group != "" {
		t.Fatalf("laptop's copy of a one-to-one message: %+v", m)
	}

	// The group ticks: once everyone has it.
	if err := bob.MarkDelivered(ctx, msgID); err != nil {
		t.Fatal(err)
	}
	if err := carol.MarkRead(ctx, msgID); err != nil {
		t.Fatal(err)
	}
	tick := func(st client.Status) func(client.Receipt) bool {
		return func(r client.Receipt) bool {
			return r.Group == gid && r.All && r.Status == st && slices.Contains(r.MsgIDs, msgID)
		}
	}
	await(t, phoneLog, "delivered to everyone", tick(client.StatusDelivered))
	await(t, laptopLog, "delivered to everyone, on the laptop", tick(client.StatusDelivered))
	if got := find(phoneLog, tick(client.StatusRead)); len(got) != 0 {
		t.Fatalf("read by everyone before bob read it: %+v", got)
	}
	if err := bob.MarkRead(ctx, msgID); err != nil {
		t.Fatal(err)
	}
	read := await(t, phoneLog, "read by everyone", tick(client.StatusRead))
	if read.By != "" {
		t.Fatalf("group receipt with by: %+v", read)
	}

	info, err := phone.MsgInfo(ctx, msgID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Group != gid || len(info.Members) != 2 || info.Members[0].User != "bob" || info.Members[1].User != "carol" {
		t.Fatalf("msg.info %+v", info)
	}
	for _, mem := range info.Members {
		if mem.Status() != client.StatusRead || mem.Delivered.IsZero() || mem.Read.Before(mem.Delivered) {
			t.Errorf("msg.info member %+v: want delivered and read", mem)
		}
	}
	if info, err := phone.MsgInfo(ctx, ack2.MsgID); err != nil || info.To != "bob" || info.Status != client.StatusSent {
		t.Fatalf("msg.info of the one-to-one message = %+v, %v", info, err)
	}
	var se *client.ServerError
	if _, err := bob.MsgInfo(ctx, msgID); !errors.As(err, &se) || se.Code != client.CodeNotFound {
		t.Fatalf("msg.info of someone else's message = %v", err)
	}
	if err := carol.AddMembers(ctx, gid, "dave"); !errors.As(err, &se) || se.Code != client.CodeNotAdmin {
		t.Fatalf("a member adding = %v", err)
	}
	devs, err := laptop.Devices(ctx)
	if err != nil || len(devs) != 2 || devs[0].Name != "laptop" || !devs[0].Current || devs[1].Name != "phone" {
		t.Fatalf("devices = %+v, %v", devs, err)
	}
}

// chatTerm is a chatcli.Run against the binary: lines typed go to in, the
// screen is out.
type chatTerm struct {
	t   *testing.T
	in  *io.PipeWriter
	out *testserver.SyncBuffer
}

func startChatTerm(t *testing.T, srv *testserver.Server, user, device string) *chatTerm {
	t.Helper()
	pr, pw := io.Pipe()
	tm := &chatTerm{t: t, in: pw, out: &testserver.SyncBuffer{}}
	opts := chatcli.Options{User: user, Device: device, Server: srv.URL(), AssetsURL: srv.AssetsURL(),
		Token: testserver.Token(t, srv.DataDir(), user, device), StateDir: t.TempDir(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- chatcli.Run(ctx, opts, pr, tm.out) }()
	t.Cleanup(func() {
		pw.Close() // end of input: the chat sends what is pending and says inactive
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Run: %v", user, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s: Run did not return", user)
		}
		cancel()
	})
	tm.waitFor(`(?m)^connected$`)
	return tm
}

func (tm *chatTerm) typeLine(line string) {
	tm.t.Helper()
	if _, err := fmt.Fprintln(tm.in, line); err != nil {
		tm.t.Fatalf("typing %q: %v", line, err)
	}
}

// waitFor polls the screen until re matches, failing after 20s.
func (tm *chatTerm) waitFor(re string) {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for !rx.MatchString(tm.out.String()) {
		if time.Now().After(deadline) {
			tm.t.Fatalf("screen never matched %q:\n%s", re, tm.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestChatAgainstServer: `switchboard chat`'s terminal against the
// binary: a group, its ticks and /info, the sender's other device, and the
// peer's presence.
func TestChatAgainstServer(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	alice := startChatTerm(t, srv, "alice", "")
	laptop := startChatTerm(t, srv, "alice", "laptop")
	bob := startChatTerm(t, srv, "bob", "")
	carol := startChatTerm(t, srv, "carol", "")

	alice.typeLine("/to bob")
	alice.waitFor(`(?m)^  bob is online$`) // bob's chat said "active" when it started

	alice.typeLine("/group new Trip bob carol")
	alice.waitFor(`(?m)^now talking in \[Trip\]$`)
	bob.waitFor(`(?m)^  \[Trip\] alice created the group: alice, you, carol$`)
	alice.typeLine("hello all")
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] \[Trip\] alice: hello all$`)
	carol.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] \[Trip\] alice: hello all$`)
	laptop.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] you → \[Trip\]: hello all  \(from another device\)$`)
	alice.waitFor(`(?m)^  ✓✓ read by everyone \(msg to \[Trip\]: "hello all"\)$`)
	laptop.waitFor(`(?m)^  ✓✓ read by everyone \(msg to \[Trip\]: "hello all"\)$`)
	if n := strings.Count(alice.out.String(), "you → [Trip]: hello all"); n != 1 {
		t.Fatalf("the sender's screen shows the message %d times:\n%s", n, alice.out.String())
	}
	alice.typeLine("/info")
	alice.waitFor(`(?m)^  "hello all" → \[Trip\]: bob ✓✓ read [^,]*\d\d:\d\d, carol ✓✓ read .*\d\d:\d\d$`)

	alice.typeLine("/who bob") // the group is the conversation now: watch bob
	alice.waitFor(`(?m)^  bob is online\n(.*\n)*  bob is online$`)
	bob.typeLine("/quit")
	alice.waitFor(`(?m)^  bob was last seen (on .+ )?at \d\d:\d\d$`)
	laptop.typeLine("/devices")
	laptop.waitFor(`(?m)^  devices connected: default, laptop \(this one\)$`)
	t.Logf("alice's screen:\n%s", alice.out.String())
}
