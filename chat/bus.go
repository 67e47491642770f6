package chat

import "context"

// Delivery tells the gateway node that holds users' connections that
// entries are now durable in those users' inboxes, or carries ephemeral
// frames (typing, presence) for their open connections.
//
// The frame of each item is its Head followed by Shared: a message to a
// group of a thousand is one Delivery per node, its body encoded once in
// Shared, each member's item only the head that carries its own seq. All
// slices are valid only during the handler call.
type Delivery struct {
	Shared []byte
	Items  []Item
	// Epoch is the publishing sequencer's writer epoch (Config.Epoch), 0
	// from a source that is not fenced. A gateway that has had a
	// Delivery of a larger epoch drops one of a smaller: a sequencer that
	// was paused past its ownership and resumed must not show devices
	// entries whose seqs its successor fills differently.
	Epoch uint64
	// Partition is the publishing sequencer's partition (Config.Partition):
	// epochs are counted per partition, and compared within one.
	Partition int
}

// Item is one frame of a Delivery, for one user.
type Item struct {
	User string
	// Seq is the entry's seq in User's inbox, or 0 for an ephemeral frame:
	// never stored, written to the open connections at once.
	Seq uint64
	// Conn, for an ephemeral frame, is the one connection (router.Route's
	// Conn) to write it to; 0 means all of User's connections on the node.
	Conn uint64
	Head []byte
}

// DeliveryHandler receives deliveries for one node. It is called from the
// bus's goroutines and must not block for long: copy what it keeps.
type DeliveryHandler func(d *Delivery)

// StreamWatcher is an optional Bus ability: saying whether a stream has
// consumers. With it the Service skips building analytics events that
// nobody reads.
type StreamWatcher interface {
	// Consumed reports whether topic has at least one consumer now.
	Consumed(topic string) bool
}

// StreamHandler receives the events of a stream, one at a time, from one
// goroutine per Consume. value is valid only during the call.
type StreamHandler func(key string, value []byte)

// Streams carried by the Bus.
const (
	// StreamEvents is the analytics feed: one JSON object per user action
	// (docs/events.md), keyed by user.
	StreamEvents = "events"
	// StreamPresence carries the gateways' connection and activity events
	// (presence.Event, binary) to the presence (last seen) worker, keyed by
	// user.
	StreamPresence = "presence"
)

// Bus carries deliveries from the Service to the gateway nodes, and event
// streams from their producers to their consumers.
//
// Delivery is best effort: an entry whose delivery is lost is still in the
// inbox and reaches the device on its next sync or at the next gap the
// gateway detects. All methods are safe for concurrent use.
type Bus interface {
	// Emit appends value to stream topic; every consumer of the topic gets
	// the values of one key in the order they were emitted. It never
	// blocks, and does not retain value. The embedded bus drops (and
	// counts) values for a consumer that is too far behind.
	Emit(topic, key string, value []byte) error

	// Consume calls h for each value emitted to topic after Consume
	// returns, until cancel. Each consumer gets every value.
	Consume(topic string, h StreamHandler) (cancel func(), err error)

	// Publish hands d to the handler subscribed for node. It returns
	// without error when no handler is subscribed (the route is stale).
	// d is not retained after Publish returns.
	Publish(ctx context.Context, node string, d *Delivery) error

	// Subscribe installs h as the handler for node, replacing any other.
	// The returned cancel removes it.
	Subscribe(node string, h DeliveryHandler) (cancel func(), err error)
}
