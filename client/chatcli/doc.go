// Package chatcli is the terminal chat behind `switchboard chat --user ID
// [--server URL]`: a line "bob: hello" sends "hello" to bob and makes bob
// the conversation, so that later lines without a "name:" go to bob too.
// Incoming messages print as "[12:04:07] alice: hi", group messages with
// the group and the sender ("[12:04:07] [Trip] carol: hi"), and the ticks
// of sent messages follow as they arrive:
//
//	bob: hello
//	now talking to bob
//	  bob is online
//	[12:04:05] you → bob: hello  ✓
//	  ✓✓ delivered (msg to bob: "hello")
//	  ✓✓ read (msg to bob: "hello")
//	[12:04:07] bob: hi alice
//	/group new Trip bob carol
//	  [Trip] you created the group: you, bob, carol
//	now talking in [Trip]
//	hello all
//	[12:04:09] you → [Trip]: hello all  ✓
//	  ✓✓ delivered to everyone (msg to [Trip]: "hello all")
//	/info
//	  "hello all" → [Trip]: bob ✓✓ read 12:04, carol ✓✓ delivered 12:04
//
// A terminal cannot portably redraw an earlier line, so receipts print a
// short status line naming the message; a group message gets its ✓✓ once
// every member has it, and /info shows each member's. Incoming messages
// are acknowledged with a delivered receipt and, since the terminal shows
// them, a read receipt (Options.AutoRead).
//
// Messages the user sends from another device show once, marked "(from
// another device)", with their ticks; those sent here show once, by their
// ack line.
//
// The peer of the conversation (and anyone /who names) is watched: the
// screen says when they come online or were last seen, as far as their
// privacy settings and the user's allow (/privacy). The chat tells the
// server the user is active when it starts and as they type, and inactive
// when it ends. /help lists the commands: groups (/group, /add, /remove,
// /leave, /members, /rename, /groups, /icon), /info, /who, /privacy,
// /contacts, /devices, profiles (/profile shows or sets the user's name
// and about line, /photo <path> uploads an image as the profile photo,
// /whois <user> shows someone's), and files: /send <path> [caption]
// uploads a file and sends it in the conversation ("you → bob: 📎
// plan.pdf (12 KB) caption  ✓"); received files show as "📎 plan.pdf
// (12 KB, file) [/save 3]", and /save 3 [dir] downloads one into dir
// (default: the current directory) under its name made safe, never
// overwriting a file. A profile photo /whois shows is numbered for /save
// too.
//
// State (the outbox of unacked messages and the seq cursor) is kept per user
// under the OS user config directory, so lines typed while the server is
// unreachable are sent when it comes back, even after a restart.
package chatcli
