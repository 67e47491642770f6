package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
)

// TestFileMessageEndToEnd: through the binary, alice uploads a file to the
// asset API, sends it to bob in a message, and bob (but not carol) can
// download it with the id the message carried.
func TestFileMessageEndToEnd(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir, addr := srv.DataDir(), srv.Addr()
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tokens[u] = testserver.Token(t, dir, u, "")
	}
	httpDo := func(method, url, user string, body []byte, ctype string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokens[user])
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	file := []byte("%PDF-1.7\n% a tiny document\n")
	resp := httpDo("POST", srv.AssetsURL()+"?name=plan.pdf", "alice", file, "application/pdf")
	var up struct {
		ID   string `json:"asset_id"`
		Mime string `json:"mime"`
		Kind string `json:"kind"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	if resp.StatusCode != http.StatusCreated || up.ID == "" || up.Mime != "application/pdf" || up.Kind != "file" {
		t.Fatalf("upload: %d %+v", resp.StatusCode, up)
	}

	alice, err := dial(addr, tokens["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer alice.conn.Close()
	bob, err := dial(addr, tokens["bob"])
	if err != nil {
		t.Fatal(err)
	}
	defer bob.conn.Close()
	bob.send(map[string]any{"type": "sync", "after": 0})
	if f, err := bob.read(5 * time.Second); err != nil || f.Type != "synced" {
		t.Fatalf("bob's sync: %+v %v", f, err)
	}
	attachment := sendAttachment(t, alice, bob, "bob", "m1", up.ID)
	if attachment["asset_id"] != up.ID || attachment["name"] != "plan.pdf" || attachment["size"] != float64(len(file)) {
		t.Fatalf("bob's attachment: %v", attachment)
	}
	resp = httpDo("GET", srv.AssetsURL()+"/"+up.ID, "bob", nil, "")
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, file) || resp.Header.Get("Content-Disposition") != "attachment; filename=plan.pdf" {
		t.Fatalf("bob's download: %d %q %q", resp.StatusCode, got, resp.Header.Get("Content-Disposition"))
	}
	if resp := httpDo("GET", srv.AssetsURL()+"/"+up.ID, "carol", nil, ""); resp.StatusCode != 404 {
		t.Fatalf("carol's download: %d", resp.StatusCode)
	}
	// Carol cannot send it on either: she was never sent it.
	carol, err := dial(addr, tokens["carol"])
	if err != nil {
		t.Fatal(err)
	}
	defer carol.conn.Close()
	if r, _ := carol.request(t, map[string]any{"type": "send", "id": "c1", "to": "dave", "body": "leak",
		"attachment": map[string]any{"asset_id": up.ID}}); r.Type != "error" || r.Code != "not_found" {
		t.Fatalf("carol forwarding what she cannot see: %v", r.raw)
	}
}

// TestImageThumbnailEndToEnd: through the binary, an uploaded image gets a
// thumbnail from the asset worker, which its recipient can download.
func TestImageThumbnailEndToEnd(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tokens[u] = testserver.Token(t, srv.DataDir(), u, "")
	}
	get := func(path, user string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.AssetsURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tokens[user])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	var img bytes.Buffer
	png.Encode(&img, image.NewRGBA(image.Rect(0, 0, 1200, 800)))
	req, _ := http.NewRequest("POST", srv.AssetsURL()+"?name=photo.png", bytes.NewReader(img.Bytes()))
	req.Header.Set("Authorization", "Bearer "+tokens["alice"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		ID string `json:"asset_id"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	// The asset worker makes the thumbnail after the upload.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get("/"+up.ID+"/thumb", "alice")
		if code == 200 {
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(body))
			if err != nil || cfg.Width != 320 || cfg.Height != 213 {
				t.Fatalf("thumbnail: %dx%d %v", cfg.Width, cfg.Height, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thumbnail after 10s: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	// Sent to bob: his msg carries the attachment with the thumbnail and
	// dimensions; he downloads both; carol gets 404 for both.
	alice, err := dial(srv.Addr(), tokens["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer alice.conn.Close()
	bob, err := dial(srv.Addr(), tokens["bob"])
	if err != nil {
		t.Fatal(err)
	}
	defer bob.conn.Close()
	bob.send(map[string]any{"type": "sync", "after": 0})
	if f, err := bob.read(5 * time.Second); err != nil || f.Type != "synced" {
		t.Fatalf("bob's sync: %+v %v", f, err)
	}
	att := sendAttachment(t, alice, bob, "bob", "p1", up.ID)
	thumb, _ := att["thumbnail"].(string)
	if att["asset_id"] != up.ID || att["kind"] != "image" || att["width"] != float64(1200) || att["height"] != float64(800) || thumb == "" {
		t.Fatalf("bob's attachment: %v", att)
	}
	if code, body := get("/"+up.ID, "bob"); code != 200 || !bytes.Equal(body, img.Bytes()) {
		t.Fatalf("bob's original: %d, %d bytes", code, len(body))
	}
	for _, path := range []string{"/" + up.ID + "/thumb", "/" + thumb} {
		if code, body := get(path, "bob"); code != 200 || len(body) == 0 {
			t.Fatalf("bob's thumbnail %s: %d", path, code)
		}
		if code, _ := get(path, "carol"); code != 404 {
			t.Fatalf("carol's thumbnail %s: %d", path, code)
		}
	}
	if code, _ := get("/"+up.ID, "carol"); code != 404 {
		t.Fatalf("carol's original: %d", code)
	}
}

// TestCollectionEndToEnd: through the binary with short settings, a file
// never sent is collected (404, and its bytes leave the blob directory)
// while one that was sent stays; the owner's DELETE takes effect at once.
func TestCollectionEndToEnd(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Env: []string{
		"SWITCHBOARD_ASSETS_UNSENT_EXPIRY=1s", "SWITCHBOARD_ASSETS_COLLECT_INTERVAL=200ms",
		"SWITCHBOARD_ASSETS_BLOB_GRACE=1ms",
	}})
	dir := srv.DataDir()
	tokens := map[string]string{"alice": testserver.Token(t, dir, "alice", ""), "bob": testserver.Token(t, dir, "bob", "")}
	do := func(method, url, user string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokens[user])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	upload := func(body string) (id, hash string) {
		t.Helper()
		resp := do("POST", srv.AssetsURL(), "alice", []byte(body))
		var a struct {
			ID   string `json:"asset_id"`
			Hash string `json:"sha256"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %d %v", resp.StatusCode, err)
		}
		return a.ID, a.Hash
	}
	// <data_dir>/blobs is the blob directory, whose blobs/ holds the files.
	blobPath := func(hash string) string { return filepath.Join(dir, "blobs", "blobs", hash[:2], hash[2:4], hash) }
	unsent, unsentHash := upload("%PDF-1.7\nnever sent")
	sent, sentHash := upload("%PDF-1.7\nsent to bob")
	deleted, deletedHash := upload("%PDF-1.7\ndeleted by alice")
	alice, err := dial(srv.Addr(), tokens["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer alice.conn.Close()
	if ack, _ := alice.request(t, map[string]any{"type": "send", "id": "m1", "to": "bob", "body": "here",
		"attachment": map[string]any{"asset_id": sent}}); ack.Type != "ack" {
		t.Fatalf("send: %v", ack.raw)
	}
	if resp := do("DELETE", srv.AssetsURL()+"/"+deleted, "alice", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if resp := do("GET", srv.AssetsURL()+"/"+deleted, "alice", nil); resp.StatusCode != 404 {
		t.Fatalf("GET after DELETE: %d", resp.StatusCode)
	}
	gone := func(path string) bool {
		_, err := os.Stat(path)
		return errors.Is(err, fs.ErrNotExist)
	}
	if gone(blobPath(unsentHash)) || gone(blobPath(sentHash)) {
		t.Fatalf("the uploaded files are not at %s", blobPath(unsentHash))
	}
	deadline := time.Now().Add(15 * time.Second)
	for !(gone(blobPath(unsentHash)) && gone(blobPath(deletedHash))) {
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s the unsent and deleted files' bytes are still there\n%s", srv.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp := do("GET", srv.AssetsURL()+"/"+unsent, "alice", nil); resp.StatusCode != 404 {
		t.Fatalf("the collected file: %d", resp.StatusCode)
	}
	if resp := do("GET", srv.AssetsURL()+"/"+sent, "bob", nil); resp.StatusCode != 200 || gone(blobPath(sentHash)) {
		t.Fatalf("the sent file after collection: %d", resp.StatusCode)
	}
}

// sendAttachment has from send user toUser (connected as to) a message
// with asset as its attachment, and returns the attachment of the msg that
// to receives.
func sendAttachment(t *testing.T, from, to *wsConn, toUser, id, asset string) map[string]any {
	t.Helper()
	if ack, _ := from.request(t, map[string]any{"type": "send", "id": id, "to": toUser, "body": "look",
		"attachment": map[string]any{"asset_id": asset}}); ack.Type != "ack" {
		t.Fatalf("send with an attachment: %v", ack.raw)
	}
	for {
		f, raw, err := to.readRaw()
		if err != nil {
			t.Fatal(err)
		}
		if att, ok := raw["attachment"].(map[string]any); ok && f.Type == "msg" {
			return att
		}
	}
}
