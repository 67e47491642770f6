package client

import (
	"strconv"
	"time"
)

// Event is what the Client hands to Config.Handler: one of Message,
// Receipt, GroupEvent, Ack, Presence, Typing, *ServerError, StateChange or
// Unknown. Switch on its concrete type; new event types may be added.
type Event interface {
	isEvent()
}

// Message is a message in this user's inbox: one addressed to the user
// (directly or through a group), or a copy of one the user sent (Own), from
// this device or another. Raw keeps the whole frame: fields that this
// version of the package does not know are there.
type Message struct {
	Seq   uint64    // position in this user's inbox
	MsgID string    // server id; stable across redelivery
	From  string    // sender
	To    string    // recipient; for a group message, the group id
	Group string    // the group id for a group message; "" for one-to-one
	Body  string    // text; with an Attachment, its caption (may be "")
	TS    time.Time // when the server accepted it

	// Attachment is the file sent with the message, as the server knows
	// it (never as the sender described it); nil for none. Download
	// fetches its bytes.
	Attachment *Attachment
	Raw        []byte // the frame as received; owned by the receiver

	// Own is true when From is this Client's user (Client.User): the
	// server copies each message a user sends into the user's own inbox,
	// so that all the user's devices show it. Do not send receipts for it
	// (MarkDelivered and MarkRead skip the ones the Client knows).
	Own bool

	// ClientID is set on an Own message that this Client sent: the id Send
	// or SendGroup returned. The message's Ack comes (or came) with the
	// same MsgID, so an app that shows the Ack skips this copy. It is ""
	// for a message sent from another device, which the app shows as sent
	// by the user. The Client matches a copy that arrives before its ack
	// (after a reconnect, the sync can overtake the resent send) by
	// recipient and body to a send already written to the server: should
	// another device send the same text to the same recipient at that
	// moment, its copy may be taken for this device's.
	ClientID string
}

// Status is a receipt status: how far a message got with its recipient.
// Read implies delivered.
type Status string

// Receipt statuses.
const (
	StatusDelivered Status = "delivered"
	StatusRead      Status = "read"
)

// Receipt tells the sender of MsgIDs that By received or read them. For
// messages sent to a group, Group is set, All is true and By is empty: the
// server tells the sender once, when every recipient has them at Status.
type Receipt struct {
	Seq    uint64
	Status Status
	MsgIDs []string
	By     string // the recipient; "" for a group receipt
	Group  string // the group, for a group receipt
	All    bool   // every member of Group has MsgIDs at Status
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
	To       string // the recipient as sent (also after a restart); "" for a group
	Group    string // the group as sent; "" for one-to-one
	Body     string // the body as sent

	// Attachment is the file sent (SendFile, SendAttachment), as the
	// upload described it; nil for none.
	Attachment *Attachment
}

// Group membership events (GroupEvent.Event).
const (
	GroupCreated  = "created"
	GroupAdded    = "added"
	GroupRemoved  = "removed"
	GroupLeft     = "left"
	GroupPromoted = "promoted"
	GroupDemoted  = "demoted"
	GroupRenamed  = "renamed"

	GroupIconChanged = "icon" // Icon is the new icon, "" once removed
)

// GroupEvent is a change of a group's membership, name or icon, an entry
// of the inbox of every member before and after the change: it has a seq
// and syncs like a message.
type GroupEvent struct {
	Seq     uint64
	Group   string   // the group id
	Event   string   // GroupCreated, GroupAdded, …
	By      string   // who made the change
	Members []string // the users concerned; for GroupCreated, all members
	Name    string   // the group's name, for GroupCreated and GroupRenamed
	Icon    string   // for GroupIconChanged, the icon's asset id ("": removed)
	TS      time.Time
	Raw     []byte
}

// Presence is what this user may see of User's presence (see Subscribe):
// a nil field is hidden by privacy settings (or, for LastSeen, unknown).
// It is pushed, without a seq, when the subscription starts and whenever
// what this user may see of it changes.
type Presence struct {
	User     string
	Online   *bool
	LastSeen *time.Time
	Raw      []byte
}

// Typing says that From is typing (or, with Stop, stopped) in a
// conversation: to this user (To), or in Group. Typing is never stored: a
// device that is offline does not see it.
type Typing struct {
	From  string
	To    string // this user, for one-to-one typing
	Group string // the group, for typing in a group
	Stop  bool
	Raw   []byte
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
func (GroupEvent) isEvent()   {}
func (Ack) isEvent()          {}
func (Presence) isEvent()     {}
func (Typing) isEvent()       {}
func (*ServerError) isEvent() {}
func (StateChange) isEvent()  {}
func (Unknown) isEvent()      {}
