package chatcli

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/client/internal/fakeserver"
)

func onDevice(token string) func(*Options) { return func(o *Options) { o.Token = token } }

// count returns how many lines of the screen match re.
func (tm *term) count(re string) int {
	return len(regexp.MustCompile(re).FindAllString(tm.out.String(), -1))
}

// A message shows once on the device that sent it (its ack line), once on
// the user's other device (as sent from there), and its ticks on both; no
// device sends receipts for the user's own messages.
func TestOwnMessagesShownOnce(t *testing.T) {
	fs := fakeserver.New(t)
	phone := startChat(t, fs, "alice", onDevice("alice#phone"))
	laptop := startChat(t, fs, "alice", onDevice("alice#laptop"))
	bob := startChat(t, fs, "bob")
	for _, tm := range []*term{phone, laptop, bob} {
		tm.waitFor(`(?m)^connected$`)
	}
	waitUntil(t, func() bool { return fs.Connected("alice") == 2 })

	phone.typeLine("bob: hi from my phone")
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] alice: hi from my phone$`)
	laptop.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] you → bob: hi from my phone  \(from another device\)$`)
	// The read tick comes after the copy in alice's inbox: once it shows,
	// each device has handled the copy.
	for _, tm := range []*term{phone, laptop} {
		tm.waitFor(`(?m)^  ✓✓ read \(msg to bob: "hi from my phone"\)$`)
		if n := tm.count(`you → bob: hi from my phone`); n != 1 {
			t.Fatalf("the message shows %d times, want once:\n%s", n, tm.out.String())
		}
	}
	if !strings.Contains(phone.out.String(), "you → bob: hi from my phone  ✓\n") {
		t.Fatalf("the phone's line is not the ack's:\n%s", phone.out.String())
	}
	fs.With(func() {
		if n := fs.Received["alice"]["receipt"]; n != 0 {
			t.Errorf("alice sent %d receipts for her own message", n)
		}
	})
}

