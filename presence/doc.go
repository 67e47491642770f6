// Package presence keeps who is online and when each user was last seen,
// applies each user's privacy settings and contacts, and pushes presence
// frames to the connections that watch a user. It is part of the core: it
// consumes a small Store (backends/memory, backends/disk) and a Pusher (the
// gateway), and imports no backend.
//
// # Connections and events
//
// A user has devices, each with zero or more connections. The gateways
// report what happens to each connection as Events, which Service.Handle
// applies one at a time (events can travel as bytes: Event.AppendBinary and
// DecodeEvent). A connection starts inactive. Two kinds of events differ:
//
//   - App events say what the app or the network did: Connected, and
//     Disconnected of a connection that was not active. They do not move
//     last seen.
//   - User events say what the person did: Active (the app is in the
//     foreground and in use), Inactive (it went to the background), and
//     Disconnected of an active connection. Each sets last seen to the
//     event's time (last seen never goes back: an older event leaves it).
//
// A user is online while at least one of their connections is active, and
// goes offline when the last active one goes inactive or disconnects. While
// a user is online, their last seen is the time of their latest user event.
//
// # Privacy
//
// Each user chooses, separately for last seen and for online, who may see
// it: Everyone (the default), their Contacts, or Nobody. The rule is
// reciprocal: viewer V sees target T's last seen only if T's setting admits
// V (everyone; contacts: V is in T's contacts; nobody: no one) and V's own
// last-seen setting admits T in the same way: hiding your last seen hides
// others' from you. Online follows the same rule with the online settings.
// Everyone always sees their own presence.
//
// Contacts are one-directional, like a phone's address book: T having V in
// their contacts says nothing of V's contacts.
//
// Hidden values never leave the server: a frame carries only the parts its
// recipient may see, and a subscriber is pushed a frame only when what it
// may see changes, so the timing of pushes reveals nothing hidden either. A
// change of privacy or contacts re-evaluates both directions: the user's
// subscribers, and the users that the user's connections watch. Where
// several services share the store (one per gateway), the one that made
// a change tells the others with a Settings event, which they apply by
// reloading the user's settings and re-evaluating in the same way.
//
// # Subscriptions
//
// A connection subscribes to users (Service.Subscribe) and is pushed, for
// each newly watched user, a frame with what it may see now, then a frame at
// each change of that. The frame is
//
//	{"type":"presence","user":"bob","online":true,"last_seen":1764170000123}
//
// where "online" is present only if visible and "last_seen" (unix ms) only
// if visible and known. A connection watches at most
// Config.MaxSubscriptions users (ErrTooManySubscriptions). Each user keeps
// the set of connections watching them, so a change costs one pass over
// them and one frame encoding per distinct visible part, not per
// subscriber.
//
// # Durability
//
// Privacy settings and contacts are written to the Store before the call
// that changes them returns. Last seen is kept in memory and written by one
// background flusher every Config.FlushInterval (default one minute), for
// all users changed since the previous write in a few batched calls: each
// user at most once per interval, however often they come and go. Close
// writes everything still pending. So a graceful shutdown loses nothing,
// and a crash (kill -9, power loss) loses at most the last FlushInterval of
// last-seen changes; settings and contacts are never lost. Who is online is
// memory only: after a restart every user is offline until their
// connections report again.
//
// # Memory
//
// A user is in memory while they have a connection, a subscription or a
// subscriber, or a last seen not yet written; beyond that, up to
// Config.MaxUsers idle users are kept as a cache and others are read again
// from the Store when needed. Only Subscribe, the privacy and contacts
// calls and LastSeen read the Store; Handle never does.
//
// # Concurrency
//
// Every method of Service is safe for concurrent use. Users are spread
// over 64 locked shards; pushes about one user are made with that user's
// shard locked, so the frames about one user reach a connection in the
// order of the changes. Pusher.Push must therefore not block and must not
// call back into the Service.
package presence
