package client

import (
	"encoding/json"
	"hash/fnv"
	"time"
)

// The server copies every message a user sends into the user's own inbox,
// for the user's other devices; the device that sent it gets the copy too,
// after the ack. This file tells those copies apart (Message.Own,
// Message.ClientID) and keeps receipts for them from being sent.

// maxRecentOwn bounds the own message ids remembered.
const maxRecentOwn = 4096

// recentOwn remembers the user's most recent own messages: msg id → the
// client id of this device's send, or "" for one sent from another device.
// Oldest ids are forgotten first. Not safe for concurrent use: the Client
// guards it with its mutex.
type recentOwn struct {
	ids  map[string]string
	ring []string // insertion order, a circular buffer of maxRecentOwn
	next int
}

func (r *recentOwn) add(msgID, clientID string) {
	if r.ids == nil {
		r.ids = make(map[string]string)
	}
	if _, ok := r.ids[msgID]; ok {
		if clientID != "" {
			r.ids[msgID] = clientID
		}
		return
	}
	if len(r.ring) < maxRecentOwn {
		r.ring = append(r.ring, msgID)
	} else {
		delete(r.ids, r.ring[r.next])
		r.ring[r.next] = msgID
		r.next = (r.next + 1) % maxRecentOwn
	}
	r.ids[msgID] = clientID
}

func (r *recentOwn) get(msgID string) (clientID string, ok bool) {
	clientID, ok = r.ids[msgID]
	return clientID, ok
}

// message turns a msg frame into a Message, telling the user's own copies
// apart.
func (c *Client) message(f *serverFrame, p []byte) Message {
	m := Message{
		Seq: f.Seq, MsgID: f.MsgID, From: f.From, To: f.To, Group: f.Group, Body: f.Body,
		TS: time.UnixMilli(f.TS), Raw: p, Attachment: f.Attachment,
	}
	if u := c.User(); u != "" && f.From == u {
		m.Own = true
		target := f.To
		if f.Group != "" {
			target = f.Group
		}
		m.ClientID = c.ownCopy(f.MsgID, target, f.Body, f.Attachment.id())
	}
	return m
}

// ownCopy returns the client id of this device's send that the server
// stored as msgID, or "" if it was sent from another device. A copy
// normally comes after its ack; one that comes first (its send reached the
// server on an earlier connection, and the sync overtook the resend) is
// matched by target and body to such a send.
func (c *Client) ownCopy(msgID, target, body, assetID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.own.get(msgID); ok {
		return id
	}
	id := c.ob.claimStored(msgID, target, body, assetID)
	c.own.add(msgID, id)
	return id
}

// notOwn returns msgIDs without the ids of the user's own recent messages.
func (c *Client) notOwn(msgIDs []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range msgIDs {
		if _, own := c.own.get(id); !own {
			continue
		}
		// Copy on the first own id: the caller's slice stays as it was.
		out := append([]string(nil), msgIDs[:i]...)
		for _, id := range msgIDs[i+1:] {
			if _, own := c.own.get(id); !own {
				out = append(out, id)
			}
		}
		return out
	}
	return msgIDs
}

// sendSum is a hash of a send's target and body, to find a send by them
// without decoding every outbox frame.
func sendSum(target, body string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(target))
	h.Write([]byte{0})
	h.Write([]byte(body))
	return h.Sum64()
}

// newSendEntry returns the outbox entry of send f, encoded as frame.
func newSendEntry(f sendFrame, frame []byte) *entry {
	return &entry{id: f.ID, frame: frame, send: true, sum: sendSum(f.target(), f.Body)}
}

// claimStored finds the oldest unacked send to target with body (and the
// attachment assetID, "" for none) that the
// server may have stored on an earlier connection and that no copy has
// claimed yet, marks it as the send of msgID, and returns its id ("" if
// there is none).
func (o *outbox) claimStored(msgID, target, body, assetID string) string {
	sum := sendSum(target, body)
	for _, e := range o.entries {
		if e.acked || !e.send || !e.maybeStored || e.claimed != "" || e.sum != sum {
			continue
		}
		var f sendFrame
		if json.Unmarshal(e.frame, &f) != nil || f.target() != target || f.Body != body || f.Attachment.id() != assetID {
			continue
		}
		e.claimed = msgID
		return e.id
	}
	return ""
}
