// Package redis is the routing directory on Redis: a router.Directory
// (and router.EpochSource) shared by every gateway and worker of a
// distributed deployment, through github.com/redis/rueidis.
//
// # Data model
//
// One hash per user, KeyPrefix+"rt:{user}" (default "sb:rt:{alice}"; the
// braces are a Cluster hash tag, so a user's keys share a slot). A field is
// one route, device NUL node NUL conn (decimal); its value is the route's
// epoch (decimal). A device or node holding NUL is refused
// (ErrInvalidRoute).
//
// A gateway node's liveness is a key KeyPrefix+"node:{node}" holding the
// node's incarnation, set with a TTL of 3 heartbeat intervals by the
// node's Keeper. Lookup returns only the routes whose node's key exists:
// a route lives as long as its node, kept alive by one write per node per
// interval, not one per route (which would also invalidate every cached
// user each interval). A Lookup that finds fields of dead nodes checks the
// nodes again, uncached, and deletes those fields, so hashes do not grow
// with every node a user was ever on. The hash of a user never looked up
// again after its nodes died is not swept.
//
// Epoch counters are KeyPrefix+"ep:{user}" (see NextEpoch).
//
// # Epochs
//
// Register runs one Lua script (atomic on the user's slot): with a
// positive epoch e it refuses, returning router.ErrSuperseded, when a
// field of the device holds a larger epoch, deletes the device's fields
// with a smaller positive epoch, and sets its own field. Epoch 0 just sets
// the field. The script returns the fields it deleted, and
// RegisterReplacing hands them to the caller as routes: for two ordered
// routes of a device, either the older one's Register is refused or the
// newer one's reports it, so the gateway of the newer connection can have
// the older one closed wherever it is (gateway, "replaced"). Epochs are compared as decimal strings, exact for every
// uint64. NextEpoch is INCR of the user's counter raised to at least the
// Redis server's clock in microseconds, so epochs taken after the counter
// was lost (restart without persistence, the counter's 24 h TTL) still
// exceed those of surviving routes; that holds while the server's clock
// does not go back (a failover to a replica whose clock lags can break
// it for the lag).
//
// # Local cache
//
// Lookup reads the user's hash (HGETALL) and each node's liveness key
// (GET) with DoCache: RESP3 client tracking, so Redis invalidates an
// entry when its key changes, expires or is deleted, and a Lookup of an
// unchanged user costs no round trip. Config.CacheTTL (default 1 minute)
// only bounds an entry's life against a lost invalidation; a liveness
// entry also never outlives its key's TTL (rueidis caps it with PTTL). A
// broken connection drops its cache.
//
// Register and Unregister return only after this client's cache has
// dropped the user's hash: the client keeps one connection per Redis node,
// and each write is pipelined with an EXISTS of the same key, whose reply
// Redis sends after the invalidation the write caused. So within one
// process a Lookup after Register (or Unregister) returned sees it, as
// router.Directory requires. Another process sees it once the
// invalidation reaches it: about a network one-way trip after the write
// (a few milliseconds on loopback under -race in the tests). The
// online/offline race argument (docs/design.md) needs that delay to be
// shorter than a connection's inbox read plus the commit of a new entry;
// when it is not, the entry reaches the connection by its next gap fill
// or sync instead of live.
//
// # Heartbeat and rebuild
//
// A gateway runs a Keeper (Directory.Keeper, then Keeper.Run) for its
// node. Each beat sets the liveness key with SET … PX … GET. If the old
// value was missing (Redis restarted without persistence, or the node
// stalled past the TTL) or another incarnation, the Keeper registers
// every route the node holds (from its callback, pipelined), so routes are
// back within one interval. The key is set before the routes, because a
// Lookup that saw routes of a dead node would delete them; a Lookup's
// sweep racing the rebuild can still delete some, so a rebuild is repeated
// on the next beat. Routes of a node's earlier process cannot be told from
// its own (the incarnation is in the liveness key, not in the fields):
// give every gateway process its own node id (the gateway's default,
// host name, pid and a random suffix, does).
//
// # Errors
//
// Errors are wrapped with %w. When Redis cannot be reached, Register,
// Unregister, Lookup (unless it is answered from the cache) and NextEpoch
// fail, and the caller decides: the gateway refuses the connection when
// Register fails. New fails if Redis cannot be reached at all.
//
// All methods are safe for concurrent use.
package redis
