package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func withAssets(fs *fakeServer) func(*Config) {
	return func(c *Config) { c.AssetsURL = fs.AssetsURL }
}

func TestDefaultAssetsURL(t *testing.T) {
	for ws, want := range map[string]string{
		"ws://127.0.0.1:8080/v1/ws":     "http://127.0.0.1:8081/v1/assets",
		"wss://chat.example/v1/ws":      "https://chat.example:8081/v1/assets",
		"ws://[::1]:9000/v1/ws":         "http://[::1]:8081/v1/assets",
		"http://127.0.0.1:8080/v1/ws":   "",
		"ws:///no-host":                 "",
		"wss://chat.example:443/v1/ws":  "https://chat.example:8081/v1/assets",
		"ws://localhost:8080/v1/ws?x=1": "http://localhost:8081/v1/assets",
	} {
		if got := defaultAssetsURL(ws); got != want {
			t.Errorf("defaultAssetsURL(%q) = %q, want %q", ws, got, want)
		}
	}
	cfg := Config{Token: "alice"}
	cfg.setDefaults()
	if cfg.AssetsURL != "http://127.0.0.1:8081/v1/assets" {
		t.Errorf("default AssetsURL = %q", cfg.AssetsURL)
	}
	bad := Config{Token: "alice", AssetsURL: "ftp://x/v1/assets"}
	bad.setDefaults()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AssetsURL") {
		t.Errorf("Validate of an ftp AssetsURL: %v", err)
	}
}

// A file sent while offline is uploaded once, kept in the outbox with its
// asset id, and after a restart sent with that id: no second upload. The
// recipient gets the attachment as the server describes it and downloads
// the bytes; someone else may not.
func TestSendFileSurvivesRestart(t *testing.T) {
	fs := newFakeServer(t)
	dir := t.TempDir()
	bob := startClient(t, fs, "bob", "", withAssets(fs))
	data := bytes.Repeat([]byte("%PDF-1.4 the plan\n"), 1000)
	path := filepath.Join(t.TempDir(), "plan.pdf")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	a1 := newTestClient(t, fs, "alice", dir, withAssets(fs))
	id, att, err := a1.SendFile(context.Background(), "bob", path, "the plan")
	if err != nil {
		t.Fatal(err)
	}
	if att.AssetID == "" || att.Size != int64(len(data)) || att.Name != "plan.pdf" || att.MIME != "application/pdf" || att.Kind != "file" {
		t.Fatalf("uploaded %+v", att)
	}
	a1.stop(t)

	a2 := newTestClient(t, fs, "alice", dir, withAssets(fs))
	a2.start(t)
	waitFor(t, "the ack", func() bool { return a2.rec.nAcks() == 1 })
	waitFor(t, "bob's message", func() bool { return bob.rec.nMsgs() == 1 })
	_, _, acks := a2.rec.snapshot()
	if acks[0].ClientID != id || acks[0].Attachment == nil || *acks[0].Attachment != att || acks[0].Body != "the plan" {
		t.Fatalf("ack %+v, want client id %s and attachment %+v", acks[0], id, att)
	}
	fs.With(func() {
		if fs.Uploads["alice"] != 1 {
			t.Errorf("alice uploaded %d times, want once", fs.Uploads["alice"])
		}
		for _, a := range fs.SentAssets["alice"] {
			if a != att.AssetID {
				t.Errorf("a send carried asset %q, want %q", a, att.AssetID)
			}
		}
	})
	msgs, _, _ := bob.rec.snapshot()
	m := msgs[0]
	if m.Attachment == nil || *m.Attachment != att || m.Body != "the plan" || m.From != "alice" {
		t.Fatalf("bob got %+v (attachment %+v), want %+v", m, m.Attachment, att)
	}

	var got bytes.Buffer
	if err := bob.Download(context.Background(), att.AssetID, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("bob downloaded %d bytes, not the %d sent", got.Len(), len(data))
	}
	carol := newTestClient(t, fs, "carol", "", withAssets(fs))
	var ae *AssetError
	if err := carol.Download(context.Background(), att.AssetID, &got); !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "not_found" {
		t.Fatalf("carol's download: %v, want a 404 not_found", err)
	}
}

func TestSendGroupFileAndForward(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "", withAssets(fs))
	bob := startClient(t, fs, "bob", "", withAssets(fs))
	carol := startClient(t, fs, "carol", "", withAssets(fs))
	waitFor(t, "connections", func() bool { return alice.Connected() && bob.Connected() && carol.Connected() })
	ctx := context.Background()
	gid, err := alice.CreateGroup(ctx, "Trip", "bob")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("bring boots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.SendGroupFile(ctx, gid, path, ""); err != nil {
		t.Fatal(err)
	}
	var att *Attachment
	waitFor(t, "bob's group file", func() bool {
		msgs, _, _ := bob.rec.snapshot()
		for _, m := range msgs {
			if m.Group == gid && m.Attachment != nil {
				att = m.Attachment
				return true
			}
		}
		return false
	})
	if att.Kind != "file" || att.Size != 12 || att.Name != "notes.txt" {
		t.Fatalf("attachment %+v", att)
	}
	// Bob forwards it to carol: no upload.
	if _, err := bob.SendAttachment(ctx, "carol", *att, "fwd"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol's file", func() bool { return carol.rec.nMsgs() == 1 })
	var got bytes.Buffer
	if err := carol.Download(ctx, att.AssetID, &got); err != nil || got.String() != "bring boots\n" {
		t.Fatalf("carol's download: %q, %v", got.String(), err)
	}
	fs.With(func() {
		if fs.Uploads["bob"] != 0 {
			t.Errorf("forwarding uploaded")
		}
	})
}

// Upload streams any reader (chunked, no length known); the server's
// refusals come back as *AssetError.
func TestUploadReader(t *testing.T) {
	fs := newFakeServer(t)
	c := newTestClient(t, fs, "alice", "", withAssets(fs))
	ctx := context.Background()
	att, err := c.Upload(ctx, "a b.txt", strings.NewReader("hello"))
	if err != nil || att.Size != 5 || att.Name != "a b.txt" {
		t.Fatalf("Upload = %+v, %v", att, err)
	}
	var ae *AssetError
	if _, err := c.Upload(ctx, "../etc/passwd", strings.NewReader("x")); !errors.As(err, &ae) || ae.StatusCode != 400 {
		t.Fatalf("Upload of a path name: %v, want 400", err)
	}
	if _, _, err := c.SendFile(ctx, "bob", filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Fatal("SendFile of a missing file succeeded")
	}
	if c.Pending() != 0 {
		t.Fatal("a failed SendFile queued a send")
	}
}
