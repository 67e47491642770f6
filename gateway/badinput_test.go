package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	dto "github.com/prometheus/client_model/go"
)

// rawFrame builds a client frame by hand, so tests can break the rules.
func rawFrame(op ws.OpCode, fin bool, rsv byte, masked bool, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(payload)), Masked: masked}
	p := append([]byte(nil), payload...)
	if masked {
		h.Mask = ws.NewMask()
		ws.Cipher(p, h.Mask, 0)
	}
	var b bytes.Buffer
	ws.WriteHeader(&b, h)
	b.Write(p)
	return b.Bytes()
}

func (c *wsClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// healthy checks that a fresh connection can still send and be acked.
func (s *server) healthy(t *testing.T) {
	t.Helper()
	c := s.dial(t, "ok:healthcheck")
	c.send(map[string]any{"type": "send", "id": "h", "to": "somebody", "body": "still up?"})
	if f := c.read(); f.Type != "ack" {
		t.Fatalf("server unhealthy after bad input: %+v", f)
	}
	c.close()
}

func TestBadFramesGetErrorFrames(t *testing.T) {
	s := startServer(t, Config{}, nil)
	c := s.dial(t, "ok:alice")
	cases := []struct {
		in, id, code, msg string
	}{
		{`{"type":"send","id":"x1"`, "x1", "bad_request", "malformed JSON"},
		{`not json`, "", "bad_request", "frame is not a JSON object"},
		{`{"type":"teleport","id":"x2"}`, "x2", "unknown_type", ""},
		{`{"id":"x3"}`, "x3", "bad_request", `missing "type"`},
		{`{"type":"send","id":"x4","body":"hi"}`, "x4", "bad_request", `"to" must be a user id`},
		{`{"type":"send","to":"bob","body":"hi"}`, "", "bad_request", `"id" must be`},
		{`{"type":"send","id":"x5","to":"bob"}`, "x5", "bad_request", `missing "body"`},
		{`{"type":"send","id":"x6","to":"","body":"hi"}`, "x6", "bad_request", `"to" must be a user id`},
		{`{"type":"send","id":"x7","to":5,"body":"hi"}`, "x7", "bad_request", `"to" must be a string`},
		{`{"type":"receipt","id":"x8","status":"seen","msg_ids":["a"]}`, "x8", "bad_request", `"status" must be`},
		{`{"type":"receipt","id":"x9","status":"read","msg_ids":[]}`, "x9", "bad_request", `"msg_ids" must list`},
		{`{"type":"receipt","id":"x10","status":"read","msg_ids":["not-a-message-id"]}`, "x10", "bad_request", `"msg_ids" entries must be message ids`},
		{`{"type":"receipt","id":"x11","status":"read","msg_ids":["01M8CND54KEF1ZK68S0KKP86Vu"]}`, "x11", "bad_request", `"msg_ids" entries must be message ids`},
		{`{"type":"sync","after":-3}`, "", "bad_request", `"after" must be`},
	}
	for _, tc := range cases {
		c.sendRaw([]byte(tc.in))
		f := c.read()
		if f.Type != "error" || f.Code != tc.code || f.ID != tc.id || !strings.Contains(f.Message, tc.msg) {
			t.Errorf("%s: got %+v, want error %s id=%q containing %q", tc.in, f, tc.code, tc.id, tc.msg)
		}
	}
	// The connection is still usable.
	c.send(map[string]any{"type": "send", "id": "ok", "to": "bob", "body": "fine"})
	if f := c.read(); f.Type != "ack" || f.ID != "ok" {
		t.Fatalf("after errors: %+v", f)
	}
}

func TestProtocolViolationsClose(t *testing.T) {
	s := startServer(t, Config{MaxFrameBytes: 1024, MaxMessageBytes: 2048, MaxFragments: 4}, nil)
	big := bytes.Repeat([]byte("a"), 1025)
	chunk := []byte(strings.Repeat("b", 1000))
	cases := []struct {
		name   string
		frames [][]byte
		code   ws.StatusCode
	}{
		{"unmasked", [][]byte{rawFrame(ws.OpText, true, 0, false, []byte(`{}`))}, 1002},
		{"rsv bits", [][]byte{rawFrame(ws.OpText, true, 0x4, true, []byte(`{}`))}, 1002},
		{"reserved opcode", [][]byte{rawFrame(0x3, true, 0, true, nil)}, 1002},
		{"long ping", [][]byte{rawFrame(ws.OpPing, true, 0, true, bytes.Repeat([]byte("p"), 126))}, 1002},
		{"fragmented ping", [][]byte{rawFrame(ws.OpPing, false, 0, true, nil)}, 1002},
		{"lone continuation", [][]byte{rawFrame(ws.OpContinuation, true, 0, true, []byte("x"))}, 1002},
		{"text inside fragments", [][]byte{rawFrame(ws.OpText, false, 0, true, []byte("{")), rawFrame(ws.OpText, true, 0, true, []byte("}"))}, 1002},
		{"bad close code", [][]byte{rawFrame(ws.OpClose, true, 0, true, []byte{0x03, 0xED})}, 1002},
		{"one-byte close", [][]byte{rawFrame(ws.OpClose, true, 0, true, []byte{0x03})}, 1002},
		{"reserved close code 1006", [][]byte{rawFrame(ws.OpClose, true, 0, true, []byte{0x03, 0xEE})}, 1002},
		{"close code 5000", [][]byte{rawFrame(ws.OpClose, true, 0, true, []byte{0x13, 0x88})}, 1002},
		{"close reason not UTF-8", [][]byte{rawFrame(ws.OpClose, true, 0, true, []byte{0x03, 0xE8, 0xff, 0xfe})}, 1007},
		{"RSV1 without permessage-deflate", [][]byte{rawFrame(ws.OpText, true, 0x4, true, []byte(`{}`))}, 1002},
		{"binary", [][]byte{rawFrame(ws.OpBinary, true, 0, true, []byte(`{}`))}, 1003},
		{"invalid utf-8", [][]byte{rawFrame(ws.OpText, true, 0, true, []byte("{\"body\":\"\xff\"}"))}, 1007},
		{"invalid utf-8 across fragments", [][]byte{rawFrame(ws.OpText, false, 0, true, []byte("\xe2\x82")), rawFrame(ws.OpContinuation, true, 0, true, []byte("\x28"))}, 1007},
		{"oversized frame", [][]byte{rawFrame(ws.OpText, true, 0, true, big)}, 1009},
		{"oversized message", [][]byte{rawFrame(ws.OpText, false, 0, true, chunk), rawFrame(ws.OpContinuation, false, 0, true, chunk), rawFrame(ws.OpContinuation, true, 0, true, chunk)}, 1009},
		{"too many fragments", [][]byte{rawFrame(ws.OpText, false, 0, true, []byte("{")), rawFrame(ws.OpContinuation, false, 0, true, nil), rawFrame(ws.OpContinuation, false, 0, true, nil), rawFrame(ws.OpContinuation, false, 0, true, nil), rawFrame(ws.OpContinuation, true, 0, true, []byte("}"))}, 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t, "ok:mallory")
			for _, f := range tc.frames {
				c.write(f)
			}
			if code := c.readClose(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			s.healthy(t)
		})
	}
}

