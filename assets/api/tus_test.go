package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

// tusEnv is an env with resumable uploads, and its Handler.
type tusEnv struct {
	*env
	h   *Handler
	dir string
}

func newTusEnv(t *testing.T, cfg Config) *tusEnv {
	t.Helper()
	cfg.UploadDir = t.TempDir() + "/uploads" // New creates it
	e := newEnv(t, cfg)
	return &tusEnv{env: e, h: e.h, dir: cfg.UploadDir}
}

// tus is a minimal tus 1.0 client: the requests tus-js-client makes.
type tus struct {
	t    *testing.T
	e    *tusEnv
	user string // "" sends no token
}

func (c tus) do(method, url string, body io.Reader, n int64, hdr map[string]string) (*http.Response, error) {
	c.t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = c.e.srv.URL + url
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Tus-Resumable", "1.0.0")
	if c.user != "" {
		req.Header.Set("Authorization", "Bearer ok:"+c.user)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		c.t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func (c tus) must(method, url string, body io.Reader, n int64, hdr map[string]string) *http.Response {
	c.t.Helper()
	resp, err := c.do(method, url, body, n, hdr)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// create starts an upload of length bytes and returns the response (its
// Location is the upload's URL).
func (c tus) create(length int64, meta map[string]string) *http.Response {
	c.t.Helper()
	var kv []string
	for k, v := range meta {
		kv = append(kv, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return c.must("POST", "/v1/assets/uploads/", nil, 0, map[string]string{
		"Upload-Length": strconv.FormatInt(length, 10), "Upload-Metadata": strings.Join(kv, ","),
	})
}

// start creates an upload and returns its URL, failing unless it is 201.
func (c tus) start(length int64, meta map[string]string) string {
	c.t.Helper()
	resp := c.create(length, meta)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.Contains(loc, "/v1/assets/uploads/") {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("create: %d %q %s", resp.StatusCode, loc, b)
	}
	return loc
}

func (c tus) patch(url string, off int64, body io.Reader, n int64) (*http.Response, error) {
	return c.do("PATCH", url, body, n, map[string]string{
		"Upload-Offset": strconv.FormatInt(off, 10), "Content-Type": "application/offset+octet-stream",
	})
}

// offset asks the server how much of an upload it has.
func (c tus) offset(url string) int64 {
	c.t.Helper()
	resp := c.must("HEAD", url, nil, 0, nil)
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if resp.StatusCode != 200 || err != nil || resp.Header.Get("Cache-Control") != "no-store" {
		c.t.Fatalf("HEAD: %d, Upload-Offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	return off
}

// cutReader yields n bytes of r, then fails, as a connection that drops.
type cutReader struct {
	r io.Reader
	n int64
}

var errCut = errors.New("connection cut")

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// pdf is n bytes of a "PDF": its magic, then noise.
func pdf(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	copy(b, "%PDF-1.7\n")
	return b
}

// TestTusResume: a 24 MiB upload whose first PATCH is cut midway resumes
// where the server's HEAD says and completes with the asset in the last
// response; sent to bob, it downloads in ranges whose bytes hash to the
// upload's (carol gets 404); its upload is then gone.
func TestTusResume(t *testing.T) {
	e := newTusEnv(t, Config{MaxUploadBytes: 32 << 20})
	alice := tus{t, e, "alice"}
	data := pdf(24 << 20)
	url := alice.start(int64(len(data)), map[string]string{"filename": "plan.pdf", "filetype": "application/pdf"})

	half := int64(len(data) / 2)
	if resp, err := alice.patch(url, 0, &cutReader{bytes.NewReader(data), half}, int64(len(data))); err == nil {
		t.Fatalf("the cut PATCH answered %d", resp.StatusCode)
	}
	off := alice.offset(url)
	t.Logf("the server kept %d of the %d bytes sent before the cut", off, half)
	if off <= 0 || off > half {
		t.Fatalf("offset after the cut: %d, want in (0, %d]", off, half)
	}
	// A wrong offset is refused (409), and nothing changes.
	if resp, _ := alice.patch(url, off+1, bytes.NewReader(data[off+1:]), int64(len(data))-off-1); resp == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("PATCH at a wrong offset: %v", resp)
	}
	resp, err := alice.patch(url, off, bytes.NewReader(data[off:]), int64(len(data))-off)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	var a chat.Asset
	if err := json.Unmarshal(body, &a); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("last PATCH: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Asset-Id") != a.ID || !assets.ValidID(a.ID) || resp.Header.Get("Asset-Sha256") != hash ||
		resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
		t.Fatalf("last PATCH headers: %v", resp.Header)
	}
	if a.Hash != hash || a.Size != int64(len(data)) || a.Mime != "application/pdf" || a.Kind != "file" || a.Name != "plan.pdf" {
		t.Fatalf("asset: %+v", a)
	}

	// Alice sends it to bob, who downloads it in ranges (as a client that
	// resumes downloads does); the ranges add up to the same hash.
	if err := e.sendWith(t, "alice", "bob", a.ID); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	const chunk = 3<<20 + 12345
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data)) - 1
		rng := e.do(t, "GET", "/v1/assets/"+a.ID, "bob", nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, end)})
		n, err := io.Copy(h, rng.Body)
		if err != nil || rng.StatusCode != http.StatusPartialContent || n != int64(end-off+1) {
			t.Fatalf("bob's range %d-%d: %d, %d bytes, %v", off, end, rng.StatusCode, n, err)
		}
		if cd := rng.Header.Get("Content-Disposition"); cd != "attachment; filename=plan.pdf" {
			t.Errorf("Content-Disposition %q", cd)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		t.Fatalf("bob's ranges hash to %s, want %s", got, hash)
	}
	if resp := e.do(t, "GET", "/v1/assets/"+a.ID, "carol", nil, map[string]string{"Range": "bytes=0-99"}); resp.StatusCode != 404 {
		t.Fatalf("carol's range: %d", resp.StatusCode)
	}

	if resp := alice.must("HEAD", url, nil, 0, nil); resp.StatusCode != 404 {
		t.Fatalf("HEAD of the finished upload: %d", resp.StatusCode)
	}
	if ents, _ := os.ReadDir(e.dir); len(ents) != 0 {
		t.Fatalf("left in the upload directory: %v", ents)
	}
}

// TestTusCreationWithUpload: a POST that carries the whole file (tus's
// creation-with-upload) answers 201 with the asset.
func TestTusCreationWithUpload(t *testing.T) {
	e := newTusEnv(t, Config{})
	img := pngBytes(t)
	resp := tus{t, e, "alice"}.must("POST", "/v1/assets/uploads", bytes.NewReader(img), int64(len(img)), map[string]string{
		"Upload-Length": strconv.Itoa(len(img)), "Content-Type": "application/offset+octet-stream",
		"Upload-Metadata": "filetype " + base64.StdEncoding.EncodeToString([]byte("image/png")),
	})
	var a chat.Asset
	json.NewDecoder(resp.Body).Decode(&a)
	if resp.StatusCode != http.StatusCreated || a.ID == "" || resp.Header.Get("Asset-Id") != a.ID || a.Mime != "image/png" {
		t.Fatalf("creation with upload: %d %v %+v", resp.StatusCode, resp.Header, a)
	}
	if get := e.do(t, "GET", "/v1/assets/"+a.ID, "alice", nil, nil); get.StatusCode != 200 {
		t.Fatalf("download: %d", get.StatusCode)
	}
}

// TestTusOtherUsersUpload: HEAD, PATCH and DELETE of someone else's upload
// get exactly the response of a missing upload, even when the creator put
// an "owner" in its metadata, and the upload is untouched.
func TestTusOtherUsersUpload(t *testing.T) {
	e := newTusEnv(t, Config{})
	alice, bob := tus{t, e, "alice"}, tus{t, e, "bob"}
	data := pdf(1000)
	url := alice.start(int64(len(data)), map[string]string{"owner": "bob", "filename": "a.pdf"})
	if resp, err := alice.patch(url, 0, bytes.NewReader(data[:400]), 400); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %v %v", resp, err)
	}
	missing := url[:strings.LastIndexByte(url, '/')+1] + assets.NewID()
	type answer struct {
		status int
		hdr    http.Header
		body   string
	}
	ask := func(c tus, method, url string) answer {
		var resp *http.Response
		if method == "PATCH" {
			resp, _ = c.patch(url, 400, bytes.NewReader(data[400:]), 600)
		} else {
			resp = c.must(method, url, nil, 0, nil)
		}
		if resp == nil {
			t.Fatalf("%s: no response", method)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Header.Del("Date")
		return answer{resp.StatusCode, resp.Header, string(b)}
	}
	for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
		want := ask(bob, m, missing)
		if want.status != http.StatusNotFound {
			t.Fatalf("%s of a missing upload: %d", m, want.status)
		}
		for _, u := range []string{url, e.srv.URL + "/v1/assets/uploads/not-an-id"} {
			if got := ask(bob, m, u); got.status != want.status || got.body != want.body || !headersEqual(got.hdr, want.hdr) {
				t.Errorf("bob's %s of %s: %+v\nwant that of a missing upload: %+v", m, u, got, want)
			}
		}
	}
	if off := alice.offset(url); off != 400 {
		t.Fatalf("alice's upload after bob's attempts: offset %d", off)
	}
	resp := alice.must("HEAD", url, nil, 0, nil)
	if md := resp.Header.Get("Upload-Metadata"); !strings.Contains(md, "owner "+base64.StdEncoding.EncodeToString([]byte("alice"))) {
		t.Fatalf("metadata %q: the owner is not the creator", md)
	}
	if resp := alice.must("DELETE", url, nil, 0, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("alice's DELETE: %d", resp.StatusCode)
	}
	if resp := alice.must("HEAD", url, nil, 0, nil); resp.StatusCode != 404 {
		t.Fatalf("HEAD after DELETE: %d", resp.StatusCode)
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}

// TestTusRefusals: no token, too large, a name that is a path, a type
// mismatch found at the end; each with its documented status, and nothing
// of it kept.
func TestTusRefusals(t *testing.T) {
	e := newTusEnv(t, Config{MaxUploadBytes: 1000})
	alice, anon := tus{t, e, "alice"}, tus{t, e, ""}

	if resp := anon.create(10, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("create without a token: %d", resp.StatusCode)
	}
	url := alice.start(10, nil)
	for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
		if resp := anon.must(m, url, nil, 0, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", m, resp.StatusCode)
		}
		bad := tus{t, e, ""}
		if resp := bad.must(m, url, nil, 0, map[string]string{"Authorization": "Bearer nope"}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a bad token: %d", m, resp.StatusCode)
		}
	}
	// A browser can read the 401 (CORS headers as tusd sets them).
	resp := anon.must("POST", "/v1/assets/uploads/", nil, 0, map[string]string{"Origin": "https://app.example", "Upload-Length": "10"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Asset-Id") || resp.Header.Get("Tus-Resumable") != "1.0.0" {
		t.Errorf("401 to a browser: %d %v", resp.StatusCode, resp.Header)
	}
	// Discovery and CORS preflight need no token.
	resp = anon.must("OPTIONS", "/v1/assets/uploads/", nil, 0, map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
	if resp.StatusCode != 200 || resp.Header.Get("Tus-Max-Size") != "1000" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}

	if resp := alice.create(1001, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("create over the limit: %d", resp.StatusCode)
	}
	// More bytes than declared: refused while streaming.
	if resp, err := alice.patch(url, 0, bytes.NewReader(make([]byte, 11)), 11); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PATCH past the declared length: %v %v", resp, err)
	}
	if resp := alice.create(10, map[string]string{"filename": "../etc/passwd"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a path for a file name: %d", resp.StatusCode)
	}

	// A PDF claimed as a photo: refused when complete, removed, not stored.
	data := pdf(900)
	url = alice.start(int64(len(data)), map[string]string{"filetype": "image/jpeg"})
	if resp, err := alice.patch(url, 0, bytes.NewReader(data[:500]), 500); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %v %v", resp, err)
	}
	resp, err := alice.patch(url, 500, bytes.NewReader(data[500:]), 400)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusUnsupportedMediaType || body.Code != "type_mismatch" || resp.Header.Get("Asset-Id") != "" {
		t.Fatalf("type mismatch: %d %+v", resp.StatusCode, body)
	}
	if resp := alice.must("HEAD", url, nil, 0, nil); resp.StatusCode != 404 {
		t.Errorf("HEAD of the refused upload: %d", resp.StatusCode)
	}
	if _, err := e.blobs.Stat(context.Background(), sha256.Sum256(data)); !errors.Is(err, assets.ErrNotFound) {
		t.Errorf("the refused upload was stored: %v", err)
	}
}

