package loadtest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// fakeConn serves reads from r, a few bytes at a time when chunk > 0, and
// records writes.
type fakeConn struct {
	r     io.Reader
	chunk int
	out   bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if f.chunk > 0 && len(p) > f.chunk {
		p = p[:f.chunk]
	}
	return f.r.Read(p)
}
func (f *fakeConn) Write(p []byte) (int, error)      { return f.out.Write(p) }
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func serverFrame(op ws.OpCode, p []byte) []byte {
	return ws.MustCompileFrame(ws.NewFrame(op, true, p))
}

func TestConnNextSplitsFramesAndAnswersPings(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 70000) // 64-bit length, grows the buffer
	var in bytes.Buffer
	in.Write(serverFrame(ws.OpText, []byte(`{"type":"synced","seq":0}`)))
	in.Write(serverFrame(ws.OpPing, []byte("hi")))
	in.Write(serverFrame(ws.OpText, bytes.Repeat([]byte("a"), 300))) // 16-bit length
	in.Write(serverFrame(ws.OpText, big))
	in.Write(serverFrame(ws.OpClose, []byte{0x0f, 0xa0, 'x'})) // 4000 "x"
	for _, chunk := range []int{0, 1, 7} {
		fc := &fakeConn{r: bytes.NewReader(in.Bytes()), chunk: chunk}
		c := newConn(fc, nil)
		want := [][]byte{[]byte(`{"type":"synced","seq":0}`), bytes.Repeat([]byte("a"), 300), big}
		for i, w := range want {
			p, err := c.Next()
			if err != nil || !bytes.Equal(p, w) {
				t.Fatalf("chunk %d frame %d: %d bytes, %v", chunk, i, len(p), err)
			}
		}
		_, err := c.Next()
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "x" {
			t.Fatalf("chunk %d: got %v, want close 4000", chunk, err)
		}
		if Kind(stageErr("read", err)) != "read: close 4000" {
			t.Errorf("kind %q", Kind(stageErr("read", err)))
		}
		// The pong echoes "hi", masked, then our close reply.
		out := fc.out.Bytes()
		if len(out) < 8 || out[0] != 0x80|byte(ws.OpPong) || out[1] != 0x80|2 {
			t.Fatalf("no masked pong: % x", out)
		}
		pong := append([]byte(nil), out[6:8]...)
		ws.Cipher(pong, [4]byte(out[2:6]), 0)
		if string(pong) != "hi" {
			t.Errorf("pong payload %q", pong)
		}
	}
}

func TestConnRefusesOversizedAndFragmentedFrames(t *testing.T) {
	huge := []byte{0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0} // 256 MiB declared
	frag := ws.MustCompileFrame(ws.NewFrame(ws.OpText, false, []byte("x")))
	for name, in := range map[string][]byte{"huge": huge, "fragmented": frag} {
		c := newConn(&fakeConn{r: bytes.NewReader(in)}, nil)
		if _, err := c.Next(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", name, err)
		}
	}
}

func TestSendFramePatchesIndexes(t *testing.T) {
	s := newSender(0, nil, "lt-x-r0", []int{40})
	var buf []byte
	for _, k := range []uint64{0, 7, 1234567890, 9999999999} {
		buf = s.appendSend(buf[:0], k)
		// Decode as the server would: unmask the payload.
		c := newConn(&fakeConn{r: bytes.NewReader(buf)}, nil)
		p, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(p, []byte(`{"type":"send","id":"`)) {
			t.Fatalf("payload %s", p)
		}
		if got, ok := ackIndex(p); !ok || got != k {
			t.Errorf("id of %d: %d %v in %s", k, got, ok, p)
		}
		if got, ok := msgIndex(p); !ok || got != k {
			t.Errorf("body of %d: %d %v in %s", k, got, ok, p)
		}
		body := field(p, `"body":"`)
		if len(body) != 40 {
			t.Errorf("body %d bytes, want 40", len(body))
		}
	}
	// Several sizes (a size distribution): each frame patched right, and
	// the sizes used spread over the variants.
	sizes := []int{10, 11, 125, 126, 300, 65535, 70000, 12}
	s = newSender(0, nil, "lt-x-r0", sizes)
	seen := map[int]bool{}
	for k := uint64(0); k < 400; k++ {
		buf = s.appendSend(buf[:0], k)
		c := newConn(&fakeConn{r: bytes.NewReader(buf)}, nil)
		p, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := ackIndex(p); !ok || got != k {
			t.Fatalf("id of %d: %d %v", k, got, ok)
		}
		if got, ok := msgIndex(p); !ok || got != k {
			t.Fatalf("body of %d: %d %v", k, got, ok)
		}
		seen[len(field(p, `"body":"`))] = true
	}
	if len(seen) != len(sizes) {
		t.Errorf("sizes used %v, want all of %v", seen, sizes)
	}
}