func TestGroupChat(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	bob := startChat(t, fs, "bob")
	carol := startChat(t, fs, "carol")
	dave := startChat(t, fs, "dave")
	for _, tm := range []*term{alice, bob, carol, dave} {
		tm.waitFor(`(?m)^connected$`)
	}

	alice.typeLine("/group new Trip bob carol")
	alice.waitFor(`(?m)^now talking in \[Trip\]$`)
	alice.waitFor(`(?m)^  \[Trip\] you created the group: you, bob, carol$`)
	bob.waitFor(`(?m)^  \[Trip\] alice created the group: alice, you, carol$`)

	alice.typeLine("hello all")
	alice.waitFor(`(?m)^\[12:04:05\] you → \[Trip\]: hello all  ✓$`)
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] \[Trip\] alice: hello all$`)
	carol.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] \[Trip\] alice: hello all$`)
	alice.waitFor(`(?m)^  ✓✓ delivered to everyone \(msg to \[Trip\]: "hello all"\)\n(.*\n)*  ✓✓ read by everyone \(msg to \[Trip\]: "hello all"\)$`)
	if n := alice.count(`you → \[Trip\]: hello all`); n != 1 {
		t.Fatalf("alice's group message shows %d times:\n%s", n, alice.out.String())
	}

	alice.typeLine("/info")
	alice.waitFor(`(?m)^  "hello all" → \[Trip\]: bob ✓✓ read [^,]+, carol ✓✓ read .+$`)
	alice.typeLine("/members")
	alice.waitFor(`(?m)^  \[Trip\]: you \(admin\), bob, carol$`)

	// Only admins change the members; everyone sees the change.
	bob.typeLine("/group trip")
	bob.waitFor(`(?m)^now talking in \[Trip\]$`)
	bob.typeLine("/add mallory")
	bob.waitFor(`(?m)^  /add: .* \(not_admin\)$`)
	alice.typeLine("/add dave")
	carol.waitFor(`(?m)^  \[Trip\] alice added dave$`)
	alice.waitFor(`(?m)^  \[Trip\] you added dave$`)

	bob.typeLine("hi from bob")
	alice.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] \[Trip\] bob: hi from bob$`)
	// Dave learns the name of the group he was added to (in the
	// background: the lines until then show its id).
	dave.waitFor(`(?m)^  \[\w+…\] alice added you$`)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !strings.Contains(dave.out.String(), "] [Trip] bob: ping"); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("dave never learned the group's name:\n%s", dave.out.String())
		}
		bob.typeLine(fmt.Sprint("ping ", i))
		dave.waitFor(fmt.Sprintf(`bob: ping %d\n`, i))
	}
	if members, _ := fs.GroupMembers(groupOf(t, fs, "alice")); strings.Join(members, ",") != "alice,bob,carol,dave" {
		t.Fatalf("members %v", members)
	}

	carol.typeLine("/group Trip")
	carol.typeLine("/leave")
	alice.waitFor(`(?m)^  \[Trip\] carol left$`)
	carol.typeLine("/members")
	carol.waitFor(`(?m)^  /members: not in a group; /group <name> first$`)
	alice.typeLine("/remove dave")
	alice.waitFor(`(?m)^  \[Trip\] you removed dave$`)
	alice.typeLine("/rename Holidays")
	bob.waitFor(`(?m)^  \[Trip\] alice renamed the group to "Holidays"$`)
	alice.typeLine("/groups")
	alice.waitFor(`(?m)^  \[Holidays\] \w+ \(2 members\)$`)
	alice.typeLine("/group nope")
	alice.waitFor(`(?m)^  /group: no group of yours is named "nope" or has that id$`)
	t.Logf("alice's screen:\n%s", alice.out.String())
}

// groupOf returns the one group user is in.
func groupOf(t *testing.T, fs *fakeserver.Server, user string) string {
	t.Helper()
	c, err := client.New(client.Config{URL: fs.URL, Token: user + "#probe"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, c.Connected)
	groups, err := c.Groups(ctx)
	if err != nil || len(groups) != 1 {
		t.Fatalf("groups of %s: %v, %v", user, groups, err)
	}
	return groups[0].ID
}

func TestPresenceAndPrivacyCommands(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	bob := startChat(t, fs, "bob")
	alice.waitFor(`(?m)^connected$`)
	bob.waitFor(`(?m)^connected$`)
	// Each chat says it is active when it starts.
	waitUntil(t, func() bool {
		n := 0
		fs.With(func() { n = fs.Received["bob"]["active"] })
		return n == 1
	})

	alice.typeLine("/to bob")
	alice.waitFor(`(?m)^now talking to bob$`)
	alice.waitFor(`(?m)^  bob is online$`)
	alice.typeLine("just a line")
	alice.waitFor(`(?m)^\[12:04:05\] you → bob: just a line  ✓$`)

	// Bob leaves: inactive, then the connection closes.
	bob.typeLine("/quit")
	alice.waitFor(`(?m)^  bob was last seen (at|on \d+ \w+ at) \d\d:\d\d$`)
	fs.With(func() {
		if n := fs.Received["bob"]["inactive"]; n != 1 {
			t.Errorf("bob's chat sent %d inactive frames at /quit, want 1", n)
		}
	})

	alice.typeLine("/who carol")
	alice.waitFor(`(?m)^  carol is offline$`)
	alice.typeLine("/privacy last_seen nobody")
	alice.waitFor(`(?m)^  privacy: last seen nobody, online everyone$`)
	alice.typeLine("/privacy online friends")
	alice.waitFor(`(?m)^  /privacy: .* \(bad_request\)$`)
	alice.typeLine("/privacy")
	alice.waitFor(`(?m)^  privacy: last seen nobody, online everyone\n(.*\n)*  privacy: last seen nobody, online everyone$`)
	alice.typeLine("/privacy everything")
	alice.waitFor(`(?m)^  usage: /privacy \[last_seen\|online everyone\|contacts\|nobody\]$`)

	alice.typeLine("/contacts add bob carol")
	alice.waitFor(`(?m)^  contacts: bob, carol$`)
	alice.typeLine("/contacts remove carol")
	alice.waitFor(`(?m)^  contacts: bob$`)
	alice.typeLine("/contacts remove bob")
	alice.waitFor(`(?m)^  no contacts$`)

	alice.typeLine("/devices")
	alice.waitFor(`(?m)^  devices connected: default \(this one\)$`)
}

func TestTypingShown(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	alice.waitFor(`(?m)^connected$`)
	c, err := client.New(client.Config{URL: fs.URL, Token: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done; c.Close() }()
	waitUntil(t, c.Connected)
	for _, stop := range []bool{false, false, true, false} {
		if err := c.TypingTo(ctx, "alice", stop); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return alice.count(`(?m)^  bob is typing…$`) == 2 })
	if _, err := c.Send(ctx, "alice", "there"); err != nil {
		t.Fatal(err)
	}
	alice.waitFor(`bob: there`)
	if n := alice.count(`(?m)^  bob is typing…$`); n != 2 {
		t.Fatalf("typing shown %d times, want 2 (once per start):\n%s", n, alice.out.String())
	}
}

func TestEveryCommandIsInHelp(t *testing.T) {
	for name := range commands {
		if !strings.Contains(helpText, "\n"+name) {
			t.Errorf("%s is not in the help text", name)
		}
	}
}

func TestCommandUsage(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice")
	alice.waitFor(`(?m)^connected$`)
	for line, want := range map[string]string{
		"/to":           `  usage: /to <user>`,
		"/group":        `  usage: /group new <name> <user>…  or  /group <name or id>`,
		"/group new":    `  usage: /group new <name> <user>…`,
		"/add":          `  usage: /add <user>…`,
		"/add bob":      `  /add: not in a group; /group <name> first`,
		"/info 3":       `  /info: you have sent 0 messages since the chat started`,
		"/who":          `  usage: /who <user>`,
		"/contacts zap": `  usage: /contacts [list | add <user>… | remove <user>…]`,
	} {
		alice.typeLine(line)
		alice.waitFor(`(?m)^` + regexp.QuoteMeta(want) + `$`)
	}
}
