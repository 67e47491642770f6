package api

// Resumable uploads: the tus 1.0 protocol (https://tus.io/protocols/resumable-upload),
// served by tusd's handler (github.com/tus/tusd/v2/pkg/handler) over a
// directory of unfinished uploads (pkg/filestore) with an in-process
// locker (pkg/memorylocker). What this file adds around tusd:
//
//   - every request but OPTIONS carries a bearer token (401 otherwise);
//   - the owner is recorded in the upload's metadata at creation, from the
//     token, replacing whatever metadata the client sent but filename and
//     filetype; HEAD, PATCH and DELETE of another user's upload get the
//     very response of a missing upload (404);
//   - upload ids are ours (assets.NewID), and anything else in the path is
//     a 404 before tusd or the file system sees it;
//   - when the last byte arrives, the file is checked, streamed into the
//     blob store and recorded exactly as a single-request upload is
//     (Handler.store), and tusd's files are removed whatever the outcome;
//   - a janitor removes uploads that received nothing for UploadExpiry.
//
// tusd's GET (download of an unfinished upload), concatenation and
// deferred lengths are not offered: nothing unchecked is ever served, and
// every upload declares its length, so the size limit holds at creation.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	xslog "golang.org/x/exp/slog"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/chat"
)

// Upload-Metadata keys. The client's filename and filetype are kept;
// metaOwner is the server's own.
const (
	metaFilename = "filename"
	metaFiletype = "filetype"
	metaOwner    = "owner"
)

// uploadsBase is where the tus endpoint is mounted.
const uploadsBase = "/v1/assets/uploads/"

// ownerKey is the context key of the authenticated caller of a tus
// request; connKey that of its *http.ResponseController.
type (
	ownerKey struct{}
	connKey  struct{}
)

