package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
)

// reply is the server's answer to a request: its ack frame or its error.
type reply struct {
	ack json.RawMessage
	err error
}

// Request sends frame, a client frame of the protocol (its "type" is
// required), and returns the server's ack to it: the whole ack frame, with
// the request's result fields. When frame has no "id", Request sets a fresh
// one (frame itself is not modified). An error frame in reply is returned
// as a *ServerError carrying the protocol's code (errors.As, then switch
// on Code: CodeNotMember, CodeNotAdmin, …); it is not handed to the
// Handler.
//
// Requests are for frames that are answered and need no durability:
// group.*, msg.info, presence.*, privacy.*, contacts.*, profile.*,
// devices.list, active, inactive, typing. They are not kept in the outbox: a Request
// works only while connected, and fails with an error matching
// ErrNotConnected when there is no connection or it is lost before the
// reply (the server may or may not have carried the request out). Use
// Send and SendGroup for messages.
//
// Request is safe for concurrent use. It must not be called from the
// Handler: the reply is read by the goroutine that runs the Handler, so
// it would wait until ctx ends.
func (c *Client) Request(ctx context.Context, frame map[string]any) (json.RawMessage, error) {
	typ, _ := frame["type"].(string)
	if typ == "" {
		return nil, errors.New(`client: Request: the frame has no "type"`)
	}
	f := maps.Clone(frame)
	id, _ := f["id"].(string)
	if id == "" {
		id = NewID()
		f["id"] = id
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", typ, err)
	}
	return c.request(ctx, typ, id, b)
}

// request writes frame b, whose id is id, on the current connection and
// waits for the reply with that id.
func (c *Client) request(ctx context.Context, typ, id string, b []byte) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := c.session()
	if s == nil {
		return nil, fmt.Errorf("client: %s: %w", typ, ErrNotConnected)
	}
	ch, err := s.await(id)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", typ, err)
	}
	defer s.forget(id)
	if err := s.writeFrames(false, false, [][]byte{b}); err != nil {
		return nil, fmt.Errorf("client: %s: %w: %w", typ, ErrNotConnected, err)
	}
	select {
	case r := <-ch:
		if r.err != nil && !errors.As(r.err, new(*ServerError)) {
			return nil, fmt.Errorf("client: %s: %w", typ, r.err)
		}
		return r.ack, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// session returns the current connection, or nil.
func (c *Client) session() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
}

// await registers a waiter for the reply with id.
func (s *session) await(id string) (<-chan reply, error) {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if s.reqsDone {
		return nil, ErrNotConnected
	}
	if _, dup := s.waiters[id]; dup {
		return nil, fmt.Errorf("a request with id %q is already waiting", id)
	}
	if s.waiters == nil {
		s.waiters = make(map[string]chan reply)
	}
	ch := make(chan reply, 1)
	s.waiters[id] = ch
	return ch, nil
}

func (s *session) forget(id string) {
	s.reqMu.Lock()
	delete(s.waiters, id)
	s.reqMu.Unlock()
}

// answer hands r to the request waiting for id, and reports whether there
// was one.
func (s *session) answer(id string, r reply) bool {
	if id == "" {
		return false
	}
	s.reqMu.Lock()
	ch := s.waiters[id]
	delete(s.waiters, id)
	s.reqMu.Unlock()
	if ch == nil {
		return false
	}
	ch <- r // buffered, and each waiter is answered once
	return true
}

// failRequests answers every waiting request with ErrNotConnected once the
// connection is gone (why says why), and refuses new ones.
func (s *session) failRequests(why error) {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	s.reqsDone = true
	for id, ch := range s.waiters {
		ch <- reply{err: fmt.Errorf("connection lost before the reply (%v): %w", why, ErrNotConnected)}
		delete(s.waiters, id)
	}
}
