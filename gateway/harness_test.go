package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/internal/testserver"
	"github.com/switchboard/switchboard/presence"
)

// testAuth accepts tokens of the form "ok:<user>[:<device>]".
type testAuth struct{}

func (testAuth) Authenticate(tok []byte) (string, string, error) {
	s, ok := strings.CutPrefix(string(tok), "ok:")
	if !ok || s == "" {
		return "", "", errors.New("bad token")
	}
	user, dev, _ := strings.Cut(s, ":")
	return user, dev, nil
}

type server struct {
	g    *Gateway
	svc  *chat.Service
	addr string
}

// startServer runs a gateway on the memory backends (or store, if given).
func startServer(t testing.TB, cfg Config, store chat.Store) *server {
	t.Helper()
	if store == nil {
		store = memory.NewStore()
	}
	bus, dir := memory.NewBus(), memory.NewDirectory()
	svc, err := chat.New(chat.Config{}, store, bus, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == "" {
		cfg.Listen = testserver.FreeAddr(t)
	}
	if cfg.EventLoops == 0 {
		cfg.EventLoops = 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	g, err := New(cfg, Deps{Service: svc, Bus: bus, Directory: dir, Auth: testAuth{}, HTTP: mux})
	if err == nil {
		var pres *presence.Service
		pres, err = presence.New(presence.Config{MaxSubscriptions: 8}, memory.NewPresenceStore(), g, nil)
		if err == nil {
			g.SetPresence(pres)
			stop, _ := bus.Consume(chat.StreamPresence, presence.Consumer(pres, nil))
			t.Cleanup(func() { stop(); pres.Close() })
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	runGateway(t, g, func() { svc.Close() })
	return &server{g: g, svc: svc, addr: cfg.Listen}
}

// runGateway runs g until the test ends: then it drains g, calls
// beforeShutdown (if not nil: closing the Service, so queued replies go
// out) and shuts g down.
func runGateway(t testing.TB, g *Gateway, beforeShutdown func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	select {
	case <-g.Booted():
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start in 10s")
	}
	t.Cleanup(func() {
		g.Drain()
		if beforeShutdown != nil {
			beforeShutdown()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		<-done
	})
}

// wsClient is a minimal blocking test client.
type wsClient struct {
	t    testing.TB
	conn net.Conn
	user string
	// echoes: next returns the copies of this user's own messages, which
	// the server puts in their inbox for their other devices. Off by
	// default: tests of one device skip them.
	echoes bool
}

func (s *server) dial(t testing.TB, token string) *wsClient {
	t.Helper()
	c, err := s.tryDial(token)
	if err != nil {
		t.Fatalf("dial as %q: %v", token, err)
	}
	t.Cleanup(func() { c.Close() })
	user, _, _ := strings.Cut(strings.TrimPrefix(token, "ok:"), ":")
	return &wsClient{t: t, conn: c, user: user}
}

func (s *server) tryDial(token string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}})}
	c, br, _, err := d.Dial(ctx, "ws://"+s.addr+Path)
	if err == nil && br != nil {
		// Frames that came with the 101 response are in br.
		return bufConn{c, br}, nil
	}
	return c, err
}

// bufConn reads what the dialer buffered before the connection.
type bufConn struct {
	net.Conn
	r io.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *wsClient) sendRaw(b []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.conn, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame is any server frame, decoded loosely.
type frame struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	MsgID    string          `json:"msg_id"`
	Seq      uint64          `json:"seq"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Body     string          `json:"body"`
	TS       int64           `json:"ts"`
	Status   string          `json:"status"`
	MsgIDs   []string        `json:"msg_ids"`
	By       string          `json:"by"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Group    string          `json:"group"`
	Event    string          `json:"event"`
	Members  json.RawMessage `json:"members"`
	All      bool            `json:"all"`
	Stop     bool            `json:"stop"`
	GroupID  string          `json:"group_id"`
	User     string          `json:"user"`
	Online   json.RawMessage `json:"online"`
	LastSeen json.RawMessage `json:"last_seen"`

	raw []byte
}

// online returns a presence frame's online field: whether it is there and
// its value.
func (f frame) online() (shown, online bool) {
	return f.Online != nil, string(f.Online) == "true"
}

// members returns the members list of a group frame.
func (f frame) members() []string {
	var m []string
	json.Unmarshal(f.Members, &m)
	return m
}

// read returns the next text frame, failing the test on anything else.
func (c *wsClient) read() frame {
	c.t.Helper()
	f, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// next returns the next text frame; safe to use off the test goroutine.
func (c *wsClient) next() (frame, error) {
	for {
		var f frame
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := wsutil.ReadServerText(c.conn)
		if err != nil {
			return f, err
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return f, fmt.Errorf("server sent invalid JSON %q: %w", b, err)
		}
		f.raw = b
		if !c.echoes && f.Type == "msg" && f.From == c.user && f.To != c.user && c.user != "" {
			continue
		}
		return f, nil
	}
}

func writeJSON(conn net.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return wsutil.WriteClientText(conn, b)
}

// readType reads frames until one of type typ arrives, returning it.
func (c *wsClient) readType(typ string) frame {
	c.t.Helper()
	for {
		if f := c.read(); f.Type == typ {
			return f
		}
	}
}

// readClose reads until the server's close frame and returns its code.
func (c *wsClient) readClose() ws.StatusCode {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, err := ws.ReadHeader(c.conn)
		if err != nil {
			c.t.Fatalf("reading for close frame: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := readFull(c.conn, p); err != nil {
			c.t.Fatalf("reading frame payload: %v", err)
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			return code
		}
	}
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (c *wsClient) close() { c.conn.Close() }