func TestFragmentedMessageAndControlInterleaved(t *testing.T) {
	s := startServer(t, Config{}, nil)
	c := s.dial(t, "ok:alice")
	msg := []byte(`{"type":"send","id":"f1","to":"bob","body":"in pieces"}`)
	c.write(rawFrame(ws.OpText, false, 0, true, msg[:10]))
	c.write(rawFrame(ws.OpPing, true, 0, true, []byte("hi")))
	c.write(rawFrame(ws.OpContinuation, false, 0, true, msg[10:20]))
	c.write(rawFrame(ws.OpContinuation, true, 0, true, msg[20:]))
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(c.conn)
	if err != nil || h.OpCode != ws.OpPong || h.Length != 2 {
		t.Fatalf("want pong with 2 bytes, got %+v %v", h, err)
	}
	p := make([]byte, 2)
	readFull(c.conn, p)
	if string(p) != "hi" {
		t.Fatalf("pong payload %q", p)
	}
	if f := c.read(); f.Type != "ack" || f.ID != "f1" {
		t.Fatalf("ack: %+v", f)
	}
}

func TestCloseHandshakeEchoesCode(t *testing.T) {
	s := startServer(t, Config{}, nil)
	c := s.dial(t, "ok:alice")
	c.write(rawFrame(ws.OpClose, true, 0, true, ws.NewCloseFrameBody(4321, "bye")))
	if code := c.readClose(); code != 4321 {
		t.Fatalf("echoed close code %d, want 4321", code)
	}
}

