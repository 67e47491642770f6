package api

import (
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"io"
	"testing"

	"github.com/switchboard/switchboard/assets"
)

// TestWorkerThumbnails: the worker gives an uploaded image a JPEG
// thumbnail (an asset of its own) and its dimensions; a file gets
// neither.
func TestWorkerThumbnails(t *testing.T) {
	e := newEnv(t, Config{})
	w := NewWorker(e.blobs, e.svc, assets.ThumbOptions{MaxSide: 16}, nil)
	ctx := context.Background()
	img := e.upload(t, "alice", pngBytes(t), "image/png", "p.png") // 40×30
	if err := w.process(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	a, err := e.svc.GetAsset(ctx, img.ID)
	if err != nil || a.Thumb == "" || a.Width != 40 || a.Height != 30 {
		t.Fatalf("after the worker: %+v, %v", a, err)
	}
	th, err := e.svc.GetAsset(ctx, a.Thumb)
	if err != nil || th.Mime != "image/jpeg" || th.Owner != "alice" {
		t.Fatalf("thumbnail asset: %+v, %v", th, err)
	}
	h, _ := assets.ParseHash(th.Hash)
	rc, err := e.blobs.Read(ctx, h, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width != 16 || cfg.Height != 12 {
		t.Fatalf("thumbnail %dx%d, %v; want 16x12", cfg.Width, cfg.Height, err)
	}

	doc := e.upload(t, "alice", []byte("%PDF-1.7\n"), "application/pdf", "d.pdf")
	if err := w.process(ctx, doc.ID); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.svc.GetAsset(ctx, doc.ID); a.Thumb != "" {
		t.Fatalf("a PDF got a thumbnail: %+v", a)
	}
}

// TestThumbnailDownload: the thumbnail is served to whoever may read the
// asset, by token or by the signed thumb_url, and to nobody else.
func TestThumbnailDownload(t *testing.T) {
	e := newEnv(t, Config{})
	w := NewWorker(e.blobs, e.svc, assets.ThumbOptions{MaxSide: 16}, nil)
	img := e.upload(t, "alice", pngBytes(t), "image/png", "p.png")
	thumb := "/v1/assets/" + img.ID + "/thumb"
	if resp := e.do(t, "GET", thumb, "alice", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("thumbnail before the worker: %d", resp.StatusCode)
	}
	if err := w.process(context.Background(), img.ID); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, "GET", thumb, "alice", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("alice's thumbnail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := e.do(t, "GET", thumb, "bob", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("bob's thumbnail of an asset he was never sent: %d", resp.StatusCode)
	}
	if err := e.sendWith(t, "alice", "bob", img.ID); err != nil {
		t.Fatal(err)
	}
	if resp := e.do(t, "GET", thumb, "bob", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("bob's thumbnail once sent it: %d", resp.StatusCode)
	}
	var u struct {
		URL      string `json:"url"`
		ThumbURL string `json:"thumb_url"`
	}
	json.NewDecoder(e.do(t, "POST", "/v1/assets/"+img.ID+"/url", "bob", nil, nil).Body).Decode(&u)
	if resp := e.do(t, "GET", u.ThumbURL, "", nil, nil); u.ThumbURL == "" || resp.StatusCode != 200 {
		t.Fatalf("signed thumb_url %q: %d", u.ThumbURL, resp.StatusCode)
	}
}
