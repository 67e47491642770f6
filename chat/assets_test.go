package chat_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

func newAsset(t *testing.T, svc *chat.Service, owner, id, hash string) {
	t.Helper()
	a := &chat.Asset{ID: id, Hash: hash, Size: 3, Mime: "image/png", Kind: "image", Name: "cat.png"}
	if res := do(t, svc, &chat.Request{Kind: chat.KindAsset, From: owner, Asset: a}); res.Err != nil {
		t.Fatalf("recording asset %s: %v", id, res.Err)
	}
}

func mayRead(svc *chat.Service, id, user string) bool {
	_, err := svc.MayRead(context.Background(), id, user)
	return err == nil
}

// TestAttachmentsGrantAccess: an attachment goes in the msg frame from the
// asset's own record, and sending it is what lets the recipients (a user,
// or a group's current members) download it; nobody else may, or may send
// it on.
func TestAttachmentsGrantAccess(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	newAsset(t, svc, "alice", "ASSET1", "aa11")
	if !mayRead(svc, "ASSET1", "alice") || mayRead(svc, "ASSET1", "bob") {
		t.Fatal("before any send only the owner may read")
	}
	send := func(from, id, to string) chat.Result {
		r := send(from, id, to, "look", nil)
		r.AssetID = []byte("ASSET1")
		return do(t, svc, r)
	}
	if res := send("alice", "s1", "bob"); res.Err != nil {
		t.Fatal(res.Err)
	}
	var got []map[string]any
	for _, f := range inbox(t, svc, "bob") {
		if f["type"] == "msg" {
			got = append(got, f["attachment"].(map[string]any))
		}
	}
	if len(got) != 1 || got[0]["asset_id"] != "ASSET1" || got[0]["sha256"] != "aa11" || got[0]["kind"] != "image" || got[0]["owner"] != nil {
		t.Fatalf("bob's attachment: %v", got)
	}
	if !mayRead(svc, "ASSET1", "bob") || mayRead(svc, "ASSET1", "carol") {
		t.Fatal("after the send bob may read, carol may not")
	}
	var pe *protocol.Error
	if res := send("carol", "s2", "dave"); !errors.As(res.Err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Fatalf("carol sending an asset she cannot see: %+v", res)
	}
	// Forwarding: bob sends it on, nothing is uploaded again.
	if res := send("bob", "s3", "carol"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !mayRead(svc, "ASSET1", "carol") {
		t.Fatal("carol may not read what bob forwarded to her")
	}
	// A group: its current members may read; one removed may not.
	g := createGroup(t, svc, "alice", "erin", "frank")
	r := groupSend("alice", "s4", g, "for the group")
	r.AssetID = []byte("ASSET1")
	if res := do(t, svc, r); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !mayRead(svc, "ASSET1", "erin") || !mayRead(svc, "ASSET1", "frank") {
		t.Fatal("group members may not read")
	}
	do(t, svc, groupReq(chat.GroupRemove, "alice", g, "frank"))
	if mayRead(svc, "ASSET1", "frank") {
		t.Fatal("a removed member still reads the group's attachments")
	}
	// The record keeps what the server says about the file.
	a, err := svc.GetAsset(context.Background(), "ASSET1")
	if err != nil || a.Owner != "alice" || a.Created == 0 {
		t.Fatalf("GetAsset: %+v, %v", a, err)
	}
}

func TestAssetIDsAreUnique(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	newAsset(t, svc, "alice", "A1", "hash")
	res := do(t, svc, &chat.Request{Kind: chat.KindAsset, From: "mallory", Asset: &chat.Asset{ID: "A1", Hash: "other"}})
	if res.Err == nil {
		t.Fatal("a second asset with an id in use was recorded")
	}
	if a, _ := svc.GetAsset(context.Background(), "A1"); a.Owner != "alice" {
		t.Fatalf("asset A1 now owned by %q", a.Owner)
	}
}

// TestAssetMedia: what the asset worker finds (thumbnail, dimensions) is
// kept with the asset and travels in later messages' attachments.
func TestAssetMedia(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	newAsset(t, svc, "alice", "PHOTO", "p1")
	thumb := &chat.Asset{ID: "THUMB", Hash: "t1", Size: 1, Mime: "image/jpeg", Kind: "image", Parent: "PHOTO"}
	if res := do(t, svc, &chat.Request{Kind: chat.KindAsset, From: "alice", Asset: thumb}); res.Err != nil {
		t.Fatal(res.Err)
	}
	m := &chat.Asset{ID: "PHOTO", Thumb: "THUMB", Width: 4000, Height: 3000}
	if res := do(t, svc, &chat.Request{Kind: chat.KindAssetMedia, From: "alice", Asset: m}); res.Err != nil {
		t.Fatal(res.Err)
	}
	a, err := svc.GetAsset(context.Background(), "PHOTO")
	if err != nil || a.Thumb != "THUMB" || a.Width != 4000 || a.Owner != "alice" || a.Hash != "p1" {
		t.Fatalf("after the worker: %+v, %v", a, err)
	}
	r := send("alice", "s1", "bob", "look", nil)
	r.AssetID = []byte("PHOTO")
	if res := do(t, svc, r); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, f := range inbox(t, svc, "bob") {
		if f["type"] == "msg" {
			att := f["attachment"].(map[string]any)
			if att["thumbnail"] != "THUMB" || att["width"] != float64(4000) {
				t.Fatalf("attachment %v", att)
			}
		}
	}
	if res := do(t, svc, &chat.Request{Kind: chat.KindAssetMedia, From: "alice", Asset: &chat.Asset{ID: "NOPE"}}); res.Err == nil {
		t.Fatal("media for a missing asset was accepted")
	}
}