func TestRateLimitFlood(t *testing.T) {
	s := startServer(t, Config{MessageRate: 1, MessageBurst: 5}, nil)
	c := s.dial(t, "ok:flooder")
	acked, limited := 0, 0
	for i := range 5 + 5 {
		c.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "body": "spam"})
	}
	for acked+limited < 10 {
		switch f := c.read(); {
		case f.Type == "ack":
			acked++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected %+v", f)
		}
	}
	if acked != 5 || limited != 5 {
		t.Fatalf("acked %d, limited %d; want 5 and 5", acked, limited)
	}
	// Keep flooding past the burst: the connection is closed with 1008.
	for i := range 10 {
		c.send(map[string]any{"type": "send", "id": fmt.Sprint("more", i), "to": "bob", "body": "spam"})
	}
	if code := c.readClose(); code != 1008 {
		t.Fatalf("close code %d, want 1008", code)
	}
	s.healthy(t)
}

// TestSlowReaderLosesNothing: a reader that stops reading while messages
// pour in is not buffered without bound (its outbound queue stays under
// max_outbound_bytes: entries past it are left in the store), and once it
// reads again it gets every entry, in order, on the same connection.
func TestSlowReaderLosesNothing(t *testing.T) {
	s := startServer(t, Config{MaxFrameBytes: 16 << 10, MaxMessageBytes: 16 << 10, MaxOutboundBytes: 512 << 10,
		MessageRate: 1e6, MessageBurst: 1e6}, nil)
	reader := s.dial(t, "ok:sloth")
	reader.send(map[string]any{"type": "sync", "after": 0})
	reader.readType("synced")
	// The reader stops reading; a sender fills its socket and more.
	sender := s.dial(t, "ok:sender")
	body := strings.Repeat("z", 8<<10)
	const n = 2000
	go func() {
		for i := range n {
			sender.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "sloth", "body": body})
		}
	}()
	for i := 0; i < n; {
		if f := sender.read(); f.Type == "ack" {
			i++
		} else {
			t.Fatalf("sender got %+v", f)
		}
	}
	var held dto.Metric
	s.g.m.heldBack.Write(&held)
	if held.GetCounter().GetValue() == 0 {
		t.Fatal("no entry was held back: the test did not overflow the reader")
	}
	for i := 1; i <= n; i++ {
		if f := reader.read(); f.Type != "msg" || f.Seq != uint64(i) || len(f.Body) != len(body) {
			t.Fatalf("entry %d: %+v", i, f.Type)
		}
	}
}

