// Package gateway is Switchboard's WebSocket gateway: gnet event loops
// (epoll, no goroutine per connection) that upgrade HTTP requests with
// gobwas/ws, speak RFC 6455 and protocol v1, and hand requests to the chat
// Service.
//
// # Threads
//
// Each gnet event loop owns its connections: it parses their frames, writes
// to them and sweeps them for timeouts. Nothing blocking runs on a loop;
// requests go to the chat Service (Submit never blocks) or to the hub.
//
// The hub is a fixed set of goroutines, each owning a shard of users: it
// registers routes, serves sync, and orders live deliveries per connection
// (seq gaps are filled from the store, so a device sees its inbox in order).
//
// Other goroutines never write to a socket: they push frames into the
// owning loop's mailbox, which the loop drains in one wake-up. That keeps
// gnet's non-concurrent Conn methods on their loop and costs one wake-up per
// burst rather than one per frame.
//
// # Bounds
//
// Every quantity a peer controls is bounded by Config: handshake bytes and
// time, frame and message size (checked on the declared length before any
// buffering), fragments per message, messages per second, and outbound
// bytes queued (a peer that does not read is closed with 4000; its messages
// stay in its inbox for the next sync).
package gateway
