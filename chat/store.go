package chat

import (
	"context"
	"errors"
	"time"
)

// Status is how far a message has travelled, as its sender sees it.
// A higher status implies the lower ones: read implies delivered.
type Status uint8

// Message statuses, in order.
const (
	StatusSent      Status = 1 // durable on the server
	StatusDelivered Status = 2 // on at least one of the recipient's devices
	StatusRead      Status = 3 // shown to the recipient
)

// String returns the wire name of s ("sent", "delivered", "read").
func (s Status) String() string {
	switch s {
	case StatusSent:
		return "sent"
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	}
	return "unknown"
}

// ParseStatus parses a receipt status from the wire. Only "delivered" and
// "read" are accepted: "sent" is the server's to give.
func ParseStatus(b []byte) (Status, bool) {
	switch string(b) {
	case "delivered":
		return StatusDelivered, true
	case "read":
		return StatusRead, true
	}
	return 0, false
}

// MessageMeta is what the store keeps about a message beyond its inbox
// entry: enough to answer an idempotent resend and to route receipts back to
// the sender.
type MessageMeta struct {
	ID       string // server id: unique, time-ordered (see NewIDGen)
	From     string // sender (the token's user)
	To       string // recipient
	ClientID string // the sender's id for the send, for idempotency
	TS       int64  // unix milliseconds at which the server accepted it
	Seq      uint64 // seq of the message in the recipient's inbox; 0 when another partition writes that entry (forwarded)
	Status   Status // highest status reported by the recipient
	// EchoSeq, for a message whose recipient's entry another partition
	// writes (Seq is 0), is the seq of its copy in the sender's inbox,
	// written in the same batch: the entry whose durability commits the
	// message here. A store whose Apply is not atomic checks it to tell
	// a message whose batch failed part way (backends/cassandra,
	// MessageByClientID). Set only when the message is first stored.
	EchoSeq uint64
}

// Entry is one item of a user's inbox: a server frame (a JSON object,
// without WebSocket framing) stored under the user's next seq.
//
// A frame that many entries share (a message, stored once for its
// recipient, the sender's other devices and every member of a group) is
// split: Frame holds the entry's own start (`{"type":"msg","seq":42`) and
// Shared names a Batch.Shared part, of the same batch, that holds the rest.
// Readers get the two concatenated.
type Entry struct {
	User   string
	Seq    uint64
	Frame  []byte
	Shared string // key of a Batch.Shared part appended to Frame; "" for none
}

// SharedPart is the common tail of the frames of several entries, stored
// once. Key is unique (the Service uses the message id).
type SharedPart struct {
	Key  string
	Data []byte
}

// KV is a small record of the Service's state (a group, a member's
// receipt watermarks, a user's list of groups). A nil Value deletes Key.
// State is not subject to retention.
type KV struct {
	Key   string
	Value []byte
}

// Batch is a set of writes that a Store applies atomically and durably.
// Time must be set. User ids are 1 to 128 bytes of UTF-8 without control
// characters (what auth accepts as a token subject).
//
// Messages are upserts keyed by MessageMeta.ID; a message with a ClientID
// is also indexed by (From, ClientID). Entries are inserts keyed by (User,
// Seq); within one batch a user's entries are in increasing seq order and
// continue that user's LastSeq without a gap.
//
// Shared parts expire with their batch; an entry's Shared key names a part
// of the same batch. State records are upserts (or deletes) in order.
type Batch struct {
	Time     time.Time // when the batch was built; drives retention
	Messages []MessageMeta
	Entries  []Entry
	Shared   []SharedPart
	State    []KV
}

// Empty reports whether b writes nothing.
func (b *Batch) Empty() bool {
	return len(b.Messages) == 0 && len(b.Entries) == 0 && len(b.Shared) == 0 && len(b.State) == 0
}

// Reset empties b for reuse, keeping its capacity.
func (b *Batch) Reset() {
	b.Time = time.Time{}
	clear(b.Messages)
	b.Messages = b.Messages[:0]
	clear(b.Entries)
	b.Entries = b.Entries[:0]
	clear(b.Shared)
	b.Shared = b.Shared[:0]
	clear(b.State)
	b.State = b.State[:0]
}

// ErrClosed is returned by a Store, Bus or Directory used after Close.
var ErrClosed = errors.New("switchboard: closed")

