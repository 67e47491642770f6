package router

import (
	"context"
	"errors"
)

// Route says that one device of a user is connected to a gateway node.
type Route struct {
	User   string
	Device string
	Node   string // gateway node id
	Conn   uint64 // connection id, unique within the node

	// Epoch orders the connections of one device. 0 means unordered: the
	// route coexists with the device's other routes until it is
	// unregistered. A positive epoch (from an EpochSource, taken when the
	// connection authenticates) supersedes: Register of a route with epoch
	// e removes the device's routes with a positive epoch below e, and is
	// refused with ErrSuperseded when the device already has a route with
	// an epoch above e, so a stale (late, retried) Register never
	// overwrites a newer connection's route. Routes with epoch 0 are
	// neither removed by nor refuse an ordered Register.
	Epoch uint64
}

// ErrSuperseded is returned (possibly wrapped) by Directory.Register when
// the device already has a route with a larger epoch: the connection
// registering is older than one already registered and should be closed.
// Nothing was recorded.
var ErrSuperseded = errors.New("router: route superseded by a newer epoch")

// Directory maps users to the gateway nodes holding their connections.
// All methods are safe for concurrent use.
type Directory interface {
	// Register records r, ordered against the device's other routes by
	// r.Epoch (see Route). Registering the same route twice is harmless; a
	// route is identified by User, Device, Node and Conn, so registering it
	// again with another epoch replaces its epoch. When Register returns
	// nil, every later Lookup of r.User sees r (until it is unregistered
	// or superseded).
	Register(ctx context.Context, r Route) error

	// Unregister removes the route with r's User, Device, Node and Conn,
	// whatever its epoch. Removing a route that is not there is harmless.
	Unregister(ctx context.Context, r Route) error

	// Lookup appends the routes of user to dst and returns it.
	Lookup(ctx context.Context, user string, dst []Route) ([]Route, error)
}

// Prefetcher is an optional ability of a Directory that caches routes
// locally (backends/redis): loading the routes of many users into its
// cache at once, in one round trip, so that the Lookups of each that
// follow are served locally. The chat Service calls it with the users of
// a batch before delivering the batch's entries one by one.
type Prefetcher interface {
	// Prefetch loads the routes of users into the local cache. An error
	// is only advisory: the Lookups that follow read what they must.
	Prefetch(ctx context.Context, users []string) error
}

// EpochSource is an optional ability of a Directory: it hands out epochs
// for Route.Epoch. A gateway takes one when a connection authenticates and
// registers the connection's route with it.
type EpochSource interface {
	// NextEpoch returns a positive epoch for a connection of user's
	// device, larger than every epoch it returned before for that user
	// and device. Safe for concurrent use.
	NextEpoch(ctx context.Context, user, device string) (uint64, error)
}
