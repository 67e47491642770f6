package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

func (e *env) collector(t *testing.T, cfg Config) *Collector {
	t.Helper()
	c, err := NewCollector(cfg, e.blobs, e.svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) collect(t *testing.T, c *Collector, at time.Time) CollectStats {
	t.Helper()
	st, err := c.Collect(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *env) hasBlob(t *testing.T, hash string) bool {
	t.Helper()
	h, err := assets.ParseHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.blobs.Stat(context.Background(), h)
	if err != nil && !errors.Is(err, assets.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestCollector: a file never sent goes after unsent_expiry, its bytes
// after blob_grace more; a sent one stays until retention; bytes shared
// with a live asset stay; and what goes is no longer served.
func TestCollector(t *testing.T) {
	cfg := Config{UnsentExpiry: 24 * time.Hour, BlobGrace: time.Hour, Retention: 30 * 24 * time.Hour}
	e := newEnv(t, cfg)
	c := e.collector(t, cfg)
	unsent := e.upload(t, "alice", []byte("%PDF-1.7\nunsent"), "application/pdf", "a.pdf")
	sent := e.upload(t, "alice", []byte("%PDF-1.7\nsent"), "application/pdf", "b.pdf")
	shared := e.upload(t, "alice", []byte("%PDF-1.7\nshared"), "application/pdf", "c.pdf")
	again := e.upload(t, "bob", []byte("%PDF-1.7\nshared"), "application/pdf", "c.pdf") // the same bytes, bob's
	if err := e.sendWith(t, "alice", "bob", sent.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.sendWith(t, "bob", "carol", again.ID); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if st := e.collect(t, c, now); st != (CollectStats{}) {
		t.Fatalf("a pass right away collected %+v", st)
	}
	// A day later. (The committer stamps the blobs it condemns with the
	// real time, an hour and more before this pass's: past their grace.)
	day := now.Add(25 * time.Hour)
	if st := e.collect(t, c, day); st.Assets != 2 || st.Blobs != 1 || st.Bytes != unsent.Size {
		t.Fatalf("after a day: %+v; want the 2 unsent assets and the blob only the unsent one used", st)
	}
	for _, id := range []string{unsent.ID, shared.ID} {
		if resp := e.do(t, "GET", "/v1/assets/"+id, "alice", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("collected asset %s: %d", id, resp.StatusCode)
		}
	}
	if e.hasBlob(t, unsent.Hash) || !e.hasBlob(t, shared.Hash) || !e.hasBlob(t, sent.Hash) {
		t.Fatal("blobs after a day: want the unsent one gone, the shared and sent ones kept")
	}
	for user, id := range map[string]string{"bob": sent.ID, "carol": again.ID} {
		if resp := e.do(t, "GET", "/v1/assets/"+id, user, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("%s reading a sent asset after collection: %d", user, resp.StatusCode)
		}
	}
	if used, _ := e.svc.AssetUsage(context.Background(), "alice"); used != sent.Size {
		t.Fatalf("alice's usage %d, want %d", used, sent.Size)
	}
	// Media retention: after 30 days the sent files go too.
	month := now.Add(31 * 24 * time.Hour)
	if st := e.collect(t, c, month); st.Assets != 2 || st.Blobs != 2 {
		t.Fatalf("after retention: %+v", st)
	}
	if resp := e.do(t, "GET", "/v1/assets/"+sent.ID, "bob", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("an asset past retention: %d", resp.StatusCode)
	}
	// Tombstones of the two blobs just deleted (the first one's, stamped
	// with the real time, is past chat.PutFence already: forgotten).
	left, _ := e.svc.UnusedBlobs(context.Background(), 10)
	if len(left) != 2 || left[0].Status != chat.BlobDeleted || left[1].Status != chat.BlobDeleted {
		t.Fatalf("tombstones: %+v", left)
	}
	// Tombstones are kept for chat.PutFence, then forgotten.
	e.collect(t, c, month.Add(chat.PutFence+3*time.Hour))
	if left, _ := e.svc.UnusedBlobs(context.Background(), 10); len(left) != 0 {
		t.Fatalf("tombstones past the fence: %+v", left)
	}
}

// TestDeleteAsset: DELETE /v1/assets/{id} by the owner frees the quota and
// ends everyone's access at once, the bytes go after blob_grace; anyone
// else gets the 404 of a missing asset; a profile photo is refused with
// 409 in_use.
func TestDeleteAsset(t *testing.T) {
	e := newEnv(t, Config{})
	a := e.upload(t, "alice", pngBytes(t), "image/png", "cat.png")
	if err := e.sendWith(t, "alice", "bob", a.ID); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"bob", ""} {
		if resp := e.do(t, "DELETE", "/v1/assets/"+a.ID, user, nil, nil); resp.StatusCode != 404 {
			t.Fatalf("DELETE by %q: %d", user, resp.StatusCode)
		}
	}
	if resp := e.do(t, "DELETE", "/v1/assets/"+a.ID, "alice", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE by the owner: %d", resp.StatusCode)
	}
	if resp := e.do(t, "GET", "/v1/assets/"+a.ID, "bob", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("bob after the delete: %d", resp.StatusCode)
	}
	if resp := e.do(t, "DELETE", "/v1/assets/"+a.ID, "alice", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("DELETE again: %d", resp.StatusCode)
	}
	if used, _ := e.svc.AssetUsage(context.Background(), "alice"); used != 0 {
		t.Fatalf("usage after the delete: %d", used)
	}
	c := e.collector(t, Config{BlobGrace: time.Hour})
	if st := e.collect(t, c, time.Now()); st.Blobs != 0 || !e.hasBlob(t, a.Hash) {
		t.Fatalf("within the grace: %+v", st)
	}
	if st := e.collect(t, c, time.Now().Add(2*time.Hour)); st.Blobs != 1 || e.hasBlob(t, a.Hash) {
		t.Fatalf("after the grace: %+v", st)
	}
	photo := e.upload(t, "alice", []byte("\x89PNG\r\n\x1a\nme"), "image/png", "me.png")
	id := photo.ID
	if err := submit(context.Background(), e.svc, &chat.Request{Kind: chat.KindProfile, From: "alice", Profile: &chat.ProfileUpdate{Photo: &id}}); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, "DELETE", "/v1/assets/"+photo.ID, "alice", nil, nil)
	var body struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusConflict || body.Code != "in_use" {
		t.Fatalf("deleting one's profile photo: %d %q", resp.StatusCode, body.Code)
	}
	if resp := e.do(t, "GET", "/v1/assets/"+photo.ID, "zed", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("anyone reading a profile photo: %d", resp.StatusCode)
	}
}

// goneOnce is the chat core, except that the first asset it records
// fails with chat.ErrBlobGone, as when the collector deleted the blob the
// upload's Put found.
type goneOnce struct {
	*chat.Service
	done atomic.Bool
}

func (g *goneOnce) Submit(r *chat.Request) error {
	if r.Kind == chat.KindAsset && g.done.CompareAndSwap(false, true) {
		r.Done.Complete(r, chat.Result{Err: chat.ErrBlobGone})
		return nil
	}
	return g.Service.Submit(r)
}

// TestBlobGoneOnUpload: an upload that met the collector deleting the
// same bytes is stored again by the tus handler (it still has the file),
// and refused with 503 by a single-request upload, which recorded nothing.
func TestBlobGoneOnUpload(t *testing.T) {
	e := newEnv(t, Config{})
	for _, resumable := range []bool{false, true} {
		cfg := Config{}
		if resumable {
			cfg.UploadDir = t.TempDir()
		}
		cat := &goneOnce{Service: e.svc}
		h, err := New(cfg, e.blobs, cat, testAuth{}, assets.NewSigner([]byte("k")), nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		body := []byte("%PDF-1.7\nmet the collector")
		var req *http.Request
		if resumable {
			req, _ = http.NewRequest("POST", srv.URL+"/v1/assets/uploads", bytes.NewReader(body))
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Length", strconv.Itoa(len(body)))
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			req.Header.Set("Upload-Metadata", "filetype "+base64.StdEncoding.EncodeToString([]byte("application/pdf")))
		} else {
			req, _ = http.NewRequest("POST", srv.URL+"/v1/assets", bytes.NewReader(body))
		}
		req.Header.Set("Authorization", "Bearer ok:alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		h.Close()
		if !cat.done.Load() {
			t.Fatal("the upload never reached the catalog")
		}
		if resumable {
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Asset-Id") == "" {
				t.Fatalf("tus upload after ErrBlobGone: %d %s", resp.StatusCode, b)
			}
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("single upload after ErrBlobGone: %d %s", resp.StatusCode, b)
		}
		if used, _ := e.svc.AssetUsage(context.Background(), "alice"); used != 0 {
			t.Fatalf("a refused upload was recorded: usage %d", used)
		}
	}
}

// TestUploadAfterSweep: the same bytes uploaded right after the collector
// deleted their blob: the tus upload is stored again (after the fence) and
// succeeds; the single-request upload is told 503 with Retry-After, and
// succeeds when retried then. Both are served whole.
func TestUploadAfterSweep(t *testing.T) {
	e := newTusEnv(t, Config{})
	body := []byte("%PDF-1.7\nswept and back")
	a := e.upload(t, "alice", body, "application/pdf", "a.pdf")
	if resp := e.do(t, "DELETE", "/v1/assets/"+a.ID, "alice", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	c := e.collector(t, Config{BlobGrace: time.Hour})
	if st := e.collect(t, c, time.Now().Add(2*time.Hour)); st.Blobs != 1 {
		t.Fatalf("sweep: %+v", st)
	}
	resp := e.do(t, "POST", "/v1/assets?name=b.pdf", "bob", body, map[string]string{"Content-Type": "application/pdf"})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("single upload right after the sweep: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	start := time.Now()
	up := tus{t, e, "carol"}.must("POST", "/v1/assets/uploads", bytes.NewReader(body), int64(len(body)), map[string]string{
		"Upload-Length": strconv.Itoa(len(body)), "Content-Type": "application/offset+octet-stream",
		"Upload-Metadata": "filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf")),
	})
	if up.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(up.Body)
		t.Fatalf("tus upload right after the sweep: %d %s", up.StatusCode, b)
	}
	if waited := time.Since(start); waited < chat.FenceSlack {
		t.Logf("the tus upload did not meet the fence (took %v): nothing to retry", waited)
	}
	retried := e.upload(t, "bob", body, "application/pdf", "b.pdf")
	for user, id := range map[string]string{"carol": up.Header.Get("Asset-Id"), "bob": retried.ID} {
		resp := e.do(t, "GET", "/v1/assets/"+id, user, nil, nil)
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("%s's download: %d %q", user, resp.StatusCode, got)
		}
	}
}
