package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
)

// Path is the WebSocket endpoint.
const Path = "/v1/ws"

var crlfcrlf = []byte("\r\n\r\n")

// Handshake refusals. The HTTP status is the contract (docs/protocol.md);
// the reason is a hint for humans.
var (
	rejectNotFound     = ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound), ws.RejectionReason("not found: the WebSocket endpoint is "+Path))
	rejectNoToken      = ws.RejectConnectionError(ws.RejectionStatus(http.StatusUnauthorized), ws.RejectionReason("missing token: send Authorization: Bearer <token> or ?access_token=<token>"))
	rejectBadToken     = ws.RejectConnectionError(ws.RejectionStatus(http.StatusUnauthorized), ws.RejectionReason("invalid or expired token"))
	rejectOrigin       = ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("origin not allowed"))
	rejectDraining     = ws.RejectConnectionError(ws.RejectionStatus(http.StatusServiceUnavailable), ws.RejectionReason("server shutting down"))
	rejectMaxConns     = ws.RejectConnectionError(ws.RejectionStatus(http.StatusServiceUnavailable), ws.RejectionReason("server at its connection limit"))
	rejectTokenTooLong = ws.RejectConnectionError(ws.RejectionStatus(http.StatusUnauthorized), ws.RejectionReason("token too long"))
)

const maxTokenBytes = 4096

