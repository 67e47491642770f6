package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// Files (docs/assets.md): the bytes go to the asset API over HTTP
// (Config.AssetsURL), never through the WebSocket; a message carries only
// the asset's id. SendFile uploads first and then queues the send in the
// outbox like Send, with the asset id in it: a resend, after a reconnect
// or a restart, sends the same id and never uploads again.

// Attachment is a file sent with a message: what the asset API answered
// to its upload, and what the server puts in the msg frames of messages
// sent with it.
type Attachment struct {
	AssetID    string `json:"asset_id"`
	SHA256     string `json:"sha256,omitempty"` // hex
	Size       int64  `json:"size,omitempty"`
	MIME       string `json:"mime,omitempty"` // from the bytes, never the sender's claim
	Kind       string `json:"kind,omitempty"` // image, video, audio or file
	Name       string `json:"name,omitempty"` // a file name given at upload; may be ""
	Thumbnail  string `json:"thumbnail,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
}

// id returns a's asset id; "" for nil.
func (a *Attachment) id() string {
	if a == nil {
		return ""
	}
	return a.AssetID
}

// AssetError is a refusal of the asset API: its HTTP status and, when the
// body says, the code ("too_large", "quota_exceeded", "not_found", …) and
// message.
type AssetError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *AssetError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("client: asset API: %d %s: %s", e.StatusCode, e.Code, e.Message)
	}
	return fmt.Sprintf("client: asset API: HTTP %d", e.StatusCode)
}

// token returns the token for a request: TokenSource's, or Token.
func (c *Client) token(ctx context.Context) (string, error) {
	if ts := c.cfg.TokenSource; ts != nil {
		t, err := ts(ctx)
		if err != nil {
			return "", fmt.Errorf("client: token source: %w", err)
		}
		return t, nil
	}
	return c.cfg.Token, nil
}

// assetRequest makes an authorized request to the asset API.
func (c *Client) assetRequest(ctx context.Context, method, u string, body io.Reader, size int64) (*http.Response, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: asset API: %w", err)
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: asset API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		ae := &AssetError{StatusCode: resp.StatusCode}
		var e struct{ Code, Message string }
		if json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e) == nil {
			ae.Code, ae.Message = e.Code, e.Message
		}
		return nil, ae
	}
	return resp, nil
}

// httpClient is the client for the asset API: no overall timeout (a large
// file takes what it takes); the caller's context bounds each request.
func (c *Client) httpClient() *http.Client { return http.DefaultClient }

// Upload streams r to the asset API as a file named name ("" for none; a
// name is a file name, not a path: the server refuses "/" and "\") and
// returns the asset. The bytes are not buffered: r is read as they are
// sent. It works offline from the chat (it needs the asset API, not Run).
func (c *Client) Upload(ctx context.Context, name string, r io.Reader) (Attachment, error) {
	return c.upload(ctx, name, r, -1)
}

// UploadFile uploads the file at path, named by its base name, like
// Upload.
func (c *Client) UploadFile(ctx context.Context, path string) (Attachment, error) {
	f, err := os.Open(path)
	if err != nil {
		return Attachment{}, fmt.Errorf("client: upload: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Attachment{}, fmt.Errorf("client: upload: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Attachment{}, fmt.Errorf("client: upload: %s is not a regular file", path)
	}
	return c.upload(ctx, filepath.Base(path), f, st.Size())
}

func (c *Client) upload(ctx context.Context, name string, r io.Reader, size int64) (Attachment, error) {
	u := c.cfg.AssetsURL
	if name != "" {
		u += "?" + url.Values{"name": {name}}.Encode()
	}
	// Hide r's other methods (io.WriterTo, Seeker): http then streams it
	// as is.
	body := io.NopCloser(struct{ io.Reader }{r})
	if size == 0 {
		body = http.NoBody
	}
	resp, err := c.assetRequest(ctx, http.MethodPost, u, body, size)
	if err != nil {
		return Attachment{}, err
	}
	defer resp.Body.Close()
	var a Attachment
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&a); err != nil {
		return Attachment{}, fmt.Errorf("client: upload: malformed answer: %w", err)
	}
	if a.AssetID == "" {
		return Attachment{}, errors.New("client: upload: the answer has no asset_id")
	}
	return a, nil
}

// Download writes the bytes of asset assetID (one this user uploaded or
// was sent) to w. An asset the user may not read, or that does not
// exist, is an *AssetError with StatusCode 404. A failure part way leaves
// w holding the bytes received so far.
func (c *Client) Download(ctx context.Context, assetID string, w io.Writer) error {
	if assetID == "" {
		return errors.New("client: Download: empty asset id")
	}
	resp, err := c.assetRequest(ctx, http.MethodGet, c.cfg.AssetsURL+"/"+url.PathEscape(assetID), nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("client: download: %w", err)
	}
	return nil
}

// SendFile uploads the file at path and queues a message to user to with
// it and caption (may be ""), like Send: durably, resent with the same
// client id, and the same asset, until acked. It returns the message's
// client id and the uploaded attachment. Unlike Send it needs the asset
// API to be reachable.
func (c *Client) SendFile(ctx context.Context, to, path, caption string) (clientID string, att Attachment, err error) {
	if to == "" {
		return "", Attachment{}, errors.New("client: SendFile: empty recipient")
	}
	if att, err = c.UploadFile(ctx, path); err != nil {
		return "", Attachment{}, err
	}
	clientID, err = c.SendAttachment(ctx, to, att, caption)
	return clientID, att, err
}

// SendGroupFile is SendFile to a group, as SendGroup.
func (c *Client) SendGroupFile(ctx context.Context, group, path, caption string) (clientID string, att Attachment, err error) {
	if group == "" {
		return "", Attachment{}, errors.New("client: SendGroupFile: empty group")
	}
	if att, err = c.UploadFile(ctx, path); err != nil {
		return "", Attachment{}, err
	}
	clientID, err = c.SendGroupAttachment(ctx, group, att, caption)
	return clientID, att, err
}

// SendAttachment queues a message to user to with an asset already
// uploaded or received (forwarding needs no upload), like Send. An asset
// the user may not use is refused with CodeNotFound.
func (c *Client) SendAttachment(ctx context.Context, to string, att Attachment, caption string) (clientID string, err error) {
	if to == "" {
		return "", errors.New("client: SendAttachment: empty recipient")
	}
	if att.AssetID == "" {
		return "", errors.New("client: SendAttachment: no asset id")
	}
	return c.send(ctx, sendFrame{Type: "send", To: to, Body: caption, Attachment: &att})
}

// SendGroupAttachment is SendAttachment to a group, as SendGroup.
func (c *Client) SendGroupAttachment(ctx context.Context, group string, att Attachment, caption string) (clientID string, err error) {
	if group == "" {
		return "", errors.New("client: SendGroupAttachment: empty group")
	}
	if att.AssetID == "" {
		return "", errors.New("client: SendGroupAttachment: no asset id")
	}
	return c.send(ctx, sendFrame{Type: "send", Group: group, Body: caption, Attachment: &att})
}
