package chat

import "context"

// Delivery tells the gateway node that holds a user's connections that an
// entry is now durable in that user's inbox.
type Delivery struct {
	User  string
	Seq   uint64
	Frame []byte // the entry's frame; valid only during the handler call
}

// DeliveryHandler receives deliveries for one node. It is called from the
// bus's goroutines and must not block for long: copy what it keeps.
type DeliveryHandler func(d *Delivery)

// Bus carries deliveries from the Service to the gateway nodes.
//
// Delivery is best effort: an entry whose delivery is lost is still in the
// inbox and reaches the device on its next sync or at the next gap the
// gateway detects. Publish and Subscribe are safe for concurrent use.
type Bus interface {
	// Publish hands d to the handler subscribed for node. It returns
	// without error when no handler is subscribed (the route is stale).
	// d is not retained after Publish returns.
	Publish(ctx context.Context, node string, d *Delivery) error

	// Subscribe installs h as the handler for node, replacing any other.
	// The returned cancel removes it.
	Subscribe(node string, h DeliveryHandler) (cancel func(), err error)
}