func TestHandshakeRefusals(t *testing.T) {
	s := startServer(t, Config{AllowedOrigins: []string{"https://app.example"}, MaxHandshakeBytes: 1024,
		HandshakeTimeout: 500 * time.Millisecond}, nil)
	status := func(req string) int {
		t.Helper()
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte(req))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading response to %q: %v", req, err)
		}
		return resp.StatusCode
	}
	upgrade := func(path string, hdr ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + strings.Join(hdr, "") + "\r\n"
	}
	cases := []struct {
		name string
		req  string
		want int
	}{
		{"ok by header", upgrade(Path, "Authorization: Bearer ok:alice\r\n"), 101},
		{"ok by query", upgrade(Path + "?access_token=ok%3Aalice"), 101},
		{"no token", upgrade(Path), 401},
		{"bad token", upgrade(Path, "Authorization: Bearer nope\r\n"), 401},
		{"not bearer", upgrade(Path, "Authorization: Basic YTpi\r\n"), 401},
		{"bad origin", upgrade(Path, "Authorization: Bearer ok:alice\r\nOrigin: https://evil.example\r\n"), 403},
		{"good origin", upgrade(Path, "Authorization: Bearer ok:alice\r\nOrigin: https://app.example\r\n"), 101},
		{"wrong path", upgrade("/v2/ws", "Authorization: Bearer ok:alice\r\n"), 404},
		{"not an upgrade", "GET " + Path + " HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"too large", upgrade(Path, "X-Pad: "+strings.Repeat("p", 2000)+"\r\n"), 431},
		{"health", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404},
	}
	for _, tc := range cases {
		if got := status(tc.req); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	// A client that never finishes its request is dropped.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET " + Path + " HTTP/1.1\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("half-sent handshake: connection still open after the handshake timeout")
	}
	s.healthy(t)
}

// A client that offers permessage-deflate gets no extension: RSV bits stay
// reserved (docs/protocol.md).
func TestNoExtensionNegotiated(t *testing.T) {
	s := startServer(t, Config{}, nil)
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("GET " + Path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nAuthorization: Bearer ok:alice\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("server accepted extension %q", ext)
	}
}

// A receipt naming many ids costs more of the rate limit: one per 16 ids.
func TestReceiptRateCost(t *testing.T) {
	s := startServer(t, Config{MessageRate: 0.001, MessageBurst: 20}, nil)
	c := s.dial(t, "ok:bob")
	ids := make([]string, 256) // costs 1 + 16 = 17 of the 20 tokens
	for i := range ids {
		ids[i] = fmt.Sprintf("01M8CND54KEF1ZK68S0KK%05d", i)
	}
	c.send(map[string]any{"type": "receipt", "id": "r1", "status": "read", "msg_ids": ids})
	if f := c.read(); f.Type != "ack" || f.ID != "r1" {
		t.Fatalf("first receipt: %+v", f)
	}
	c.send(map[string]any{"type": "receipt", "id": "r2", "status": "read", "msg_ids": ids})
	if f := c.read(); f.Type != "error" || f.Code != "rate_limited" || f.ID != "r2" {
		t.Fatalf("second receipt: %+v, want rate_limited", f)
	}
	c.send(map[string]any{"type": "send", "id": "s1", "to": "alice", "body": "one token left"})
	if f := c.read(); f.Type != "ack" || f.ID != "s1" {
		t.Fatalf("send with the tokens left: %+v", f)
	}
}

// Pings and malformed frames count against the rate limit: a peer cannot
// make the server write without bound by flooding either.
func TestPingAndGarbageFloodsClose(t *testing.T) {
	s := startServer(t, Config{MessageRate: 1, MessageBurst: 5}, nil)
	for name, frame := range map[string][]byte{
		"ping":    rawFrame(ws.OpPing, true, 0, true, []byte("x")),
		"garbage": rawFrame(ws.OpText, true, 0, true, []byte("not json")),
	} {
		t.Run(name, func(t *testing.T) {
			c := s.dial(t, "ok:flooder-"+name)
			for range 5 + 5 + 1 { // the burst, then more refusals than the burst
				c.write(frame)
			}
			if code := c.readClose(); code != ClosePolicy {
				t.Fatalf("close code %d, want %d", code, ClosePolicy)
			}
		})
	}
	s.healthy(t)
}
