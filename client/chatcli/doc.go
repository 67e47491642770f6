// Package chatcli is the terminal chat behind `switchboard chat --user ID
// [--server URL]`: a line "bob: hello" sends "hello" to bob, incoming
// messages print as "[12:04:07] alice: hi", and the ticks of sent messages
// follow as they arrive:
//
//	bob: hello
//	[12:04:05] you → bob: hello  ✓
//	  ✓✓ delivered (msg to bob: "hello")
//	  ✓✓ read (msg to bob: "hello")
//	[12:04:07] bob: hi alice
//
// A terminal cannot portably redraw an earlier line, so receipts print a
// short status line naming the message. Incoming messages are acknowledged
// with a delivered receipt and, since the terminal shows them, a read
// receipt (Options.AutoRead).
//
// State (the outbox of unacked messages and the seq cursor) is kept per user
// under the OS user config directory, so lines typed while the server is
// unreachable are sent when it comes back, even after a restart.
package chatcli