// initUpgrader sets the loop's upgrader. Its callbacks use the loop's
// handshake fields: the loop upgrades one connection at a time.
func (l *loop) initUpgrader() {
	g := l.g
	l.upgrader = ws.Upgrader{
		OnRequest: func(uri []byte) error {
			path, query, _ := bytes.Cut(uri, []byte("?"))
			if string(path) != Path {
				return rejectNotFound
			}
			for len(query) > 0 {
				var kv []byte
				kv, query, _ = bytes.Cut(query, []byte("&"))
				if v, ok := bytes.CutPrefix(kv, []byte("access_token=")); ok {
					if len(v) > maxTokenBytes {
						return rejectTokenTooLong
					}
					if bytes.IndexByte(v, '%') >= 0 || bytes.IndexByte(v, '+') >= 0 {
						s, err := url.QueryUnescape(string(v))
						if err != nil {
							return rejectBadToken
						}
						v = []byte(s)
					}
					l.token = append(l.token[:0], v...)
				}
			}
			return nil
		},
		OnHeader: func(key, value []byte) error {
			switch {
			case asciiEqualFold(key, "Authorization"):
				v, ok := cutPrefixFold(value, "Bearer ")
				if !ok {
					return rejectBadToken
				}
				if len(v) > maxTokenBytes {
					return rejectTokenTooLong
				}
				l.token = append(l.token[:0], bytes.TrimSpace(v)...)
			case asciiEqualFold(key, "Origin"):
				l.origin = append(l.origin[:0], value...)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			c := l.cur
			switch {
			case g.draining.Load():
				return nil, rejectDraining
			case g.cfg.MaxConnections > 0 && g.open.Load() >= int64(g.cfg.MaxConnections):
				return nil, rejectMaxConns
			case len(l.origin) > 0 && !g.originAllowed(l.origin):
				return nil, rejectOrigin
			case len(l.token) == 0:
				return nil, rejectNoToken
			}
			user, device, err := g.auth.Authenticate(l.token)
			if err != nil {
				g.log.Debug("upgrade refused: bad token", "err", err, "remote", c.gc.RemoteAddr())
				return nil, rejectBadToken
			}
			c.user, c.device = user, device
			return nil, nil
		},
	}
}

func (g *Gateway) originAllowed(origin []byte) bool {
	if len(g.cfg.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || asciiEqualFold(origin, o) {
			return true
		}
	}
	return false
}

// handshake reads the HTTP request on c: a WebSocket upgrade on Path, or
// a plain HTTP request for the HTTP handler.
func (l *loop) handshake(c *wsConn, now int64) gnet.Action {
	g := l.g
	buf, _ := c.gc.Peek(-1)
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 || end+4 > g.cfg.MaxHandshakeBytes {
		if len(buf) > g.cfg.MaxHandshakeBytes || end >= 0 {
			g.m.upgrades("too_large").Inc()
			c.gc.Write([]byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			return gnet.Close
		}
		return gnet.None
	}
	req := buf[:end+4]
	if !bytes.HasPrefix(req, []byte("GET "+Path+" ")) && !bytes.HasPrefix(req, []byte("GET "+Path+"?")) {
		return l.plainHTTP(c, req)
	}
	l.cur = c
	l.token, l.origin = l.token[:0], l.origin[:0]
	l.hsIn.Reset(req)
	l.hsOut.Reset()
	_, err := l.upgrader.Upgrade(handshakeRW{&l.hsIn, &l.hsOut})
	l.cur = nil
	clear(l.token) // do not keep credentials around
	c.gc.Write(l.hsOut.Bytes())
	c.gc.Discard(len(req))
	if err != nil {
		c.user = "" // never registered: OnClose has nothing to undo
		g.m.upgrades(upgradeResult(err)).Inc()
		return gnet.Close
	}
	g.m.upgrades("ok").Inc()
	c.state = stateOpen
	g.open.Add(1)
	if !g.hub.submit(job{kind: jobRegister, c: c}) {
		c.user = "" // not registered: nothing to unregister
		g.open.Add(-1)
		return l.fail(c, errTryAgain, now)
	}
	return gnet.None
}

func upgradeResult(err error) string {
	if rej, ok := err.(*ws.ConnectionRejectedError); ok {
		switch rej.StatusCode() {
		case http.StatusUnauthorized:
			return "unauthorized"
		case http.StatusForbidden:
			return "forbidden"
		case http.StatusNotFound:
			return "not_found"
		case http.StatusServiceUnavailable:
			return "unavailable"
		}
	}
	return "bad_request"
}

type handshakeRW struct {
	r io.Reader
	w io.Writer
}

func (h handshakeRW) Read(p []byte) (int, error)  { return h.r.Read(p) }
func (h handshakeRW) Write(p []byte) (int, error) { return h.w.Write(p) }

// plainHTTP answers a non-WebSocket request with the HTTP handler, on a
// goroutine (handlers may block), then closes the connection. At most 64
// run at once; past that the answer is 503.
func (l *loop) plainHTTP(c *wsConn, raw []byte) gnet.Action {
	g := l.g
	c.state = stateHTTP
	req := append([]byte(nil), raw...)
	c.gc.Discard(-1)
	select {
	case g.httpSem <- struct{}{}:
	default:
		c.gc.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		return gnet.Close
	}
	gc := c.gc
	go func() {
		defer func() { <-g.httpSem }()
		resp := g.serveHTTP(req)
		_ = gc.AsyncWrite(resp, func(gc gnet.Conn, _ error) error { return gc.Close() })
	}()
	return gnet.None
}

// serveHTTP runs the HTTP handler on one request and returns the response.
func (g *Gateway) serveHTTP(raw []byte) []byte {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
	w := &responseWriter{header: http.Header{}}
	switch {
	case r.ContentLength > 0 || len(r.TransferEncoding) > 0:
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	case r.URL.Path == Path:
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("this endpoint takes WebSocket upgrades only (GET with Upgrade: websocket)\n"))
	case g.http == nil:
		http.NotFound(w, r)
	default:
		g.http.ServeHTTP(w, r)
	}
	return w.bytes(r.Method == http.MethodHead)
}

// responseWriter buffers one HTTP response.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *responseWriter) bytes(head bool) []byte {
	w.WriteHeader(http.StatusOK)
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(w.status) + " " + http.StatusText(w.status) + "\r\n")
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	w.header.Set("Connection", "close")
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	w.header.Write(&b)
	b.WriteString("\r\n")
	if !head {
		b.Write(w.body.Bytes())
	}
	return b.Bytes()
}

func asciiEqualFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

func cutPrefixFold(b []byte, prefix string) ([]byte, bool) {
	if len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix) {
		return b[len(prefix):], true
	}
	return nil, false
}
