package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/backends/blobdir"
	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
)

// tokens are "ok:<user>".
type testAuth struct{}

func (testAuth) Authenticate(tok []byte) (string, string, error) {
	u, ok := strings.CutPrefix(string(tok), "ok:")
	if !ok || u == "" {
		return "", "", errors.New("bad token")
	}
	return u, "", nil
}

type env struct {
	srv   *httptest.Server
	svc   *chat.Service
	blobs *blobdir.Store
	h     *Handler
	dir   string // the blob directory
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	svc, err := chat.New(chat.Config{}, memory.NewStore(), memory.NewBus(), memory.NewDirectory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	dir := t.TempDir()
	blobs, err := blobdir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg, blobs, svc, testAuth{}, assets.NewSigner([]byte("test secret")), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return &env{srv: srv, svc: svc, blobs: blobs, h: h, dir: dir}
}

func (e *env) do(t *testing.T, method, path, user string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer ok:"+user)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func pngBytes(t *testing.T) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (e *env) upload(t *testing.T, user string, body []byte, ctype, name string) chat.Asset {
	t.Helper()
	resp := e.do(t, "POST", "/v1/assets?name="+name, user, body, map[string]string{"Content-Type": ctype})
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var a chat.Asset
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) sendWith(t *testing.T, from, to, assetID string) error {
	t.Helper()
	d := make(done, 1)
	r := &chat.Request{Kind: chat.KindSend, From: from, To: []byte(to), ClientID: []byte(fmt.Sprint(time.Now().UnixNano())),
		Body: []byte("see"), AssetID: []byte(assetID), Done: d}
	if err := e.svc.Submit(r); err != nil {
		return err
	}
	return (<-d).Err
}

// TestUploadSendDownload: an image is uploaded, sent, and downloaded by
// its recipient with ranges and caching headers; anyone else gets the same
// 404 as for an asset that does not exist.
func TestUploadSendDownload(t *testing.T) {
	e := newEnv(t, Config{})
	img := pngBytes(t)
	a := e.upload(t, "alice", img, "image/png", "cat.png")
	sum := sha256.Sum256(img)
	if a.Hash != hex.EncodeToString(sum[:]) || a.Size != int64(len(img)) || a.Mime != "image/png" || a.Kind != "image" || !assets.ValidID(a.ID) {
		t.Fatalf("upload answered %+v", a)
	}
	path := "/v1/assets/" + a.ID
	if resp := e.do(t, "GET", path, "bob", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("bob before being sent it: %d", resp.StatusCode)
	}
	if err := e.sendWith(t, "alice", "bob", a.ID); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, "GET", path, "bob", nil, nil)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, img) {
		t.Fatalf("bob's download: %d, %d bytes", resp.StatusCode, len(got))
	}
	for k, want := range map[string]string{
		"Content-Type": "image/png", "X-Content-Type-Options": "nosniff", "ETag": `"` + a.Hash + `"`,
		"Cache-Control": "private, max-age=31536000, immutable", "Content-Disposition": `inline; filename=cat.png`,
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	resp = e.do(t, "GET", path, "bob", nil, map[string]string{"Range": "bytes=10-19"})
	got, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, img[10:20]) {
		t.Fatalf("range: %d %q", resp.StatusCode, got)
	}
	resp = e.do(t, "GET", path, "bob", nil, map[string]string{"If-None-Match": `"` + a.Hash + `"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	// Everyone else, and every kind of bad request, sees one 404.
	missing := e.do(t, "GET", "/v1/assets/"+assets.NewID(), "bob", nil, nil)
	mb, _ := io.ReadAll(missing.Body)
	for name, resp := range map[string]*http.Response{
		"carol":     e.do(t, "GET", path, "carol", nil, nil),
		"no token":  e.do(t, "GET", path, "", nil, nil),
		"bad token": e.do(t, "GET", path, "", nil, map[string]string{"Authorization": "Bearer nope"}),
		"bad id":    e.do(t, "GET", "/v1/assets/..%2f..%2fetc", "bob", nil, nil),
	} {
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 404 || !bytes.Equal(b, mb) {
			t.Errorf("%s: %d %s; want the 404 of a missing asset", name, resp.StatusCode, b)
		}
	}
}

func TestSignedURLs(t *testing.T) {
	e := newEnv(t, Config{SignedURLTTL: time.Minute})
	a := e.upload(t, "alice", []byte("%PDF-1.7\nhello"), "application/pdf", "doc.pdf")
	resp := e.do(t, "POST", "/v1/assets/"+a.ID+"/url", "alice", nil, nil)
	var u struct{ URL string }
	json.NewDecoder(resp.Body).Decode(&u)
	if resp.StatusCode != 200 || !strings.HasPrefix(u.URL, "/v1/assets/"+a.ID+"?exp=") {
		t.Fatalf("signed URL: %d %q", resp.StatusCode, u.URL)
	}
	resp = e.do(t, "GET", u.URL, "", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != "attachment; filename=doc.pdf" {
		t.Fatalf("signed download: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	tampered := strings.Replace(u.URL, "exp=", "exp=9", 1)
	if resp := e.do(t, "GET", tampered, "", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("tampered signed URL: %d", resp.StatusCode)
	}
	path := "/v1/assets/" + a.ID
	expired := path + "?" + e.h.signer.Sign(path, time.Now().Add(-time.Second))
	if resp := e.do(t, "GET", expired, "", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("expired signed URL: %d", resp.StatusCode)
	}
	other := e.upload(t, "alice", []byte("%PDF-1.7\nother"), "application/pdf", "other.pdf")
	moved := strings.Replace(u.URL, a.ID, other.ID, 1)
	if resp := e.do(t, "GET", moved, "", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a signed URL moved to another asset: %d", resp.StatusCode)
	}
	if resp := e.do(t, "POST", "/v1/assets/"+a.ID+"/url", "mallory", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a signed URL for someone who may not read it: %d", resp.StatusCode)
	}
}

// TestUploadRefusals: each bad upload gets its documented status, and
// nothing of it is stored.
func TestUploadRefusals(t *testing.T) {
	e := newEnv(t, Config{MaxUploadBytes: 1000})
	cases := []struct {
		name, user, ctype, fname string
		body                     []byte
		status                   int
	}{
		{"no token", "", "image/png", "", pngBytes(t), 401},
		{"over the limit", "alice", "application/octet-stream", "", bytes.Repeat([]byte("x"), 1001), 413},
		{"a pdf claimed as an image", "alice", "image/jpeg", "", []byte("%PDF-1.7\n..."), 415},
		{"a path for a name", "alice", "text/plain", "..%2Fetc%2Fpasswd", []byte("hi"), 400},
	}
	for _, c := range cases {
		resp := e.do(t, "POST", "/v1/assets?name="+c.fname, c.user, c.body, map[string]string{"Content-Type": c.ctype})
		if resp.StatusCode != c.status {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.status)
		}
		if _, err := e.blobs.Stat(context.Background(), sha256.Sum256(c.body)); !errors.Is(err, assets.ErrNotFound) {
			t.Errorf("%s: the refused upload was stored", c.name)
		}
	}
}

// TestForwardToManyStoresOnce: an image forwarded to 100 chats is uploaded
// once and stored once; every recipient may download it, and a second
// upload of the same bytes by someone else is still stored once.
func TestForwardToManyStoresOnce(t *testing.T) {
	e := newEnv(t, Config{})
	img := pngBytes(t)
	a := e.upload(t, "alice", img, "image/png", "viral.png")
	for i := range 100 {
		to := fmt.Sprintf("friend%03d", i)
		from := "alice"
		if i > 0 {
			from = fmt.Sprintf("friend%03d", i-1) // each forwards it on
		}
		if err := e.sendWith(t, from, to, a.ID); err != nil {
			t.Fatalf("%s forwarding to %s: %v", from, to, err)
		}
	}
	for _, u := range []string{"friend000", "friend050", "friend099"} {
		if resp := e.do(t, "GET", "/v1/assets/"+a.ID, u, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("%s's download: %d", u, resp.StatusCode)
		}
	}
	e.upload(t, "mallory", img, "image/png", "same.png") // the same bytes, uploaded again
	files := 0
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, string(filepath.Separator)+"blobs"+string(filepath.Separator)) {
			files++
		}
		return nil
	})
	if files != 1 {
		t.Fatalf("%d files stored for one image sent to 100 chats and uploaded twice", files)
	}
}

// TestQuotaAndRate: a user's uploads stop at their quota (403
// quota_exceeded, nothing recorded) and at their rate (429 rate_limited);
// other users are not affected.
func TestQuotaAndRate(t *testing.T) {
	e := newEnv(t, Config{QuotaBytes: 2500, UploadsPerMinute: 5})
	up := func(user string, n int) int {
		t.Helper()
		body := append([]byte(user), bytes.Repeat([]byte("x"), n)...)
		resp := e.do(t, "POST", "/v1/assets", user, body, map[string]string{"Content-Type": "text/plain"})
		return resp.StatusCode
	}
	if s := up("alice", 1000); s != 201 {
		t.Fatalf("first upload: %d", s)
	}
	if s := up("alice", 1000); s != 201 {
		t.Fatalf("second upload: %d", s)
	}
	if s := up("alice", 1000); s != 403 {
		t.Fatalf("an upload past the quota: %d, want 403", s)
	}
	if used, _ := e.svc.AssetUsage(context.Background(), "alice"); used != 2010 {
		t.Fatalf("alice's usage %d, want 2010", used)
	}
	for i := range 2 { // the fourth and fifth starts this minute (the third was refused)
		if s := up("alice", 10); s != 201 {
			t.Fatalf("small upload %d within the quota: %d", i, s)
		}
	}
	if s := up("alice", 10); s != 429 {
		t.Fatalf("the sixth upload within a minute: %d, want 429", s)
	}
	if s := up("bob", 1000); s != 201 {
		t.Fatalf("bob's upload: %d", s)
	}
}

// TestByHashOnlyWhatYouMayRead: "skip the upload, the server has it" is
// answered only with an asset the caller may already read; for anyone
// else the bytes do not exist.
func TestByHashOnlyWhatYouMayRead(t *testing.T) {
	e := newEnv(t, Config{})
	img := pngBytes(t)
	a := e.upload(t, "alice", img, "image/png", "p.png")
	path := "/v1/assets/sha256/" + a.Hash
	missing := e.do(t, "GET", "/v1/assets/sha256/"+strings.Repeat("0", 64), "bob", nil, nil)
	mb, _ := io.ReadAll(missing.Body)
	resp := e.do(t, "GET", path, "bob", nil, nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || !bytes.Equal(b, mb) {
		t.Fatalf("bob asking for bytes he was never sent: %d %s; want the 404 of unknown bytes", resp.StatusCode, b)
	}
	if err := e.sendWith(t, "alice", "bob", a.ID); err != nil {
		t.Fatal(err)
	}
	var got chat.Asset
	resp = e.do(t, "GET", path, "bob", nil, nil)
	json.NewDecoder(resp.Body).Decode(&got)
	if resp.StatusCode != 200 || got.ID != a.ID {
		t.Fatalf("bob after being sent it: %d %+v", resp.StatusCode, got)
	}
	if resp := e.do(t, "GET", path, "carol", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("carol: %d", resp.StatusCode)
	}
	if resp := e.do(t, "GET", path, "", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}

// TestDownloadThroughReads: a blob store without local files (S3) is
// served through ranged Reads, with the same bytes, ranges and headers as
// the local directory's files.
func TestDownloadThroughReads(t *testing.T) {
	e := newEnv(t, Config{})
	body := bytes.Repeat([]byte("0123456789"), 10_000)
	body = append([]byte("%PDF-1.7\n"), body...)
	a := e.upload(t, "alice", body, "application/pdf", "big.pdf")
	h, err := New(Config{}, struct{ assets.Blobs }{e.blobs}, e.svc, testAuth{}, assets.NewSigner([]byte("k")), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, rng := range []string{"", "bytes=0-0", "bytes=5000-70000", "bytes=-10"} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/assets/"+a.ID, nil)
		req.Header.Set("Authorization", "Bearer ok:alice")
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := body
		switch rng {
		case "bytes=0-0":
			want = body[:1]
		case "bytes=5000-70000":
			want = body[5000:70001]
		case "bytes=-10":
			want = body[len(body)-10:]
		}
		if !bytes.Equal(got, want) || resp.Header.Get("ETag") != `"`+a.Hash+`"` {
			t.Fatalf("range %q: %d, %d bytes, want %d", rng, resp.StatusCode, len(got), len(want))
		}
	}
}