// Store is the durable home of messages and inboxes.
//
// All methods are safe for concurrent use. The Service calls Apply from a
// single goroutine, so a Store needs no ordering of its own between batches
// beyond "a batch is visible to readers once Apply has returned".
type Store interface {
	// Apply writes b atomically and durably: when it returns nil, every
	// write in b survives a crash (kill -9, power loss per the backend's
	// guarantees), and is visible to all readers. No reader sees any write
	// of b before it is durable: a device must never be shown an entry that
	// a crash could take back, since its seq would then be reused.
	Apply(ctx context.Context, b *Batch) error

	// LastSeq returns the highest seq ever stored in user's inbox, or 0.
	// It does not decrease when entries expire.
	LastSeq(ctx context.Context, user string) (uint64, error)

	// Message returns the message with the given server id.
	Message(ctx context.Context, id string) (MessageMeta, bool, error)

	// MessageByClientID returns the message that from sent with clientID.
	MessageByClientID(ctx context.Context, from, clientID string) (MessageMeta, bool, error)

	// ReadInbox calls fn for the entries of user's inbox with seq > after,
	// in increasing seq order, at most limit of them. The frame passed to
	// fn (Frame and Shared part concatenated) is valid only during the call.
	// An entry whose shared part is gone (expired) is skipped. An error from
	// fn stops the read and is returned.
	ReadInbox(ctx context.Context, user string, after uint64, limit int,
		fn func(seq uint64, frame []byte) error) error

	// Expire deletes messages and inbox entries written by batches whose
	// Time is before t, and returns how many batches it removed.
	// Retention counts from the batch that first wrote a key: a message
	// whose status a later batch updated still goes with its first batch.
	// LastSeq is unaffected.
	Expire(ctx context.Context, before time.Time) (int, error)

	// GetState calls fn with the value of the state record key, if there
	// is one, and reports whether there was. The value is valid only
	// during the call.
	GetState(ctx context.Context, key string, fn func(value []byte)) (bool, error)

	// ScanState calls fn for each state record whose key starts with
	// prefix, in key order. Key and value are valid only during the call.
	// An error from fn stops the scan and is returned.
	ScanState(ctx context.Context, prefix string, fn func(key, value []byte) error) error
}

// PipelinedStore is an optional Store ability: applying a batch before the
// previous one's Apply has returned, so that a store a network round trip
// away (each Apply two or more of them) is not idle between batches. The
// Service then starts the Apply of batch n+1 while batch n's is under way,
// at most PipelineDepth at once.
//
// ApplyAsync starts applying b and returns at once; done is then called
// exactly once, from any goroutine, with what Apply would have returned.
// Calls are ordered: the store applies the batches as if each Apply began
// once the one before it had returned. It must not make any write of a
// batch visible before every write of the batches started before it is,
// and when one fails, every batch started while it was in flight (and,
// in turn, while those were) must fail too, with ErrEarlierBatch, none of
// its writes visible. b is
// not modified and must stay unchanged until done. Safe for concurrent
// use with the other methods; ApplyAsync itself is called from one
// goroutine.
type PipelinedStore interface {
	Store
	ApplyAsync(ctx context.Context, b *Batch, done func(error))
}

// PipelineDepth is the most batches the Service has in a PipelinedStore's
// ApplyAsync at once.
const PipelineDepth = 3

// ErrEarlierBatch is returned for a batch that was not applied because a
// batch before it failed (see PipelinedStore). The Service answers its
// requests with it; the clients retry.
var ErrEarlierBatch = errors.New("switchboard: an earlier batch failed to commit")

// ClientIDLister is an optional Store ability: listing the client ids that
// a user has sent, for messages not yet expired. With it the Service keeps,
// per active sender, an in-memory set of client-id hashes and answers "is
// this send new?" without a store lookup; the store is asked only when a
// hash matches (a real resend, or a 64-bit collision). Stores whose
// MessageByClientID is already a memory lookup need not implement it.
type ClientIDLister interface {
	// ClientIDs calls fn with each client id indexed for from, in any
	// order. The slice is valid only during the call. It sees every batch
	// whose Apply has returned.
	ClientIDs(ctx context.Context, from string, fn func(clientID []byte)) error
}
