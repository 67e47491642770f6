package chat_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

func usage(t *testing.T, svc *chat.Service, user string) int64 {
	t.Helper()
	n, err := svc.AssetUsage(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func unusedBlobs(t *testing.T, svc *chat.Service) map[string]chat.BlobStatus {
	t.Helper()
	bs, err := svc.UnusedBlobs(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]chat.BlobStatus{}
	for _, b := range bs {
		out[b.Hash] = b.Status
	}
	return out
}

func expired(t *testing.T, svc *chat.Service, unsent, created time.Time) []string {
	t.Helper()
	var c int64
	if !created.IsZero() {
		c = created.UnixMilli()
	}
	ids, err := svc.ExpiredAssets(context.Background(), unsent.UnixMilli(), c, 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func deleteAsset(t *testing.T, svc *chat.Service, from, id string, c *chat.Collect) error {
	t.Helper()
	return do(t, svc, &chat.Request{Kind: chat.KindAssetDelete, From: from, AssetID: []byte(id), Collect: c}).Err
}

func sweep(t *testing.T, svc *chat.Service, hash string, step chat.BlobStep, before time.Time) error {
	t.Helper()
	return do(t, svc, &chat.Request{Kind: chat.KindBlob, Sweep: &chat.Sweep{Hash: hash, Step: step, Before: before.UnixMilli()}}).Err
}

// TestOwnerDeletesAsset: the owner's delete takes the asset, its
// thumbnail and its recipients' access away, and gives the bytes back to
// the quota; only when no asset uses the blob is it condemned.
func TestOwnerDeletesAsset(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	newAsset(t, svc, "alice", "A1", "h1")
	newAsset(t, svc, "alice", "A2", "h1") // the same bytes uploaded again
	thumb := &chat.Asset{ID: "T1", Hash: "th", Size: 1, Mime: "image/jpeg", Kind: "image", Parent: "A1"}
	if res := do(t, svc, &chat.Request{Kind: chat.KindAsset, From: "alice", Asset: thumb}); res.Err != nil {
		t.Fatal(res.Err)
	}
	do(t, svc, &chat.Request{Kind: chat.KindAssetMedia, From: "alice", Asset: &chat.Asset{ID: "A1", Thumb: "T1"}})
	r := send("alice", "s1", "bob", "look", nil)
	r.AssetID = []byte("A1")
	if res := do(t, svc, r); res.Err != nil || !mayRead(svc, "A1", "bob") {
		t.Fatalf("send: %v", res.Err)
	}
	if !mayRead(svc, "T1", "bob") || mayRead(svc, "T1", "carol") {
		t.Fatal("the thumbnail must be readable by the asset's readers, and only them")
	}
	if got := usage(t, svc, "alice"); got != 7 {
		t.Fatalf("usage %d, want 3+3+1", got)
	}

	var pe *protocol.Error
	if err := deleteAsset(t, svc, "bob", "A1", nil); !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Fatalf("bob deleting alice's asset: %v", err)
	}
	if err := deleteAsset(t, svc, "alice", "T1", nil); !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Fatalf("deleting a thumbnail on its own: %v", err)
	}
	if err := deleteAsset(t, svc, "alice", "A1", nil); err != nil {
		t.Fatal(err)
	}
	if mayRead(svc, "A1", "bob") || mayRead(svc, "A1", "alice") || mayRead(svc, "T1", "alice") {
		t.Fatal("a deleted asset (or its thumbnail) is still readable")
	}
	if got := usage(t, svc, "alice"); got != 3 {
		t.Fatalf("usage after the delete %d, want 3", got)
	}
	if got := unusedBlobs(t, svc); len(got) != 1 || got["th"] != chat.BlobCondemned {
		t.Fatalf("unused blobs %v: want only the thumbnail's (A2 still uses h1)", got)
	}
	if err := deleteAsset(t, svc, "alice", "A2", nil); err != nil {
		t.Fatal(err)
	}
	if got := unusedBlobs(t, svc); got["h1"] != chat.BlobCondemned || usage(t, svc, "alice") != 0 {
		t.Fatalf("unused blobs %v, usage %d", got, usage(t, svc, "alice"))
	}
	if ids := expired(t, svc, time.Now().Add(time.Hour), time.Now().Add(time.Hour)); len(ids) != 0 {
		t.Fatalf("deleted assets still listed for collection: %v", ids)
	}
}

// TestCollectExpired: the unsent collector takes only assets never sent
// nor pinned; retention takes sent ones too but never pinned ones; and
// both check again when the delete commits.
func TestCollectExpired(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	newAsset(t, svc, "alice", "UNSENT", "h1")
	newAsset(t, svc, "alice", "SENT", "h2")
	newAsset(t, svc, "alice", "PHOTO", "h3")
	r := send("alice", "s1", "bob", "look", nil)
	r.AssetID = []byte("SENT")
	if res := do(t, svc, r); res.Err != nil {
		t.Fatal(res.Err)
	}
	photo := "PHOTO"
	if res := do(t, svc, &chat.Request{Kind: chat.KindProfile, From: "alice", Profile: &chat.ProfileUpdate{Photo: &photo}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if ids := expired(t, svc, past, time.Time{}); len(ids) != 0 {
		t.Fatalf("nothing is old enough yet, got %v", ids)
	}
	if ids := expired(t, svc, future, time.Time{}); !slices.Equal(ids, []string{"UNSENT"}) {
		t.Fatalf("unsent: %v", ids)
	}
	if ids := expired(t, svc, past, future); !slices.Equal(ids, []string{"SENT", "UNSENT"}) {
		t.Fatalf("retention: %v (the profile photo is kept)", ids)
	}
	unsentOnly := &chat.Collect{UnsentBefore: future.UnixMilli()}
	for _, id := range []string{"SENT", "PHOTO"} {
		if err := deleteAsset(t, svc, "", id, unsentOnly); !errors.Is(err, chat.ErrAssetKept) {
			t.Fatalf("collecting %s as unsent: %v", id, err)
		}
	}
	if err := deleteAsset(t, svc, "", "UNSENT", unsentOnly); err != nil {
		t.Fatal(err)
	}
	// The photo stays through retention; the sent asset does not.
	retention := &chat.Collect{CreatedBefore: future.UnixMilli()}
	if err := deleteAsset(t, svc, "", "PHOTO", retention); !errors.Is(err, chat.ErrAssetKept) {
		t.Fatalf("retention collecting a profile photo: %v", err)
	}
	if err := deleteAsset(t, svc, "", "SENT", retention); err != nil {
		t.Fatal(err)
	}
	if mayRead(svc, "SENT", "bob") || !mayRead(svc, "PHOTO", "zed") {
		t.Fatal("after retention: the sent asset must be gone, the photo still everyone's")
	}
	var pe *protocol.Error
	if err := deleteAsset(t, svc, "alice", "PHOTO", nil); !errors.As(err, &pe) || pe.Code != protocol.CodeInUse {
		t.Fatalf("deleting one's profile photo: %v", err)
	}
	// Replacing the photo deletes the old one (never sent), no collector needed.
	newAsset(t, svc, "alice", "PHOTO2", "h4")
	photo = "PHOTO2"
	if res := do(t, svc, &chat.Request{Kind: chat.KindProfile, From: "alice", Profile: &chat.ProfileUpdate{Photo: &photo}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if mayRead(svc, "PHOTO", "alice") {
		t.Fatal("the replaced photo was kept")
	}
	if got := unusedBlobs(t, svc); got["h1"] != chat.BlobCondemned || got["h2"] != chat.BlobCondemned || got["h3"] != chat.BlobCondemned || len(got) != 3 {
		t.Fatalf("unused blobs %v", got)
	}
}

// TestBlobFence: the collector deletes a blob only through claim and
// swept, and an upload that may have found the blob before it was deleted
// is refused rather than recorded over nothing.
func TestBlobFence(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	upload := func(id, hash string, putAt time.Time) error {
		a := &chat.Asset{ID: id, Hash: hash, Size: 3, Mime: "image/png", Kind: "image"}
		return do(t, svc, &chat.Request{Kind: chat.KindAsset, From: "alice", Asset: a, PutAt: putAt.UnixMilli()}).Err
	}
	before := time.Now()
	if err := upload("A1", "h1", before); err != nil {
		t.Fatal(err)
	}
	if err := deleteAsset(t, svc, "alice", "A1", nil); err != nil {
		t.Fatal(err)
	}
	// Condemned, not yet past the grace: no claim.
	if err := sweep(t, svc, "h1", chat.BlobClaim, before.Add(-time.Minute)); !errors.Is(err, chat.ErrBlobInUse) {
		t.Fatalf("claim within the grace: %v", err)
	}
	// Uploaded again while condemned: in use again, and off the list.
	if err := upload("A2", "h1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := unusedBlobs(t, svc); len(got) != 0 {
		t.Fatalf("a blob in use again is still listed: %v", got)
	}
	if err := sweep(t, svc, "h1", chat.BlobClaim, time.Now().Add(time.Hour)); !errors.Is(err, chat.ErrBlobInUse) {
		t.Fatalf("claim of a blob in use: %v", err)
	}
	if err := deleteAsset(t, svc, "alice", "A2", nil); err != nil {
		t.Fatal(err)
	}
	// Past the grace: claimed. Uploads of its bytes are refused until the
	// tombstone says when it went; then only Puts begun after that pass.
	if err := sweep(t, svc, "h1", chat.BlobClaim, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := unusedBlobs(t, svc)["h1"]; got != chat.BlobDeleting {
		t.Fatalf("after the claim: %c", got)
	}
	if err := upload("A3", "h1", time.Now()); !errors.Is(err, chat.ErrBlobGone) {
		t.Fatalf("upload while the blob is deleted: %v", err)
	}
	if err := sweep(t, svc, "h1", chat.BlobSwept, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := upload("A3", "h1", time.Now().Add(-time.Second)); !errors.Is(err, chat.ErrBlobGone) {
		t.Fatalf("upload whose Put began before the blob went: %v", err)
	}
	if err := upload("A3", "h1", time.Now().Add(-48*time.Hour)); !errors.Is(err, chat.ErrBlobGone) {
		t.Fatalf("upload whose Put began longer ago than any tombstone is kept: %v", err)
	}
	if err := sweep(t, svc, "h1", chat.BlobForget, time.Now().Add(-time.Hour)); !errors.Is(err, chat.ErrBlobInUse) {
		t.Fatalf("forgetting a fresh tombstone: %v", err)
	}
	if err := upload("A3", "h1", time.Now().Add(2*time.Minute)); err != nil {
		t.Fatalf("upload whose Put began after the blob went: %v", err)
	}
	if got := unusedBlobs(t, svc); len(got) != 0 {
		t.Fatalf("unused blobs after a fresh upload: %v", got)
	}
	// A tombstone old enough is forgotten.
	newAsset(t, svc, "alice", "B1", "h2")
	deleteAsset(t, svc, "alice", "B1", nil)
	if err := sweep(t, svc, "h2", chat.BlobClaim, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := sweep(t, svc, "h2", chat.BlobSwept, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := sweep(t, svc, "h2", chat.BlobForget, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := unusedBlobs(t, svc); len(got) != 0 {
		t.Fatalf("unused blobs after forget: %v", got)
	}
}

// heldStore holds its first Apply until release.
type heldStore struct {
	chat.Store
	entered, release chan struct{}
	calls            atomic.Int32
}

func (h *heldStore) Apply(ctx context.Context, b *chat.Batch) error {
	if h.calls.Add(1) == 1 {
		close(h.entered)
		<-h.release
	}
	return h.Store.Apply(ctx, b)
}

// TestAssetCountsPipelined: an upload of the same bytes committed in a
// batch built while the previous one is being applied still counts the
// previous one's: deleting one of the two leaves the blob in use.
func TestAssetCountsPipelined(t *testing.T) {
	store := &heldStore{Store: memory.NewStore(), entered: make(chan struct{}), release: make(chan struct{})}
	svc, _, _ := newService(t, store, chat.Config{})
	c := newCompleter()
	submit := func(id string) {
		a := &chat.Asset{ID: id, Hash: "same", Size: 10, Mime: "image/png", Kind: "image"}
		if err := svc.Submit(&chat.Request{Kind: chat.KindAsset, From: "alice", ClientID: []byte(id), Asset: a, Done: c}); err != nil {
			t.Fatal(err)
		}
	}
	submit("P1")
	<-store.entered
	submit("P2")
	// Give the builder time to build P2's batch while P1's is held (if
	// it has not, the test checks nothing new, but cannot fail wrongly).
	time.Sleep(50 * time.Millisecond)
	close(store.release)
	c.wait(t, 2)
	for id, res := range c.got {
		if res.Err != nil {
			t.Fatalf("%s: %v", id, res.Err)
		}
	}
	if got := usage(t, svc, "alice"); got != 20 {
		t.Fatalf("usage %d, want 20", got)
	}
	if err := deleteAsset(t, svc, "alice", "P1", nil); err != nil {
		t.Fatal(err)
	}
	if got := unusedBlobs(t, svc); len(got) != 0 {
		t.Fatalf("P2 still uses the blob, but it is listed unused: %v", got)
	}
	if err := deleteAsset(t, svc, "alice", "P2", nil); err != nil {
		t.Fatal(err)
	}
	if got := unusedBlobs(t, svc); got["same"] != chat.BlobCondemned {
		t.Fatalf("unused blobs %v", got)
	}
}

// TestProfiles: set, read back, limits, and a no-op update changes nothing.
func TestProfiles(t *testing.T) {
	svc, _, _ := newService(t, memory.NewStore(), chat.Config{})
	set := func(u chat.ProfileUpdate) chat.Result {
		return do(t, svc, &chat.Request{Kind: chat.KindProfile, From: "alice", Profile: &u})
	}
	name, about := "Alice", "at the beach\nback monday"
	first := data(t, set(chat.ProfileUpdate{Name: &name, About: &about}))["profile"].(map[string]any)
	if first["name"] != name || first["about"] != about || first["updated"] == nil {
		t.Fatalf("profile %v", first)
	}
	again := data(t, set(chat.ProfileUpdate{Name: &name}))["profile"].(map[string]any)
	if again["updated"] != first["updated"] {
		t.Fatalf("a no-op update changed the profile: %v then %v", first, again)
	}
	got := data(t, do(t, svc, &chat.Request{Kind: chat.KindProfile, From: "bob", Members: bytesList("alice", "nobody")}))["profiles"].([]any)
	if len(got) != 2 || got[0].(map[string]any)["about"] != about || got[1].(map[string]any)["user"] != "nobody" {
		t.Fatalf("profiles %v", got)
	}
	for _, bad := range []string{"a\x00b", "x\u0085y", "evil\u202Egnp.exe", string(make([]byte, 129))} {
		if res := set(chat.ProfileUpdate{Name: &bad}); res.Err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	doc := "DOC"
	a := &chat.Asset{ID: doc, Hash: "d1", Size: 3, Mime: "application/pdf", Kind: "file"}
	if res := do(t, svc, &chat.Request{Kind: chat.KindAsset, From: "alice", Asset: a}); res.Err != nil {
		t.Fatal(res.Err)
	}
	wantCode(t, set(chat.ProfileUpdate{Photo: &doc}), protocol.CodeBadRequest)
	theirs := "THEIRS"
	newAsset(t, svc, "bob", "THEIRS", "b1")
	wantCode(t, set(chat.ProfileUpdate{Photo: &theirs}), protocol.CodeNotFound)
}
