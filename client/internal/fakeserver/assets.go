package fakeserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// A tiny asset API (docs/assets.md) on the same listener as the
// WebSocket: POST /v1/assets?name=… stores the body, GET /v1/assets/{id}
// serves it to its uploader and to those it was sent to. No ranges, no
// thumbnails, no quotas.

type asset struct {
	meta    map[string]any // the JSON of the upload's answer and of attachments
	data    []byte
	owner   string
	readers map[string]bool // users who may read it (or "#group", or "*": everyone)
}

// AttachmentRef is the attachment of a send, as the fake server reads it.
type AttachmentRef struct {
	AssetID string `json:"asset_id"`
}

func (s *Server) serveAssets(w http.ResponseWriter, r *http.Request, user string) {
	if user == "" || user == "bad" {
		assetError(w, http.StatusUnauthorized, "unauthorized", "bad token")
		return
	}
	switch id := strings.TrimPrefix(r.URL.Path, "/v1/assets"); {
	case r.Method == http.MethodPost && id == "":
		name := r.URL.Query().Get("name")
		if strings.ContainsAny(name, "/\\\x00") {
			assetError(w, http.StatusBadRequest, "bad_request", "a name is not a path")
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			assetError(w, http.StatusBadRequest, "upload_failed", err.Error())
			return
		}
		sum := sha256.Sum256(data)
		mime := http.DetectContentType(data)
		kind := "file"
		for _, k := range []string{"image", "video", "audio"} {
			if strings.HasPrefix(mime, k+"/") {
				kind = k
			}
		}
		s.mu.Lock()
		s.nextID++
		meta := map[string]any{"asset_id": fmt.Sprintf("A%06d", s.nextID), "sha256": hex.EncodeToString(sum[:]),
			"size": len(data), "mime": mime, "kind": kind}
		if name != "" {
			meta["name"] = name
		}
		s.assets[meta["asset_id"].(string)] = &asset{meta: meta, data: data, owner: user, readers: map[string]bool{user: true}}
		s.Uploads[user]++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(meta)
	case r.Method == http.MethodGet && strings.HasPrefix(id, "/"):
		s.mu.Lock()
		a := s.assets[id[1:]]
		ok := a != nil && s.mayRead(a, user)
		s.mu.Unlock()
		if !ok {
			assetError(w, http.StatusNotFound, "not_found", "no such asset")
			return
		}
		w.Header().Set("Content-Type", a.meta["mime"].(string))
		_, _ = w.Write(a.data)
	default:
		assetError(w, http.StatusMethodNotAllowed, "bad_request", r.Method+" "+r.URL.Path)
	}
}

// mayRead: user uploaded a, was sent it, or is in a group it was sent to
// (or whose icon it is); anyone may read a profile photo. Caller holds
// s.mu.
func (s *Server) mayRead(a *asset, user string) bool {
	if a.readers[user] || a.readers["*"] {
		return true
	}
	for r := range a.readers {
		if g := s.groups[strings.TrimPrefix(r, "#")]; strings.HasPrefix(r, "#") && g != nil && g.members[user] != nil {
			return true
		}
	}
	return false
}

// attach returns the attachment of a send by user to to (a user, or
// "#group"), granting it the asset, or nil if user may not use it.
// Caller holds s.mu.
func (s *Server) attach(ref *AttachmentRef, user, to string) map[string]any {
	a := s.assets[ref.AssetID]
	if a == nil || !s.mayRead(a, user) {
		return nil
	}
	a.readers[to] = true
	return a.meta
}

func assetError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}
