package chatcli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/switchboard/switchboard/client/internal/fakeserver"
)

// pngBytes sniff as an image.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProfileCommands(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice", withAssets(fs))
	bob := startChat(t, fs, "bob", withAssets(fs))
	alice.waitFor(`(?m)^connected$`)
	bob.waitFor(`(?m)^connected$`)

	alice.typeLine("/profile")
	alice.waitFor(`(?m)^  you have no profile; /profile name <text> sets your name$`)
	alice.typeLine("/profile name Alice Liddell")
	alice.waitFor(`(?m)^  you: Alice Liddell$`)
	alice.typeLine("/profile about down the hole")
	alice.waitFor(`(?m)^  you: Alice Liddell\n    about: down the hole$`)
	alice.typeLine("/photo " + writeFile(t, "notes.txt", []byte("not a picture")))
	alice.waitFor(`(?m)^  /photo: .*notes\.txt is not an image \(text/plain.*\)$`)
	alice.typeLine("/photo " + writeFile(t, "me.png", pngBytes))
	alice.waitFor(`(?m)^  you: Alice Liddell\n    about: down the hole\n    photo: A\d+ \[/save 1\]$`)

	bob.typeLine("/whois alice")
	bob.waitFor(`(?m)^  alice: Alice Liddell\n    about: down the hole\n    photo: A\d+ \[/save 1\]$`)
	dir := t.TempDir()
	bob.typeLine("/save 1 " + dir)
	saved := filepath.Join(dir, "alice-photo")
	bob.waitFor(`(?m)^  saved alice-photo \(16 B\) as ` + regexp.QuoteMeta(saved) + `$`)
	if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, pngBytes) {
		t.Fatalf("saved photo %q, %v", got, err)
	}
	bob.typeLine("/whois carol")
	bob.waitFor(`(?m)^  carol has no profile$`)

	for line, want := range map[string]string{
		"/profile zap":  `  usage: /profile [name|about <text>]`,
		"/profile name": `  usage: /profile [name|about <text>]`,
		"/whois":        `  usage: /whois <user>`,
		"/photo":        `  usage: /photo <path>`,
		"/icon":         `  usage: /icon <path>`,
		"/icon x.png":   `  /icon: not in a group; /group <name> first`,
	} {
		alice.typeLine(line)
		alice.waitFor(`(?m)^` + regexp.QuoteMeta(want) + `$`)
	}
}

func TestGroupIconCommand(t *testing.T) {
	fs := fakeserver.New(t)
	alice := startChat(t, fs, "alice", withAssets(fs))
	bob := startChat(t, fs, "bob", withAssets(fs))
	alice.waitFor(`(?m)^connected$`)
	bob.waitFor(`(?m)^connected$`)
	icon := writeFile(t, "trip.png", pngBytes)

	alice.typeLine("/group new Trip bob")
	alice.waitFor(`(?m)^now talking in \[Trip\]$`)
	bob.waitFor(`(?m)^  \[Trip\] alice created the group: alice, you$`)
	alice.typeLine("/icon " + icon)
	alice.waitFor(`(?m)^  \[Trip\] you changed the group icon$`)
	bob.waitFor(`(?m)^  \[Trip\] alice changed the group icon$`)

	bob.typeLine("/group Trip")
	bob.waitFor(`(?m)^now talking in \[Trip\]$`)
	bob.typeLine("/icon " + icon)
	bob.waitFor(`(?m)^  /icon: .* \(not_admin\)$`)
}
