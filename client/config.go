package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// DefaultURL is the endpoint of a server running locally with its defaults.
const DefaultURL = "ws://127.0.0.1:8080/v1/ws"

// Config configures a Client. The zero value of every field means its
// documented default; New fills the defaults in and validates the result.
type Config struct {
	// URL is the server's WebSocket endpoint, ws:// or wss://.
	// Default: DefaultURL.
	URL string

	// AssetsURL is the asset API's upload endpoint (docs/assets.md), used
	// by Upload, SendFile and Download: uploads are POSTed to it, asset
	// <id> is downloaded from <AssetsURL>/<id>. Default: derived from URL,
	// its host with port 8081 (the asset API's default listener), http
	// for ws and https for wss, and the path /v1/assets; e.g.
	// ws://chat.example:8080/v1/ws gives http://chat.example:8081/v1/assets.
	AssetsURL string

	// Token is the access token (an HS256 JWT) sent as
	// "Authorization: Bearer <Token>" on every connection attempt.
	// Either Token or TokenSource is required.
	Token string

	// TokenSource, when set, is called before every connection attempt for
	// a fresh token (to renew an expiring one); it overrides Token. It is
	// called from Run's goroutine; an error is treated like a failed dial
	// and retried with backoff.
	TokenSource func(ctx context.Context) (string, error)

	// User is the token's user. The Client sets Message.Own on the copies
	// of this user's own messages by it. Default: "" reads it from the
	// token's "sub" claim (without verifying the token: the server does).
	// When set, it must match that claim if the token has one.
	User string

	// StateDir is where the outbox and the seq cursor are kept, so that
	// unsent messages and the read position survive restarts. It is created
	// if missing and is locked against other Clients. Use one directory per
	// account. Default: "" keeps the state in memory (tests, load tools).
	StateDir string

	// Handler receives the Client's events (see Event). Default: nil drops
	// them. See the package documentation for the calling contract: one
	// call at a time, in order, and a blocked Handler stops reading.
	Handler func(Event)

	// MinBackoff and MaxBackoff bound the delay between connection attempts.
	// The n-th consecutive failure waits a random duration in
	// [0, min(MaxBackoff, MinBackoff*2^n)] ("full jitter").
	// Defaults: 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// DialTimeout bounds the TCP connect, TLS and WebSocket handshake.
	// Default: 10s.
	DialTimeout time.Duration

	// WriteTimeout bounds one write to the connection; a write that takes
	// longer drops the connection. Default: 10s.
	WriteTimeout time.Duration

	// PingInterval is how often the Client pings the server when it has
	// nothing else to send. When no frame at all arrives for twice this
	// long, the connection is considered dead and is dropped.
	// Default: 25s; negative disables pings and the read deadline.
	PingInterval time.Duration

	// MaxMessageSize is the largest server frame accepted; a bigger one
	// closes the connection with 1009. Default: 1 MiB.
	MaxMessageSize int64

	// MaxOutbox is the number of entries (sends and receipts) that may wait
	// for the server's ack; beyond it Send returns ErrOutboxFull.
	// Default: 10000.
	MaxOutbox int

	// MaxInFlight is the number of outbox entries sent on the current
	// connection and not yet acked; later entries wait for acks. Keep it
	// below the server's message burst (200 by default). After a
	// "retry later" error the limit restarts at 1 and grows back by one per
	// window of acks. 1 makes send order strict under rate limits (see the
	// package doc). Default: 64.
	MaxInFlight int

	// Logger receives the Client's diagnostics. Nothing is logged per frame
	// above debug level. Default: a logger that discards everything.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.AssetsURL == "" {
		c.AssetsURL = defaultAssetsURL(c.URL)
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 1 << 20
	}
	if c.MaxOutbox == 0 {
		c.MaxOutbox = 10000
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c, after defaults are applied.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("client: URL: %w", err))
	case u.Scheme != "ws" && u.Scheme != "wss":
		errs = append(errs, fmt.Errorf("client: URL %q: scheme must be ws or wss", c.URL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("client: URL %q: no host", c.URL))
	}
	// AssetsURL is "" only when URL is bad, which is reported above.
	if c.AssetsURL != "" {
		a, err := url.Parse(c.AssetsURL)
		if err != nil || (a.Scheme != "http" && a.Scheme != "https") || a.Host == "" {
			errs = append(errs, fmt.Errorf("client: AssetsURL %q: need an http or https URL with a host", c.AssetsURL))
		}
	}
	if c.Token == "" && c.TokenSource == nil {
		errs = append(errs, errors.New("client: Token or TokenSource is required"))
	}
	if sub := tokenSubject(c.Token); c.User != "" && sub != "" && sub != c.User {
		errs = append(errs, fmt.Errorf("client: User %q is not the token's user %q", c.User, sub))
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || c.MinBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("client: backoff: need 0 < MinBackoff (%v) <= MaxBackoff (%v)", c.MinBackoff, c.MaxBackoff))
	}
	if c.DialTimeout < 0 || c.WriteTimeout < 0 {
		errs = append(errs, errors.New("client: DialTimeout and WriteTimeout must not be negative"))
	}
	if c.MaxMessageSize < 0 || c.MaxOutbox < 0 || c.MaxInFlight < 0 {
		errs = append(errs, errors.New("client: MaxMessageSize, MaxOutbox and MaxInFlight must not be negative"))
	}
	return errors.Join(errs...)
}

// tokenSubject returns the "sub" claim of a JWT, or "" if tok is not one.
// The signature is not checked: this only names the user, the server
// decides whether the token is good.
func tokenSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}

// defaultAssetsURL is the asset API next to the WebSocket endpoint ws:
// the same host, port 8081, http for ws and https for wss. It is "" when
// ws is not a WebSocket URL (Validate reports that).
func defaultAssetsURL(ws string) string {
	u, err := url.Parse(ws)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme := "http"
	switch u.Scheme {
	case "ws":
	case "wss":
		scheme = "https"
	default:
		return ""
	}
	a := url.URL{Scheme: scheme, Host: net.JoinHostPort(u.Hostname(), "8081"), Path: "/v1/assets"}
	return a.String()
}
