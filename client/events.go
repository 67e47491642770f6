package client

import (
	"strconv"
	"time"
)

// Event is what the Client hands to Config.Handler: one of Message,
// Receipt, Ack, *ServerError, StateChange or Unknown. Switch on its
// concrete type; new event types may be added.
type Event interface {
	isEvent()
}

// Message is a message addressed to this user (or, with several devices, a
// copy of one the user sent). Raw keeps the whole frame: fields that this
// version of the package does not know (e.g. "group", "attachment") are
// there.
type Message struct {
	Seq   uint64    // position in this user's inbox
	MsgID string    // server id; stable across redelivery
	From  string    // sender
	To    string    // recipient
	Body  string    // text
	TS    time.Time // when the server accepted it
	Raw   []byte    // the frame as received; owned by the receiver
}

// Status is a receipt status: how far a message got with its recipient.
// Read implies delivered.
type Status string

// Receipt statuses.
const (
	StatusDelivered Status = "delivered"
	StatusRead      Status = "read"
)

// Receipt tells the sender of MsgIDs that By received or read them.
type Receipt struct {
	Seq    uint64
	Status Status
	MsgIDs []string
	By     string
	TS     time.Time
	Raw    []byte
}

// Ack is the server's "sent" tick: the message with client id ClientID is
// durable on the server as MsgID. After a crash an Ack may be delivered
// again for the same ClientID (with the same MsgID).
type Ack struct {
	ClientID string
	MsgID    string
	TS       time.Time
	To, Body string // the message as sent (also after a restart)
}

// Unknown is a sequenced frame of a type this package does not know. It is
// counted in the seq cursor like any other and handed over as is.
type Unknown struct {
	Type string
	Seq  uint64
	Raw  []byte
}

// ConnState is the state of the Client's connection.
type ConnState int

// Connection states, in the order a connection goes through them.
const (
	StateConnecting   ConnState = iota + 1 // dialing; Attempt counts failures so far
	StateConnected                         // handshake done, sync and outbox resend under way
	StateDisconnected                      // connection lost; Err says why, RetryIn when the next attempt is
	StateStopped                           // Run has returned; Err is its result
)

func (s ConnState) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateStopped:
		return "stopped"
	}
	return "ConnState(" + strconv.Itoa(int(s)) + ")"
}

// StateChange reports a change of ConnState.
type StateChange struct {
	State   ConnState
	Err     error         // why the connection ended (StateDisconnected, StateStopped)
	RetryIn time.Duration // delay before the next attempt (StateDisconnected)
	Attempt int           // consecutive failed attempts before this one (StateConnecting)
}

func (Message) isEvent()      {}
func (Receipt) isEvent()      {}
func (Ack) isEvent()          {}
func (*ServerError) isEvent() {}
func (StateChange) isEvent()  {}
func (Unknown) isEvent()      {}
