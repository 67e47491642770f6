package router

import "context"

// Route says that one device of a user is connected to a gateway node.
type Route struct {
	User   string
	Device string
	Node   string // gateway node id
	Conn   uint64 // connection id, unique within the node
}

// Directory maps users to the gateway nodes holding their connections.
// All methods are safe for concurrent use.
type Directory interface {
	// Register records r. Registering the same route twice is harmless.
	// When Register returns, every later Lookup of r.User sees r.
	Register(ctx context.Context, r Route) error

	// Unregister removes r (matched on all fields). Removing a route that
	// is not there is harmless.
	Unregister(ctx context.Context, r Route) error

	// Lookup appends the routes of user to dst and returns it.
	Lookup(ctx context.Context, user string, dst []Route) ([]Route, error)
}