func TestSizeDist(t *testing.T) {
	for _, bad := range []string{"", "normal:5", "uniform:5-100", "uniform:100-50", "lognormal:40", "lognormal:5,1", "lognormal:40,9"} {
		if _, err := parseSizeDist(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	s := &Chat{SizeDist: "lognormal:40,1", Seed: 3}
	var n, sum int
	for i := range 200 {
		for _, size := range s.senderSizes(i) {
			if size < idDigits || size > 65536 {
				t.Fatalf("size %d", size)
			}
			n++
			sum += size
		}
	}
	// A lognormal of median 40 and sigma 1 has mean 40·e^0.5 ≈ 66.
	if mean := float64(sum) / float64(n); mean < 55 || mean > 80 {
		t.Errorf("mean size %.1f, want about 66", mean)
	}
	u := &Chat{SizeDist: "uniform:20-30", Seed: 1}
	for _, size := range u.senderSizes(0) {
		if size < 20 || size > 30 {
			t.Fatalf("uniform size %d", size)
		}
	}
}

func TestScanServerFrames(t *testing.T) {
	ack := []byte(`{"type":"ack","id":"0000000042","msg_id":"m1","ts":1}`)
	msg := []byte(`{"type":"msg","seq":3,"msg_id":"m1","from":"a","to":"b","body":"0000000042 xx","ts":1}`)
	errf := []byte(`{"type":"error","id":"0000000042","code":"rate_limited","message":"slow down"}`)
	if frameType(ack) != typeAck || frameType(msg) != typeMsg || frameType(errf) != typeError ||
		frameType([]byte(`{"type":"synced","seq":0}`)) != typeSynced || frameType([]byte(`{"type":"receipt"}`)) != typeReceipt || frameType([]byte(`{"type":"typing"}`)) != typeOther {
		t.Error("frameType misclassifies")
	}
	var ids []string
	eachID([]byte(`{"type":"receipt","seq":4,"status":"read","msg_ids":["A1","B22","C333"],"ts":1}`), func(id []byte) { ids = append(ids, string(id)) })
	if strings.Join(ids, ",") != "A1,B22,C333" {
		t.Errorf("eachID: %v", ids)
	}
	if k, ok := ackIndex(ack); !ok || k != 42 {
		t.Errorf("ackIndex %d %v", k, ok)
	}
	if k, ok := msgIndex(msg); !ok || k != 42 {
		t.Errorf("msgIndex %d %v", k, ok)
	}
	if string(field(errf, `"code":"`)) != "rate_limited" {
		t.Error("field code")
	}
	for _, bad := range []string{`{"type":"ack","id":"42"}`, `{"type":"ack","id":"00000000421"}`, `{"type":"ack"}`, `{"type":"ack","id":"00000000x2"}`} {
		if _, ok := ackIndex([]byte(bad)); ok {
			t.Errorf("ackIndex accepted %s", bad)
		}
	}
}

func TestParseIPs(t *testing.T) {
	ips, err := parseIPs("127.0.0.2-127.0.0.50, 10.0.0.1")
	if err != nil || len(ips) != 50 || ips[0].String() != "127.0.0.2" || ips[48].String() != "127.0.0.50" || ips[49].String() != "10.0.0.1" {
		t.Fatalf("%v %v", ips, err)
	}
	for _, bad := range []string{"127.0.0.9-127.0.0.2", "x", "::1-::2", "10.0.0.0-10.2.0.0"} {
		if _, err := parseIPs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzConnNext feeds arbitrary server bytes to the frame reader: it must
// never panic nor buffer more than one bounded frame.
func FuzzConnNext(f *testing.F) {
	f.Add(serverFrame(ws.OpText, []byte(`{"type":"ack","id":"0000000001"}`)))
	f.Add(serverFrame(ws.OpPing, nil))
	f.Add([]byte{0x81, 126, 0xff})
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newConn(&fakeConn{r: bytes.NewReader(in), chunk: 3}, nil)
		for range 100 {
			p, err := c.Next()
			if err != nil {
				break
			}
			frameType(p)
			ackIndex(p)
			msgIndex(p)
			field(p, `"code":"`)
			if len(c.buf) > maxFrameBytes+14 {
				t.Fatalf("buffer grew to %d", len(c.buf))
			}
		}
	})
}
