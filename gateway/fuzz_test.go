package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

const fuzzUpgrade = "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ok:fuzz\r\n\r\n"

// fuzzGateway is a gateway on fake connections whose hub jobs are
// dropped without being run: the fuzz targets exercise the event-loop side
// (handshake, frames, protocol) single-threaded.
func fuzzGateway(t testing.TB) *Gateway {
	g, err := New(Config{MaxFrameBytes: 4096, MaxMessageBytes: 8192, MaxOutboundBytes: 1 << 20, MessageRate: 1e9, MessageBurst: 1e9},
		Deps{Service: stubService{}, Bus: stubBus{}, Directory: nopDir{}, Auth: testAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	// Replace the hub's workers by a drain: jobs are dropped, so nothing
	// runs off the fuzz goroutine.
	g.hub.stop()
	g.hub.jobs = make(chan job, 1024)
	g.hub.stopped = false
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-g.hub.jobs:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done) })
	return g
}

// feed opens a fake connection and delivers in to it in two reads, split
// at split, as TCP may.
func feed(g *Gateway, in []byte, split int) *fakeConn {
	fc := g.openFake(fakeLoop{}, true)
	if split < 0 || split > len(in) {
		split = len(in)
	}
	for _, part := range [][]byte{in[:split], in[split:]} {
		fc.in = append(fc.in, part...)
		if g.OnTraffic(fc) != 0 || fc.closed {
			break
		}
	}
	g.OnClose(fc, nil)
	return fc
}

// FuzzHandshake: any request bytes get a well-formed HTTP response or no
// answer yet; nothing panics.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte(fuzzUpgrade))
	f.Add([]byte("GET /v1/ws?access_token=ok%3Abob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	f.Add([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"))
	f.Add([]byte("POST /v1/ws HTTP/1.1\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	g := fuzzGateway(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		fc := feed(g, in, len(in))
		out := fc.out
		if len(out) == 0 {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("malformed response %q to %q: %v", out, in, err)
		}
		if resp.StatusCode == 101 && !bytes.HasPrefix(in, []byte("GET /v1/ws")) {
			t.Fatalf("upgraded a request for another path: %q", in)
		}
	})
}

// FuzzFrames: after an upgrade, any bytes as frames, in any split, give
// only well-formed server frames: text frames carry valid JSON, and a close
// frame carries one of our codes. Nothing panics.
func FuzzFrames(f *testing.F) {
	add := func(frames ...[]byte) { f.Add(bytes.Join(frames, nil), 7) }
	add(rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"send","id":"1","to":"bob","body":"hi"}`)))
	add(rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"receipt","id":"r","status":"read","msg_ids":["a","b"]}`)))
	add(rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"sync","after":3}`)))
	add(rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"profile.set","id":"p","name":"Al","about":"a\nb","photo":""}`)),
		rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"profile.get","id":"g","users":["bob"]}`)))
	add(rawFrame(ws.OpText, true, 0, true, []byte(`{"type":"group.icon","id":"i","group":"01JDQ5A0000000000000000000","icon":"0123456789ABCDEFGHJKMNPQRS"}`)))
	add(rawFrame(ws.OpText, false, 0, true, []byte(`{"type":`)), rawFrame(ws.OpPing, true, 0, true, []byte("p")),
		rawFrame(ws.OpContinuation, true, 0, true, []byte(`"sync"}`)))
	add(rawFrame(ws.OpClose, true, 0, true, []byte{0x03, 0xE8, 'b', 'y', 'e'}))
	add(rawFrame(ws.OpBinary, true, 0, true, []byte{1, 2, 3}))
	add(rawFrame(ws.OpText, true, 0, false, []byte(`{}`)))
	add([]byte{0x81, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	g := fuzzGateway(f)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		in := append([]byte(fuzzUpgrade), data...)
		fc := feed(g, in, len(fuzzUpgrade)+split)
		out := fc.out
		i := bytes.Index(out, []byte("\r\n\r\n"))
		if i < 0 || !bytes.HasPrefix(out, []byte("HTTP/1.1 101 ")) {
			t.Fatalf("no upgrade: %q", out)
		}
		checkServerFrames(t, out[i+4:])
	})
}

func checkServerFrames(t *testing.T, b []byte) {
	for len(b) > 0 {
		h, err := ws.ReadHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("bad server frame header in %q: %v", b, err)
		}
		n := ws.HeaderSize(h)
		if h.Masked || !h.Fin || h.Rsv != 0 || int64(len(b)-n) < h.Length {
			t.Fatalf("bad server frame %+v", h)
		}
		p := b[n : n+int(h.Length)]
		switch h.OpCode {
		case ws.OpText:
			if !utf8.Valid(p) || !json.Valid(p) {
				t.Fatalf("server text frame is not JSON: %q", p)
			}
		case ws.OpClose:
			if len(p) >= 2 {
				code := binary.BigEndian.Uint16(p)
				if !validCloseCode(code) || !utf8.Valid(p[2:]) {
					t.Fatalf("bad close payload %q", p)
				}
			}
		case ws.OpPong, ws.OpPing:
		default:
			t.Fatalf("unexpected server opcode %v", h.OpCode)
		}
		b = b[n+int(h.Length):]
	}
}
