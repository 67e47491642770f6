// Package client is a Go client for Switchboard's WebSocket protocol v1
// (GET /v1/ws): for apps, for the switchboard CLI, and for tests of the
// server.
//
// # Use
//
//	c, err := client.New(client.Config{
//		URL:      "ws://127.0.0.1:8080/v1/ws",
//		Token:    token,
//		StateDir: dir, // "" keeps state in memory
//		Handler: func(ev client.Event) {
//			switch e := ev.(type) {
//			case client.Message:     // show e.Body (skip e.ClientID != "": its Ack shows it); then c.MarkDelivered / c.MarkRead
//			case client.Ack:         // e.ClientID is durable on the server as e.MsgID
//			case client.Receipt:     // e.By (or, with e.All, all of e.Group) has e.Status'd e.MsgIDs
//			case client.GroupEvent:  // e.By added e.Members to e.Group, …
//			case client.Presence:    // e.User is online, or was last seen at e.LastSeen
//			case client.Typing:      // e.From is typing to this user, or in e.Group
//			case *client.ServerError:
//			case client.StateChange: // connecting, connected, disconnected (e.Err, e.RetryIn)
//			}
//		},
//	})
//	go c.Run(ctx)                 // connects, reconnects, until ctx is done or Close
//	id, err := c.Send(ctx, "bob", "hello") // works offline; durable when it returns
//	defer c.Close()
//
//	gid, err := c.CreateGroup(ctx, "Trip", "bob", "carol") // a request: needs a connection
//	id, err = c.SendGroup(ctx, gid, "hello all")           // durable, like Send
//
// # Your other devices
//
// The server copies every message a user sends into the user's own inbox,
// so that all the user's devices show it: a Message with Own set. The
// device that sent it knows it by ClientID (and has its Ack); the others
// show it as sent by the user. The Client needs the user's id for this:
// Config.User, or the token's "sub" claim. It sends no receipts for the
// user's own messages.
//
// # Requests
//
// Group management, msg.info, presence, privacy, contacts, devices,
// typing and profiles are requests: Request sends a frame and waits for
// the reply with its id, and typed helpers (CreateGroup, GroupInfo,
// MsgInfo, Subscribe, SetPrivacy, Devices, SetProfile, Profiles,
// SetGroupIcon, …) wrap it. They are not queued: they need a
// connection (ErrNotConnected otherwise), and a refusal is a *ServerError
// with the protocol's code. The two pieces of state the server keeps per
// connection, SetActive and Subscribe, are remembered by the Client and
// restored on every connect.
//
// # Files
//
// Files go over HTTP to the asset API (Config.AssetsURL; by default the
// WebSocket host's port 8081), never through the WebSocket. SendFile and
// SendGroupFile upload (UploadFile, Upload: streamed, not buffered) and
// then queue a send carrying the asset id, durably like Send: a resend
// after a reconnect or a restart reuses the id, never uploads again.
// SendAttachment forwards an asset already uploaded or received. A
// received Message has Attachment set (as the server describes the file);
// Download writes its bytes. Refusals of the asset API are *AssetError.
//
// # Delivery guarantees
//
// Sending is at-least-once up to the server and exactly-once after it: every
// Send and receipt is an outbox entry with a random client id, kept (on disk
// with StateDir, fsynced before Send returns) until the server acks that id,
// and resent with the same id, in the original order, on every reconnect.
// The server dedupes by id, so a resend after a lost ack yields the same
// msg_id and no second delivery. Entries the server refuses with a
// retriable code (rate_limited, overloaded, internal, shutting_down) are
// retried after a jittered delay; other refusals drop the entry and are
// reported as a *ServerError with its ID.
//
// Order is kept: up to MaxInFlight entries are pipelined, and on a "retry
// later" all sending pauses and the window restarts at one entry, growing
// back by one per window of acks, so refused entries go out again before
// the ones after them. Only a rate limiter that refills in the middle of a
// pipelined window can still let a later entry overtake a refused one;
// MaxInFlight 1 rules that out at the cost of a round trip per entry.
//
// Receiving is in seq order, each seq handed to the Handler once per
// process. Inbox entries are messages, receipts and group events
// (GroupEvent); presence and typing frames have no seq and are handed over
// as they come. The Client keeps a cursor, the highest seq handed over, and on
// every connect asks for everything after it ("sync"). A frame at or below
// the cursor is a duplicate and dropped; a frame past cursor+1 means
// entries were missed, so it is dropped too and a sync from the cursor
// fetches them in order. The cursor advances only after the Handler has
// returned, and is saved (atomically, at the end of each burst and on
// disconnect) after it advances: after a crash it may lag, never lead, so
// the Handler may see the last few entries again after a restart (dedupe
// by MsgID if that matters). Entries the server no longer has (retention)
// are skipped once a sync shows they are gone.
//
// # The Handler
//
// Config.Handler is called from the Client's goroutines, one call at a
// time, in the order events happen: a connection's StateChange to connected
// comes before its messages, and its disconnected after them. It may call
// Send, SendGroup, MarkDelivered, MarkRead, Pending, Cursor and User, but
// not Close, Flush, Request or the helpers built on Request (they wait for
// work that the blocked Handler holds up: hand them to another goroutine).
// It may block: the Client then stops reading from
// the connection, and if it blocks long the server closes it with 4000
// slow consumer. Nothing is lost that way: the entries stay in the
// server's inbox and come back with the next sync.
//
// # State directory
//
// StateDir holds three files: "outbox" (an append-only log of
// checksummed JSON records, rewritten without acked entries when they
// pile up), "cursor" (the cursor in decimal, replaced atomically) and
// "lock" (flock'ed, so two Clients never share a directory). Use one
// directory per account.
//
// # Errors
//
// Connection failures are retried by Run and reported in StateChange.Err:
// a *CloseError carries the WebSocket close code (4000 slow consumer, 1012
// service restart, …), a *HandshakeError the HTTP status of a refused
// upgrade (errors.Is(err, ErrUnauthorized) for 401). IsRetriable
// classifies any of them.
package client
