// Package api is the asset service's HTTP API (docs/assets.md): uploads
// into a content-addressed blob store, downloads authorized by the chat
// core's grants or by signed URLs.
//
//	POST /v1/assets                  upload a file in one request (small files)
//	GET  /v1/assets/{id}             download (Range, ETag, immutable caching)
//	DELETE /v1/assets/{id}           its owner deletes it
//	POST /v1/assets/{id}/url         a signed URL for the asset, for a CDN or a browser
//	/v1/assets/uploads/              resumable uploads, tus 1.0 (tus.go; with Config.UploadDir)
//
// Every refusal to read an asset, whether it does not exist or the caller
// may not see it, is the same 404, so asset ids cannot be probed.
package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

// Config configures the API. The zero value means defaults.
type Config struct {
	// Listen is the TCP address of the API. Default ":8081"; "off"
	// disables it. (serve reads it; the Handler does not listen.)
	Listen string `yaml:"listen" help:"TCP address of the asset HTTP API, /v1/assets (default :8081; off disables it)"`
	// MaxUploadBytes is the largest file accepted. Default 2 GiB.
	MaxUploadBytes int64 `yaml:"max_upload_bytes" help:"largest file accepted (default 2147483648, 2 GiB)"`
	// QuotaBytes is the total size of the files one user may upload.
	// Default 20 GiB; -1 means no limit.
	QuotaBytes int64 `yaml:"quota_bytes" help:"total size of the files one user may upload (default 21474836480, 20 GiB; -1: no limit)"`
	// UploadsPerMinute is how many uploads one user may start per minute
	// (a burst of as many is allowed). Default 60.
	UploadsPerMinute int `yaml:"uploads_per_minute" help:"uploads one user may start per minute (default 60)"`
	// SignedURLTTL is how long a signed URL stays valid. Default 1h.
	SignedURLTTL time.Duration `yaml:"signed_url_ttl" help:"how long a signed download URL stays valid (default 1h)"`
	// UploadExpiry is how long an unfinished resumable upload is kept
	// after its last byte arrived. Default 24h.
	UploadExpiry time.Duration `yaml:"upload_expiry" help:"how long an unfinished resumable (tus) upload is kept after its last byte arrived (default 24h)"`
	// UnsentExpiry is how long an uploaded file that was never sent in a
	// message (nor made a profile photo or group icon) is kept. Default
	// 24h.
	UnsentExpiry time.Duration `yaml:"unsent_expiry" help:"how long an uploaded file that is never sent (nor made a profile photo or group icon) is kept (default 24h)"`
	// Retention is how long a file is kept after its upload, sent or not
	// (media retention); profile photos and group icons in use are kept.
	// Default 0: until its owner deletes it.
	Retention time.Duration `yaml:"retention" help:"how long files are kept after their upload, sent or not; profile photos and group icons in use are kept (default 0: until the owner deletes them)"`
	// BlobGrace is how long the bytes of deleted files stay on disk before
	// the collector removes them. Default 1h.
	BlobGrace time.Duration `yaml:"blob_grace" help:"how long the bytes of deleted files stay in the blob store before they are removed (default 1h)"`
	// CollectInterval is how often the collector runs. Default 1h.
	CollectInterval time.Duration `yaml:"collect_interval" help:"how often expired files are collected (default 1h)"`
	// UploadDir is the directory of unfinished resumable uploads, created
	// if missing; "" disables resumable uploads. (serve sets it to
	// <data_dir>/uploads.)
	UploadDir string `yaml:"-"`
}

// SetDefaults fills in the defaults of zero fields.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = ":8081"
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = 2 << 30
	}
	if c.QuotaBytes == 0 {
		c.QuotaBytes = 20 << 30
	}
	if c.UploadsPerMinute == 0 {
		c.UploadsPerMinute = 60
	}
	if c.SignedURLTTL == 0 {
		c.SignedURLTTL = time.Hour
	}
	if c.UploadExpiry == 0 {
		c.UploadExpiry = 24 * time.Hour
	}
	if c.UnsentExpiry == 0 {
		c.UnsentExpiry = 24 * time.Hour
	}
	if c.BlobGrace == 0 {
		c.BlobGrace = time.Hour
	}
	if c.CollectInterval == 0 {
		c.CollectInterval = time.Hour
	}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	if c.MaxUploadBytes < 0 || c.SignedURLTTL < 0 || c.UploadExpiry < 0 || c.UnsentExpiry < 0 || c.Retention < 0 || c.BlobGrace < 0 || c.CollectInterval < 0 {
		return errors.New("assets: max_upload_bytes, signed_url_ttl, upload_expiry, unsent_expiry, retention, blob_grace and collect_interval must not be negative")
	}
	if c.Retention > 0 && c.Retention < c.UnsentExpiry {
		return fmt.Errorf("assets: retention %v is shorter than unsent_expiry %v", c.Retention, c.UnsentExpiry)
	}
	return nil
}

