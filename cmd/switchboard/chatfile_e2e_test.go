package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/switchboard/switchboard/client"
	"github.com/switchboard/switchboard/internal/testserver"
)

// TestChatSendAndSaveFile: alice /sends a file to bob in `switchboard
// chat`'s terminal against the binary; bob sees it with its size and kind,
// /saves it, and gets the same bytes; a second /save does not overwrite;
// carol, who was not sent it, cannot download it.
func TestChatSendAndSaveFile(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	alice := startChatTerm(t, srv, "alice", "")
	bob := startChatTerm(t, srv, "bob", "")

	data := make([]byte, 300<<10)
	_, _ = rand.Read(data)
	path := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.typeLine("/to bob")
	alice.typeLine("/send " + path + " the numbers")
	alice.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] you → bob: 📎 data\.bin \(300 KB\) the numbers  ✓$`)
	bob.waitFor(`(?m)^\[\d\d:\d\d:\d\d\] alice: 📎 data\.bin \(300 KB, file\) \[/save 1\] the numbers$`)
	alice.waitFor(`(?m)^  ✓✓ read \(msg to bob: "📎 data\.bin \(300 KB\) the numbers"\)$`)

	dir := t.TempDir()
	saved := filepath.Join(dir, "data.bin")
	bob.typeLine("/save 1 " + dir)
	bob.waitFor(`(?m)^  saved data\.bin \(300 KB\) as ` + regexp.QuoteMeta(saved) + `$`)
	got, err := os.ReadFile(saved)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob saved %d bytes (%v), want the %d alice sent", len(got), err, len(data))
	}
	bob.typeLine("/save 1 " + dir)
	bob.waitFor(`(?m)^  /save: ` + regexp.QuoteMeta(saved) + ` exists; not overwritten$`)

	// The asset, as bob's other device gets it, is not carol's to read.
	carol, err := client.New(client.Config{URL: srv.URL(), AssetsURL: srv.AssetsURL(),
		Token: testserver.Token(t, srv.DataDir(), "carol", "")})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	_, bobLog := startLogged(t, srv, testserver.Token(t, srv.DataDir(), "bob", "tablet"))
	msg := await(t, bobLog, "the file on bob's other device", func(m client.Message) bool { return m.Attachment != nil })
	var ae *client.AssetError
	if err := carol.Download(context.Background(), msg.Attachment.AssetID, io.Discard); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("carol's download: %v, want 404", err)
	}
}