// tusUploads serves /v1/assets/uploads/. Safe for concurrent use.
type tusUploads struct {
	h      *Handler
	dir    string
	store  filestore.FileStore
	locker *memorylocker.MemoryLocker
	tusd   *tusd.UnroutedHandler
	cors   tusd.CorsConfig
	serve  http.Handler // tusd's middleware around route, below the base path

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newTusUploads(h *Handler) (*tusUploads, error) {
	dir := h.cfg.UploadDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	t := &tusUploads{h: h, dir: dir, store: filestore.New(dir), locker: memorylocker.New(),
		cors: tusd.DefaultCorsConfig, stop: make(chan struct{}), done: make(chan struct{})}
	t.store.DirModePerm, t.store.FileModePerm = 0o700, 0o600
	// A browser app reads the asset from these headers of the last PATCH.
	t.cors.ExposeHeaders += ", Asset-Id, Asset-Sha256"

	composer := tusd.NewStoreComposer()
	composer.UseCore(t.store)
	composer.UseTerminater(t.store)
	t.locker.UseIn(composer)
	var err error
	t.tusd, err = tusd.NewUnroutedHandler(tusd.Config{
		StoreComposer:        composer,
		MaxSize:              h.cfg.MaxUploadBytes,
		BasePath:             uploadsBase,
		DisableDownload:      true,
		DisableConcatenation: true,
		Cors:                 &t.cors,
		// Location follows X-Forwarded-Host/-Proto and Forwarded, so that it
		// is right behind a TLS-terminating proxy; a client that forges
		// them only misleads itself.
		RespectForwardedHeaders:   true,
		Logger:                    xslog.New(tusdLog{h.log.Handler(), nil}),
		PreUploadCreateCallback:   t.created,
		PreFinishResponseCallback: t.finished,
	})
	if err != nil {
		return nil, err
	}
	t.serve = http.StripPrefix(strings.TrimSuffix(uploadsBase, "/"), t.tusd.Middleware(http.HandlerFunc(t.route)))
	go t.janitor()
	return t, nil
}

// ServeHTTP authenticates every request but OPTIONS (CORS preflight and
// tus discovery, which tusd answers), then hands it to tusd's middleware.
func (t *tusUploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodOptions {
		user := t.h.user(r)
		if user == "" {
			t.unauthorized(w, r)
			return
		}
		ctx := context.WithValue(r.Context(), ownerKey{}, user)
		r = r.WithContext(context.WithValue(ctx, connKey{}, http.NewResponseController(w)))
	}
	t.serve.ServeHTTP(w, r)
}

// unauthorized answers 401 with the headers tusd's middleware would have
// set, so that a browser client can read it.
func (t *tusUploads) unauthorized(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Tus-Resumable", "1.0.0")
	if o := r.Header.Get("Origin"); o != "" && t.cors.AllowOrigin.MatchString(o) {
		hd.Set("Access-Control-Allow-Origin", o)
		hd.Set("Vary", "Origin")
		hd.Set("Access-Control-Expose-Headers", t.cors.ExposeHeaders)
	}
	apiError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
}

// route runs inside tusd's middleware (which answered OPTIONS and checked
// Tus-Resumable), with the path below the base path. Only an upload's
// owner reaches tusd with its id.
func (t *tusUploads) route(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(r.URL.Path, "/")
	if id == "" {
		if r.Method != http.MethodPost { // an X-HTTP-Method-Override
			w.Header().Set("Allow", "POST")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		t.tusd.PostFile(w, r)
		return
	}
	user, _ := r.Context().Value(ownerKey{}).(string)
	if !assets.ValidID(id) || t.owner(r.Context(), id) != user {
		writeTusError(w, r, tusd.ErrNotFound)
		return
	}
	switch r.Method {
	case http.MethodHead:
		t.tusd.HeadFile(w, r)
	case http.MethodPatch:
		t.tusd.PatchFile(w, r)
	case http.MethodDelete:
		t.tusd.DelFile(w, r)
	default:
		w.Header().Set("Allow", "HEAD, PATCH, DELETE")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// owner returns the owner of upload id, or "" if there is no such upload.
func (t *tusUploads) owner(ctx context.Context, id string) string {
	up, err := t.store.GetUpload(ctx, id)
	if err != nil {
		if !errors.Is(err, tusd.ErrNotFound) {
			t.h.log.Warn("reading an upload's info failed", "err", err)
		}
		return ""
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return ""
	}
	return info.MetaData[metaOwner]
}

// writeTusError writes e as tusd writes its errors, so that our 404 for
// another user's upload is byte for byte tusd's for a missing one.
func writeTusError(w http.ResponseWriter, r *http.Request, e tusd.Error) {
	resp := e.HTTPResponse
	hd := w.Header()
	for k, v := range resp.Header {
		hd.Set(k, v)
	}
	if r.Method == http.MethodHead {
		resp.Body = ""
	}
	if resp.Body != "" {
		hd.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	}
	w.WriteHeader(resp.StatusCode)
	io.WriteString(w, resp.Body)
}

// tusRefusal is a refusal as a tusd error: our status and JSON body.
func tusRefusal(rf *refusal) tusd.Error {
	body, _ := json.Marshal(map[string]string{"code": rf.code, "message": rf.msg})
	return tusd.Error{ErrorCode: rf.code, Message: rf.msg, HTTPResponse: tusd.HTTPResponse{
		StatusCode: rf.status, Body: string(body) + "\n",
		Header: tusd.HTTPHeader{"Content-Type": "application/json"},
	}}
}

// created runs before tusd creates an upload: it names it, records its
// owner and keeps only the metadata we use.
func (t *tusUploads) created(ev tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
	user, _ := ev.Context.Value(ownerKey{}).(string)
	if user == "" { // ServeHTTP authenticated it: cannot happen
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusRefusal(&refusal{http.StatusUnauthorized, "unauthorized", "a valid bearer token is required"})
	}
	name, err := fileName(ev.Upload.MetaData[metaFilename])
	if err != nil {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusRefusal(&refusal{http.StatusBadRequest, "bad_request", strings.Replace(err.Error(), `"name"`, `"filename"`, 1)})
	}
	if rf := t.h.admit(ev.Context, user, ev.Upload.Size); rf != nil {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusRefusal(rf)
	}
	meta := tusd.MetaData{metaOwner: user}
	if name != "" {
		meta[metaFilename] = name
	}
	if ft := ev.Upload.MetaData[metaFiletype]; ft != "" {
		if len(ft) > 255 {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusRefusal(&refusal{http.StatusBadRequest, "bad_request", `"filetype" must be at most 255 bytes`})
		}
		meta[metaFiletype] = ft
	}
	return tusd.HTTPResponse{}, tusd.FileInfoChanges{ID: assets.NewID(), MetaData: meta}, nil
}

// finished runs when an upload's last byte is written, with the upload
// locked: it stores the file as an asset and removes tusd's files,
// whatever the outcome. Its answer goes on the response to the request
// that completed the upload (the last PATCH, or a POST that carried all of
// it): headers Asset-Id and Asset-Sha256 and the asset's JSON, with 200
// on a PATCH (tus says 204: a strict client ignores the body) and tusd's
// 201 on a POST.
func (t *tusUploads) finished(ev tusd.HookEvent) (tusd.HTTPResponse, error) {
	info := ev.Upload
	if !assets.ValidID(info.ID) { // created named it: cannot happen
		return tusd.HTTPResponse{}, tusRefusal(&refusal{http.StatusInternalServerError, "internal", "bad upload id"})
	}
	defer t.remove(info.ID)
	f, err := os.Open(filepath.Join(t.dir, info.ID))
	if err != nil {
		t.h.log.Warn("opening a finished upload failed", "err", err)
		return tusd.HTTPResponse{}, tusRefusal(&refusal{http.StatusServiceUnavailable, "unavailable", "the upload could not be stored: upload it again"})
	}
	defer f.Close()
	a, err := t.h.store(ev.Context, info.MetaData[metaOwner], f, claimedType(info.MetaData[metaFiletype]), info.MetaData[metaFilename])
	for try := 0; errors.Is(err, errBlobGone) && try < 3; try++ {
		// The file is still here: store it again once the collector's
		// fence has passed (chat.FenceSlack).
		select {
		case <-time.After(chat.FenceSlack + 100*time.Millisecond):
		case <-ev.Context.Done():
			return tusd.HTTPResponse{}, ev.Context.Err()
		}
		if _, err = f.Seek(0, io.SeekStart); err == nil {
			a, err = t.h.store(ev.Context, info.MetaData[metaOwner], f, claimedType(info.MetaData[metaFiletype]), info.MetaData[metaFilename])
		}
	}
	// tusd's write deadline runs from the last byte read; storing a large
	// file in a remote blob store can outlast it, and the answer must
	// still reach the client.
	if rc, ok := ev.Context.Value(connKey{}).(*http.ResponseController); ok {
		rc.SetWriteDeadline(time.Now().Add(time.Minute))
	}
	if err != nil {
		return tusd.HTTPResponse{}, tusRefusal(refusalOf(err))
	}
	body, _ := json.Marshal(a)
	resp := tusd.HTTPResponse{Body: string(body) + "\n", Header: tusd.HTTPHeader{
		"Asset-Id": a.ID, "Asset-Sha256": a.Hash, "Content-Type": "application/json",
	}}
	if ev.HTTPRequest.Method == http.MethodPatch {
		resp.StatusCode = http.StatusOK
	}
	return resp, nil
}

// remove deletes upload id's files.
func (t *tusUploads) remove(id string) {
	for _, p := range []string{filepath.Join(t.dir, id), filepath.Join(t.dir, id+".info")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.h.log.Warn("removing an upload failed", "err", err)
		}
	}
}

// janitor sweeps the upload directory at start and every
// UploadExpiry/4 (between a second and an hour) until close.
func (t *tusUploads) janitor() {
	defer close(t.done)
	every := min(max(t.h.cfg.UploadExpiry/4, time.Second), time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		t.sweep(time.Now())
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
	}
}

// sweep removes the uploads that, at now, received nothing for longer than
// UploadExpiry (by their files' modification times), and returns how many.
// An upload being written to is locked and recent, so it is left alone.
func (t *tusUploads) sweep(now time.Time) int {
	ents, err := os.ReadDir(t.dir)
	if err != nil {
		t.h.log.Warn("listing the upload directory failed", "err", err)
		return 0
	}
	seen := make(map[string]bool, len(ents))
	n := 0
	for _, e := range ents {
		id := strings.TrimSuffix(e.Name(), ".info")
		if seen[id] || !assets.ValidID(id) {
			continue
		}
		seen[id] = true
		if !t.expired(id, now) {
			continue
		}
		lock, err := t.locker.NewLock(id)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = lock.Lock(ctx, func() {})
		cancel()
		if err != nil {
			continue
		}
		if t.expired(id, now) { // it may have moved on meanwhile
			t.remove(id)
			n++
		}
		lock.Unlock()
	}
	if n > 0 {
		t.h.log.Info("expired uploads removed", "count", n)
	}
	return n
}

// expired reports whether upload id exists and its files were last
// modified more than UploadExpiry before now.
func (t *tusUploads) expired(id string, now time.Time) bool {
	var last time.Time
	for _, p := range []string{filepath.Join(t.dir, id), filepath.Join(t.dir, id+".info")} {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(last) {
			last = st.ModTime()
		}
	}
	return !last.IsZero() && now.Sub(last) > t.h.cfg.UploadExpiry
}

func (t *tusUploads) close() {
	t.closeOnce.Do(func() { close(t.stop) })
	<-t.done
}

// tusdLog passes tusd's log records (golang.org/x/exp/slog) to ours:
// its per-request records at debug, as are the read errors of a client
// that goes away mid-upload (the very case resumable uploads are for),
// its warnings and errors as they are.
type tusdLog struct {
	h     slog.Handler
	attrs []xslog.Attr
}

func (l tusdLog) level(lv xslog.Level, msg string) slog.Level {
	if lv < xslog.LevelWarn || msg == "BodyReadError" {
		return slog.LevelDebug
	}
	return slog.Level(lv)
}

func (l tusdLog) Enabled(ctx context.Context, lv xslog.Level) bool {
	// Debug is the least a record can map to.
	return l.h.Enabled(ctx, slog.LevelDebug) || l.h.Enabled(ctx, slog.Level(lv))
}

func (l tusdLog) Handle(ctx context.Context, r xslog.Record) error {
	lv := l.level(r.Level, r.Message)
	if !l.h.Enabled(ctx, lv) {
		return nil
	}
	rec := slog.NewRecord(r.Time, lv, "tusd: "+r.Message, 0)
	for _, a := range l.attrs {
		rec.AddAttrs(slog.Any(a.Key, a.Value.Any()))
	}
	r.Attrs(func(a xslog.Attr) bool {
		rec.AddAttrs(slog.Any(a.Key, a.Value.Any()))
		return true
	})
	return l.h.Handle(ctx, rec)
}

func (l tusdLog) WithAttrs(as []xslog.Attr) xslog.Handler {
	return tusdLog{l.h, append(l.attrs[:len(l.attrs):len(l.attrs)], as...)}
}

// WithGroup is unused by tusd; groups are flattened.
func (l tusdLog) WithGroup(string) xslog.Handler { return l }
