// Package protocol is Switchboard's wire protocol v1: the JSON frames that
// clients and the server exchange over WebSocket text frames
// (docs/protocol.md).
//
// The Decoder parses client frames without allocating: the byte slices of a
// decoded Request alias the input (or, for strings with escapes, the
// decoder's scratch buffer) and are valid until the next Decode. Encoders
// follow the AppendTo style: each Append* function appends one complete
// server frame to dst and returns the extended slice.
//
// A Decoder is not safe for concurrent use; keep one per event loop.
// Append* functions are pure and safe everywhere.
package protocol
