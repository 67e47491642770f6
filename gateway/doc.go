// Package gateway is Switchboard's WebSocket gateway: gnet event loops
// (epoll, no goroutine per connection) that upgrade HTTP requests with
// gobwas/ws, speak RFC 6455 and protocol v1, and hand requests to the chat
// Service.
//
// # Threads
//
// Each gnet event loop owns its connections: it parses their frames, writes
// to them, keeps each one's delivery cursor and sweeps them for timeouts.
// Nothing blocking runs on a loop; requests go to the chat Service (Submit
// never blocks) and blocking work about a connection (route registration,
// inbox reads for syncs and gap fills) goes to the hub's worker pool.
//
// Other goroutines never write to a socket: they push items into the owning
// loop's mailbox, which the loop drains in one wake-up, gathering the frames
// for each connection into one write or writev. A live delivery goes from
// the Service's post stage straight into the mailbox of each loop holding
// one of the user's connections (the hub's registry finds them); the loop
// writes it if it follows the connection's cursor, drops it if it is a
// duplicate, and asks a worker to read the gap from the store otherwise.
//
// # Bounds
//
// Every quantity a peer controls is bounded by Config: handshake bytes and
// time, frame and message size (checked on the declared length before any
// buffering), fragments per message, messages per second, and outbound
// bytes queued (a peer that does not read is closed with 4000; its messages
// stay in its inbox for the next sync).
//
// # Routes, epochs and replaced connections
//
// A hub worker registers each authenticated connection's route in the
// router.Directory, which may be shared by several gateway processes
// (backends/redis); each gateway needs its own Config.Node (the default is
// unique per process). When the Directory is a router.EpochSource the
// connection takes an epoch there first, and a device has one
// connection: a newer connection of the device closes the older ones with
// 4003 (replaced), on this node from the registry and on other nodes by a
// control item published to their node on the Bus (replace.go); a
// connection whose Register is refused as superseded (a newer one
// registered first) is closed with 4003 itself. max_devices counts the
// user's devices on this node (registry) and on the others (a Lookup at
// registration). Two new devices registering at the same instant on two
// nodes may both pass (each Lookup precedes the other's Register); the
// limit then holds again from the next connection. Gateway.Routes lists
// the node's routes with their epochs, for a redis.Keeper to rebuild them.
// A Directory that cannot be reached refuses new connections with 1013.
package gateway