// TestTusJanitor: an unfinished upload is kept until it has received
// nothing for UploadExpiry, then removed with its files.
func TestTusJanitor(t *testing.T) {
	e := newTusEnv(t, Config{UploadExpiry: time.Hour})
	alice := tus{t, e, "alice"}
	data := pdf(100)
	url := alice.start(int64(len(data)), nil)
	if resp, err := alice.patch(url, 0, bytes.NewReader(data[:50]), 50); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %v %v", resp, err)
	}
	if n := e.h.tus.sweep(time.Now().Add(50 * time.Minute)); n != 0 {
		t.Fatalf("swept %d uploads before they expired", n)
	}
	if off := alice.offset(url); off != 50 {
		t.Fatalf("offset %d", off)
	}
	if n := e.h.tus.sweep(time.Now().Add(61 * time.Minute)); n != 1 {
		t.Fatalf("swept %d expired uploads, want 1", n)
	}
	if resp := alice.must("HEAD", url, nil, 0, nil); resp.StatusCode != 404 {
		t.Fatalf("HEAD of the expired upload: %d", resp.StatusCode)
	}
	if ents, _ := os.ReadDir(e.dir); len(ents) != 0 {
		t.Fatalf("left in the upload directory: %v", ents)
	}
}

// TestNoUploadDir: without an UploadDir there are no tus routes.
func TestNoUploadDir(t *testing.T) {
	e := newEnv(t, Config{})
	if resp := e.do(t, "POST", "/v1/assets/uploads/", "alice", nil, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "10"}); resp.StatusCode != 404 {
		t.Fatalf("POST /v1/assets/uploads/ without an upload directory: %d", resp.StatusCode)
	}
}