// Authenticator checks a bearer token (the WebSocket's tokens).
type Authenticator interface {
	Authenticate(token []byte) (user, device string, err error)
}

// Catalog is what the API needs of the chat core: *chat.Service.
type Catalog interface {
	Submit(r *chat.Request) error
	MayRead(ctx context.Context, id, user string) (chat.Asset, error)
	GetAsset(ctx context.Context, id string) (chat.Asset, error)
	AssetUsage(ctx context.Context, user string) (int64, error)
	AssetsByHash(ctx context.Context, hash string) ([]string, error)
}

// Handler serves the API. Safe for concurrent use.
type Handler struct {
	rate   *limiter
	bus    chat.Bus // nil: no upload events
	cfg    Config
	blobs  assets.Blobs
	cat    Catalog
	auth   Authenticator
	signer *assets.Signer
	log    *slog.Logger
	mux    *http.ServeMux
	tus    *tusUploads // nil without an UploadDir
}

// New returns the API's handler.
func New(cfg Config, blobs assets.Blobs, cat Catalog, auth Authenticator, signer *assets.Signer, log *slog.Logger) (*Handler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{rate: &limiter{perMinute: cfg.UploadsPerMinute}, cfg: cfg, blobs: blobs, cat: cat, auth: auth, signer: signer, log: log, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /v1/assets", h.upload)
	h.mux.HandleFunc("GET /v1/assets/{id}", h.download)
	h.mux.HandleFunc("HEAD /v1/assets/{id}", h.download)
	// GET /v1/assets/{id}/thumb. A wildcard, not "thumb": a literal there
	// would clash with the tus routes under /v1/assets/uploads/.
	h.mux.HandleFunc("GET /v1/assets/{id}/{variant}", h.download)
	h.mux.HandleFunc("DELETE /v1/assets/{id}", h.delete)
	h.mux.HandleFunc("POST /v1/assets/{id}/url", h.signedURL)
	h.mux.HandleFunc("GET /v1/assets/sha256/{hash}", h.byHash)
	if cfg.UploadDir != "" {
		t, err := newTusUploads(h)
		if err != nil {
			return nil, err
		}
		h.tus = t
		// Creation takes the base path with or without its slash. Patterns
		// and not a "/v1/assets/uploads/" subtree: that would overlap
		// "POST /v1/assets/{id}/url".
		for _, p := range []string{
			"POST /v1/assets/uploads", "POST /v1/assets/uploads/{$}",
			"OPTIONS /v1/assets/uploads", "OPTIONS /v1/assets/uploads/{$}",
			"HEAD /v1/assets/uploads/{id}", "PATCH /v1/assets/uploads/{id}",
			"DELETE /v1/assets/uploads/{id}", "OPTIONS /v1/assets/uploads/{id}",
		} {
			h.mux.Handle(p, t)
		}
	}
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close stops the Handler's background work (the janitor of abandoned
// resumable uploads) and waits for it. It does not wait for requests in
// flight: shut the server down first. Safe to call more than once.
func (h *Handler) Close() error {
	if h.tus != nil {
		h.tus.close()
	}
	return nil
}

// apiError writes a JSON error body with a stable code.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

func notFound(w http.ResponseWriter) {
	apiError(w, http.StatusNotFound, "not_found", "no such asset")
}

// user returns the caller of a request with a bearer token, or "".
func (h *Handler) user(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	u, _, err := h.auth.Authenticate([]byte(tok))
	if err != nil {
		return ""
	}
	return u
}

// upload stores the request body as a new asset.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	user := h.user(r)
	if user == "" {
		apiError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
		return
	}
	if r.ContentLength > h.cfg.MaxUploadBytes {
		tooLarge(h.cfg.MaxUploadBytes).writeTo(w)
		return
	}
	if rf := h.admit(r.Context(), user, max(r.ContentLength, 0)); rf != nil {
		rf.writeTo(w)
		return
	}
	name, err := fileName(r.URL.Query().Get("name"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	a, err := h.store(r.Context(), user, r.Body, claimedType(r.Header.Get("Content-Type")), name)
	if errors.Is(err, errBlobGone) {
		w.Header().Set("Retry-After", strconv.Itoa(int(chat.FenceSlack/time.Second)+1))
	}
	if err != nil {
		refusalOf(err).writeTo(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/assets/"+a.ID)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(a)
}

// refusal is an upload refused, as its client is told: an HTTP status and
// a stable code (docs/assets.md, Errors).
type refusal struct {
	status    int
	code, msg string
}

func (e *refusal) Error() string { return e.code + ": " + e.msg }

func (e *refusal) writeTo(w http.ResponseWriter) { apiError(w, e.status, e.code, e.msg) }

// refusalOf returns err as the client sees it: err itself if it is a
// *refusal, else a 500.
func refusalOf(err error) *refusal {
	if rf, ok := errors.AsType[*refusal](err); ok {
		return rf
	}
	return &refusal{http.StatusInternalServerError, "internal", "the upload failed: retry"}
}

// claimedType is the media type of a client's claim ("" if none or
// unparsable).
func claimedType(s string) string {
	t, _, _ := mime.ParseMediaType(s)
	return t
}

// store streams r into the blob store as a new asset of user's, named
// name (checked by the caller): its type told from its first bytes and
// checked against claimed (a media type, or ""), its size bounded by
// MaxUploadBytes, its record committed through the catalog. It never holds
// the content in memory. Every error is a *refusal; a refused upload leaves
// nothing that is served. Both the single-request upload and the tus
// uploads end here.
func (h *Handler) store(ctx context.Context, user string, r io.Reader, claimed, name string) (*chat.Asset, error) {
	// What it is comes from its first bytes, before anything is stored.
	body := bufio.NewReaderSize(r, assets.SniffLen)
	head, err := body.Peek(assets.SniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, &refusal{http.StatusBadRequest, "bad_request", "reading the upload: " + err.Error()}
	}
	mimeType, kind := assets.Sniff(head)
	if err := assets.CheckClaim(claimed, mimeType, kind); err != nil {
		return nil, &refusal{http.StatusUnsupportedMediaType, "type_mismatch",
			fmt.Sprintf("the file is %s, not the %s it claims to be", mimeType, claimed)}
	}
	putAt := time.Now().UnixMilli()
	blob, err := h.blobs.Put(ctx, body, h.cfg.MaxUploadBytes)
	switch {
	case errors.Is(err, assets.ErrTooLarge):
		return nil, tooLarge(h.cfg.MaxUploadBytes)
	case err != nil:
		h.log.Warn("asset upload failed", "err", err)
		return nil, &refusal{http.StatusBadRequest, "upload_failed", "the upload did not complete: retry"}
	}
	if rf := h.overQuota(ctx, user, blob.Size); rf != nil {
		return nil, rf // the blob stays unreferenced: never served
	}
	a := &chat.Asset{ID: assets.NewID(), Hash: blob.Hash.String(), Size: blob.Size, Mime: mimeType,
		Kind: kind.String(), Name: name}
	if err := h.record(ctx, user, a, putAt); errors.Is(err, chat.ErrBlobGone) {
		return nil, errBlobGone
	} else if err != nil {
		h.log.Warn("recording an asset failed", "err", err)
		return nil, &refusal{http.StatusServiceUnavailable, "unavailable", "the upload could not be recorded: retry"}
	}
	if h.bus != nil {
		// The asset worker makes its thumbnail.
		if err := h.bus.Emit(StreamAssets, user, []byte(a.ID)); err != nil {
			h.log.Warn("upload event lost: no thumbnail", "asset", a.ID, "err", err)
		}
	}
	return a, nil
}

// SetBus makes the handler announce each recorded upload on bus's
// StreamAssets stream, which the asset Worker consumes. Call it before
// serving.
func (h *Handler) SetBus(bus chat.Bus) { h.bus = bus }

// admit checks, as an upload of declared bytes (0 if unknown) starts,
// the user's upload rate and quota.
func (h *Handler) admit(ctx context.Context, user string, declared int64) *refusal {
	if !h.rate.allow(user, time.Now()) {
		return &refusal{http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("at most %d uploads a minute: retry later", h.cfg.UploadsPerMinute)}
	}
	return h.overQuota(ctx, user, declared)
}

// overQuota refuses an upload of size bytes that would take user past
// the quota. Concurrent uploads of one user may pass it together: the
// quota bounds what a user stores, not to the byte.
func (h *Handler) overQuota(ctx context.Context, user string, size int64) *refusal {
	if h.cfg.QuotaBytes < 0 {
		return nil
	}
	used, err := h.cat.AssetUsage(ctx, user)
	if err != nil {
		h.log.Warn("reading a user's upload usage failed", "err", err)
		return &refusal{http.StatusServiceUnavailable, "unavailable", "retry later"}
	}
	if used+size > h.cfg.QuotaBytes {
		return &refusal{http.StatusForbidden, "quota_exceeded",
			fmt.Sprintf("%d of your %d bytes are used: delete files first", used, h.cfg.QuotaBytes)}
	}
	return nil
}

// limiter is a token bucket per user: perMinute uploads a minute, a burst
// of as many. Safe for concurrent use.
type limiter struct {
	perMinute int
	mu        sync.Mutex
	users     map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxTracked bounds the users a limiter remembers: past it, it forgets
// them all (each gets a full bucket again), which errs on the lenient side.
const maxTracked = 100_000

func (l *limiter) allow(user string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil || len(l.users) >= maxTracked {
		l.users = make(map[string]*bucket)
	}
	b := l.users[user]
	if b == nil {
		b = &bucket{tokens: float64(l.perMinute), at: now}
		l.users[user] = b
	}
	b.tokens = min(float64(l.perMinute), b.tokens+now.Sub(b.at).Minutes()*float64(l.perMinute))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func tooLarge(limit int64) *refusal {
	return &refusal{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("files are at most %d bytes", limit)}
}

// fileName checks a file's display name: a name, not a path.
func fileName(s string) (string, error) {
	switch {
	case s == "":
		return "", nil
	case len(s) > 255 || !utf8.ValidString(s):
		return "", errors.New(`"name" must be at most 255 bytes of UTF-8`)
	case strings.ContainsAny(s, "/\\\x00") || s == "." || s == "..":
		return "", errors.New(`"name" must be a file name, not a path`)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", errors.New(`"name" must not hold control characters`)
		}
	}
	return s, nil
}

// done is a chat.Completer for one request.
type done chan chat.Result

func (d done) Complete(_ *chat.Request, res chat.Result) { d <- res }

// errBlobGone: the blob an upload was stored as was deleted by the
// collector while the upload ran (it held the same bytes as a file deleted
// a while before). Rare; nothing was recorded, and the bytes must be
// stored again: the tus handler does so from its file, a single-request
// upload is answered 503 with a Retry-After past chat.FenceSlack.
var errBlobGone = &refusal{http.StatusServiceUnavailable, "unavailable", "the upload met a clean-up of the same bytes: upload it again"}

// record commits a's record through the chat core and waits for it.
// putAt is when the Put of its blob began (unix ms).
func (h *Handler) record(ctx context.Context, owner string, a *chat.Asset, putAt int64) error {
	return submit(ctx, h.cat, &chat.Request{Kind: chat.KindAsset, From: owner, Asset: a, PutAt: putAt})
}

// download serves an asset to a caller that may read it: by token, or
// by a signed URL.
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !assets.ValidID(id) {
		notFound(w)
		return
	}
	var a chat.Asset
	var err error
	if q := r.URL.Query(); q.Has("sig") {
		if err = h.signer.Verify(r.URL.Path, q.Get("exp"), q.Get("sig"), time.Now()); err == nil {
			a, err = h.cat.GetAsset(r.Context(), id)
		}
	} else if user := h.user(r); user != "" {
		a, err = h.cat.MayRead(r.Context(), id, user)
	} else {
		err = chat.ErrAssetNotFound
	}
	switch r.PathValue("variant") {
	case "", "thumb":
	default:
		err = chat.ErrAssetNotFound
	}
	if err == nil && r.PathValue("variant") == "thumb" {
		// The thumbnail is readable by whoever may read the asset.
		if a.Thumb == "" {
			err = chat.ErrAssetNotFound // none (yet): the worker makes it after the upload
		} else {
			a, err = h.cat.GetAsset(r.Context(), a.Thumb)
		}
	}
	if err != nil {
		if !errors.Is(err, chat.ErrAssetNotFound) && !errors.Is(err, assets.ErrBadSignature) && !errors.Is(err, assets.ErrExpired) {
			h.log.Warn("asset lookup failed", "err", err)
		}
		notFound(w)
		return
	}
	hash, err := assets.ParseHash(a.Hash)
	if err != nil {
		notFound(w)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.Mime)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", `"`+a.Hash+`"`)
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	kind, _ := assets.ParseKind(a.Kind)
	disp := assets.Disposition(kind)
	if a.Name != "" {
		disp = mime.FormatMediaType(disp, map[string]string{"filename": a.Name})
	}
	hd.Set("Content-Disposition", disp)
	if fo, ok := h.blobs.(assets.FileOpener); ok {
		// A local file: http.ServeContent sends it with sendfile(2).
		f, err := fo.OpenFile(r.Context(), hash)
		if err != nil {
			h.log.Warn("opening an asset's blob failed", "asset", a.ID, "err", err)
			apiError(w, http.StatusServiceUnavailable, "unavailable", "retry later")
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
		return
	}
	rs := &blobReader{ctx: r.Context(), blobs: h.blobs, hash: hash, size: a.Size}
	defer rs.Close()
	http.ServeContent(w, r, "", time.Time{}, rs)
}

// callerAndID returns the caller of a request on /v1/assets/{id} and the
// id, or answers 404 and false without a valid token or id.
func (h *Handler) callerAndID(w http.ResponseWriter, r *http.Request) (user, id string, ok bool) {
	user, id = h.user(r), r.PathValue("id")
	if user == "" || !assets.ValidID(id) {
		notFound(w)
		return "", "", false
	}
	return user, id, true
}

// delete answers DELETE /v1/assets/{id}: the owner deletes a file. Who
// was sent it can no longer download it, and its bytes no longer count
// against the owner's quota.
func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	user, id, ok := h.callerAndID(w, r)
	if !ok {
		return
	}
	err := submit(r.Context(), h.cat, &chat.Request{Kind: chat.KindAssetDelete, From: user, AssetID: []byte(id)})
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, chat.ErrAssetInUse):
		apiError(w, http.StatusConflict, "in_use", chat.ErrAssetInUse.Message)
	case errors.Is(err, chat.ErrAssetNotFound):
		notFound(w)
	default:
		h.log.Warn("deleting an asset failed", "err", err)
		apiError(w, http.StatusServiceUnavailable, "unavailable", "retry later")
	}
}

// byHash answers GET /v1/assets/sha256/{hash}: an asset with those bytes
// that the caller may already read, so that they can send it without
// uploading it again. An asset of those bytes that the caller may not
// read is not admitted to exist: the answer is the same 404, so nobody
// learns what others have uploaded (docs/assets.md, "Deduplication").
func (h *Handler) byHash(w http.ResponseWriter, r *http.Request) {
	user := h.user(r)
	hash, err := assets.ParseHash(strings.ToLower(r.PathValue("hash")))
	if user == "" || err != nil {
		notFound(w)
		return
	}
	ids, err := h.cat.AssetsByHash(r.Context(), hash.String())
	if err != nil {
		h.log.Warn("asset lookup by hash failed", "err", err)
		notFound(w)
		return
	}
	for _, id := range ids {
		if a, err := h.cat.MayRead(r.Context(), id, user); err == nil {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(a)
			return
		}
	}
	notFound(w)
}

// signedURL answers POST /v1/assets/{id}/url with a URL that fetches the
// asset without a token until it expires; only a caller who may read the
// asset gets one.
func (h *Handler) signedURL(w http.ResponseWriter, r *http.Request) {
	user, id, ok := h.callerAndID(w, r)
	if !ok {
		return
	}
	a, err := h.cat.MayRead(r.Context(), id, user)
	if err != nil {
		notFound(w)
		return
	}
	path := "/v1/assets/" + id
	exp := time.Now().Add(h.cfg.SignedURLTTL)
	out := map[string]any{"url": path + "?" + h.signer.Sign(path, exp), "expires": exp.UnixMilli()}
	if a.Thumb != "" {
		out["thumb_url"] = path + "/thumb?" + h.signer.Sign(path+"/thumb", exp)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// blobReader is an io.ReadSeeker over a blob for http.ServeContent: it
// opens a ranged read at the offset of the first Read after a Seek.
type blobReader struct {
	ctx   context.Context
	blobs assets.Blobs
	hash  assets.Hash
	size  int64
	off   int64
	rc    io.ReadCloser
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.rc == nil {
		rc, err := b.blobs.Read(b.ctx, b.hash, b.off, -1)
		if err != nil {
			return 0, err
		}
		b.rc = rc
	}
	n, err := b.rc.Read(p)
	b.off += int64(n)
	return n, err
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	var off int64
	switch whence {
	case io.SeekStart:
		off = offset
	case io.SeekCurrent:
		off = b.off + offset
	case io.SeekEnd:
		off = b.size + offset
	}
	if off < 0 {
		return 0, errors.New("assets: seek before the start")
	}
	if off != b.off {
		b.Close()
		b.off = off
	}
	return off, nil
}

func (b *blobReader) Close() error {
	if b.rc == nil {
		return nil
	}
	err := b.rc.Close()
	b.rc = nil
	return err
}
