package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/internal/testserver"
)

// events gathers a client's events for assertions.
type events struct {
	mu       sync.Mutex
	msgs     []client.Message
	acks     map[string]string
	receipts map[string]client.Status // msg id -> best status
	changed  chan struct{}
}

func newEvents() *events {
	return &events{acks: map[string]string{}, receipts: map[string]client.Status{}, changed: make(chan struct{}, 1)}
}

func (e *events) handle(ev client.Event) {
	e.mu.Lock()
	switch ev := ev.(type) {
	case client.Message:
		e.msgs = append(e.msgs, ev)
	case client.Ack:
		e.acks[ev.ClientID] = ev.MsgID
	case client.Receipt:
		for _, id := range ev.MsgIDs {
			if e.receipts[id] != client.StatusRead {
				e.receipts[id] = ev.Status
			}
		}
	}
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// waitFor polls cond on every event, up to a deadline.
func (e *events) waitFor(t *testing.T, what string, cond func(e *events) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func runClient(t *testing.T, addr, tok, stateDir string, ev *events) (*client.Client, func()) {
	t.Helper()
	c, err := client.New(client.Config{URL: "ws://" + addr + "/v1/ws", Token: tok, StateDir: stateDir,
		Handler: ev.handle, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	stop := func() { cancel(); c.Close(); <-done }
	t.Cleanup(stop)
	return c, stop
}

// TestGoClientAgainstServer: the Go client with real state directories
// chats with receipts, keeps writing while the server is down and the
// client restarts, and everything arrives once, in order.
func TestGoClientAgainstServer(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir, addr, state := srv.DataDir(), srv.Addr(), t.TempDir()
	aliceTok, bobTok := testserver.Token(t, dir, "alice", ""), testserver.Token(t, dir, "bob", "")

	aliceEv, bobEv := newEvents(), newEvents()
	alice, stopAlice := runClient(t, addr, aliceTok, state+"/alice", aliceEv)
	bob, _ := runClient(t, addr, bobTok, state+"/bob", bobEv)
	ctx := context.Background()
	var ids []string
	for i := range 50 {
		id, err := alice.Send(ctx, "bob", fmt.Sprint("hello ", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	bobEv.waitFor(t, "bob's 50 messages", func(e *events) bool { return len(e.msgs) >= 50 })
	bobEv.mu.Lock()
	var msgIDs []string
	for _, m := range bobEv.msgs {
		msgIDs = append(msgIDs, m.MsgID)
	}
	bobEv.mu.Unlock()
	if err := bob.MarkDelivered(ctx, msgIDs...); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, msgIDs[:10]...); err != nil {
		t.Fatal(err)
	}
	aliceEv.waitFor(t, "alice's ticks", func(e *events) bool {
		n := 0
		for _, id := range msgIDs {
			if e.receipts[id] != "" {
				n++
			}
		}
		return n == 50 && e.receipts[msgIDs[0]] == client.StatusRead && e.receipts[msgIDs[49]] == client.StatusDelivered
	})

	// The server goes down; alice keeps writing, then her app restarts.
	srv.Stop() // the exit status is not what this test is about
	for i := 50; i < 100; i++ {
		id, err := alice.Send(ctx, "bob", fmt.Sprint("hello ", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	stopAlice()
	aliceEv = newEvents()
	runClient(t, addr, aliceTok, state+"/alice", aliceEv)
	testserver.Start(t, testserver.Options{Addr: addr, DataDir: dir})

	bobEv.waitFor(t, "all 100 messages at bob", func(e *events) bool { return len(e.msgs) >= 100 })
	aliceEv.waitFor(t, "acks of the offline sends", func(e *events) bool { return len(e.acks) >= 50 })
	bobEv.mu.Lock()
	defer bobEv.mu.Unlock()
	if len(bobEv.msgs) != 100 {
		t.Fatalf("bob got %d messages, want 100", len(bobEv.msgs))
	}
	for i, m := range bobEv.msgs {
		if m.Body != fmt.Sprint("hello ", i) || m.Seq != uint64(i+1) || m.From != "alice" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}
