package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// pngBytes sniff as an image.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

func TestProfiles(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "", withAssets(fs))
	bob := startClient(t, fs, "bob", "", withAssets(fs))
	waitFor(t, "connections", func() bool { return alice.Connected() && bob.Connected() })
	ctx := context.Background()

	if _, err := alice.SetProfile(ctx, ProfileUpdate{}); err == nil {
		t.Fatal("an empty SetProfile was sent")
	}
	photo, err := alice.Upload(ctx, "me.png", bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	p, err := alice.SetProfile(ctx, ProfileUpdate{Name: new("Alice"), About: new("two\nlines"), Photo: new(photo.AssetID)})
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "alice" || p.Name != "Alice" || p.About != "two\nlines" || p.Photo != photo.AssetID || p.Updated.IsZero() {
		t.Fatalf("SetProfile = %+v", p)
	}
	got, err := bob.Profiles(ctx, "alice", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != p || got[1] != (Profile{User: "carol"}) {
		t.Fatalf("Profiles = %+v, want alice's and an empty carol", got)
	}
	var img bytes.Buffer
	if err := bob.Download(ctx, got[0].Photo, &img); err != nil || !bytes.Equal(img.Bytes(), pngBytes) {
		t.Fatalf("bob downloading alice's photo: %v", err)
	}

	// A field left nil is kept; an empty photo removes it.
	if p, err = alice.SetProfile(ctx, ProfileUpdate{Photo: new("")}); err != nil || p.Photo != "" || p.Name != "Alice" {
		t.Fatalf("removing the photo: %+v, %v", p, err)
	}
	text, err := alice.Upload(ctx, "notes.txt", strings.NewReader("not an image"))
	if err != nil {
		t.Fatal(err)
	}
	var se *ServerError
	if _, err := alice.SetProfile(ctx, ProfileUpdate{Photo: new(text.AssetID)}); !errors.As(err, &se) || se.Code != CodeBadRequest {
		t.Fatalf("a text file as photo: %v, want %s", err, CodeBadRequest)
	}
	if _, err := bob.SetProfile(ctx, ProfileUpdate{Photo: new(photo.AssetID)}); !errors.As(err, &se) || se.Code != CodeNotFound {
		t.Fatalf("someone else's image as photo: %v, want %s", err, CodeNotFound)
	}

	// More users than a frame takes: several requests, in order.
	users := make([]string, 300)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	users[299] = "alice"
	got, err = bob.Profiles(ctx, users...)
	if err != nil || len(got) != 300 || got[0].User != "u000" || got[299].Name != "Alice" {
		t.Fatalf("Profiles of 300: %d, %v", len(got), err)
	}
	fs.With(func() {
		if n := fs.Received["bob"]["profile.get"]; n != 3 {
			t.Errorf("bob sent %d profile.get frames, want 3 (1, then 256 + 44)", n)
		}
	})
}

func TestGroupIcon(t *testing.T) {
	fs := newFakeServer(t)
	alice := startClient(t, fs, "alice", "", withAssets(fs))
	bob := startClient(t, fs, "bob", "", withAssets(fs))
	waitFor(t, "connections", func() bool { return alice.Connected() && bob.Connected() })
	ctx := context.Background()
	gid, err := alice.CreateGroup(ctx, "Trip", "bob")
	if err != nil {
		t.Fatal(err)
	}
	icon, err := alice.Upload(ctx, "trip.png", bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	var se *ServerError
	if err := bob.SetGroupIcon(ctx, gid, icon.AssetID); !errors.As(err, &se) || se.Code != CodeNotAdmin {
		t.Fatalf("a member setting the icon: %v, want %s", err, CodeNotAdmin)
	}
	if err := alice.SetGroupIcon(ctx, gid, icon.AssetID); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetGroupIcon(ctx, gid, ""); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetGroupIcon(ctx, gid, icon.AssetID); err != nil {
		t.Fatal(err)
	}
	iconEvents := func() []string {
		bob.rec.mu.Lock()
		defer bob.rec.mu.Unlock()
		var icons []string
		for _, e := range bob.rec.groups {
			if e.Event == GroupIconChanged && e.By == "alice" && e.Group == gid {
				icons = append(icons, e.Icon)
			}
		}
		return icons
	}
	waitFor(t, "bob's icon events", func() bool { return len(iconEvents()) == 3 })
	if got := iconEvents(); got[0] != icon.AssetID || got[1] != "" || got[2] != icon.AssetID {
		t.Fatalf("bob's icon events %q", got)
	}
	info, err := bob.GroupInfo(ctx, gid)
	if err != nil || info.Icon != icon.AssetID {
		t.Fatalf("GroupInfo = %+v, %v; want the icon", info, err)
	}
	var img bytes.Buffer
	if err := bob.Download(ctx, info.Icon, &img); err != nil || !bytes.Equal(img.Bytes(), pngBytes) {
		t.Fatalf("bob downloading the icon: %v", err)
	}
}
