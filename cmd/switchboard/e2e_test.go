package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard/switchboard/auth"
	"github.com/switchboard/switchboard/internal/testserver"
)

// These tests run the real binary, as a user would.

func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }

type wsConn struct {
	conn net.Conn
	wmu  sync.Mutex
	user string // the token's subject: read skips the copies of its own messages
}

func dial(addr, tok string) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + tok}})}
	conn, _, _, err := d.Dial(ctx, "ws://"+addr+"/v1/ws")
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn}
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		var claims struct{ Sub string }
		if p, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(p, &claims) == nil {
			c.user = claims.Sub
		}
	}
	return c, nil
}

func (c *wsConn) send(v any) error {
	b, _ := json.Marshal(v)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wsutil.WriteClientText(c.conn, b)
}

type frame struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	MsgID string `json:"msg_id"`
	Seq   uint64 `json:"seq"`
	Body  string `json:"body"`
	Code  string `json:"code"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// read returns the next frame, skipping the copies of the user's own
// messages that the server keeps in their inbox for their other devices.
func (c *wsConn) read(timeout time.Duration) (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, _, err := c.readBytes()
		if err != nil {
			return f, err
		}
		if f.Type == "msg" && f.From == c.user && f.To != c.user {
			continue
		}
		return f, nil
	}
}

// readBytes reads one frame and decodes it loosely.
func (c *wsConn) readBytes() (frame, []byte, error) {
	var f frame
	b, err := wsutil.ReadServerText(c.conn)
	if err != nil {
		return f, nil, err
	}
	return f, b, json.Unmarshal(b, &f)
}

// TestKill9DuringBurst: kill -9 the server while a client sends a burst,
// restart it, let the client resend everything it sent (same ids, as the
// client's durable outbox does): every acked message is delivered exactly
// once, under the msg_id it was acked with, with gap-free seqs.
func TestKill9DuringBurst(t *testing.T) {
	env := []string{"SWITCHBOARD_GATEWAY_MESSAGE_RATE=1000000", "SWITCHBOARD_GATEWAY_MESSAGE_BURST=1000000"}
	srv := testserver.Start(t, testserver.Options{Env: env})
	dir, addr := srv.DataDir(), srv.Addr()
	const n = 20000
	sender, err := dial(addr, testserver.Token(t, dir, "alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{} // client id -> msg_id
	var mu sync.Mutex
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			f, err := sender.read(10 * time.Second)
			if err != nil {
				return // the server died
			}
			if f.Type == "ack" {
				mu.Lock()
				acked[f.ID] = f.MsgID
				l := len(acked)
				mu.Unlock()
				if l == n/10 {
					srv.Kill()
				}
			}
		}
	}()
	for i := range n {
		if sender.send(map[string]any{"type": "send", "id": fmt.Sprint("m", i), "to": "bob", "body": fmt.Sprint("body ", i)}) != nil {
			break
		}
	}
	<-readerDone
	srv.Wait()
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	if before < n/10 || before == n {
		t.Fatalf("%d acks before the kill; want the kill inside the burst", before)
	}
	t.Logf("%d of %d sends acked before kill -9", before, n)

	// Restart on the same data and resend all, as the outbox would.
	testserver.Start(t, testserver.Options{Addr: addr, DataDir: dir, Env: env})
	sender, err = dial(addr, testserver.Token(t, dir, "alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range n {
			sender.send(map[string]any{"type": "send", "id": fmt.Sprint("m", i), "to": "bob", "body": fmt.Sprint("body ", i)})
		}
	}()
	final := map[string]string{}
	for len(final) < n {
		f, err := sender.read(10 * time.Second)
		if err != nil {
			t.Fatalf("after restart, %d acks: %v", len(final), err)
		}
		if f.Type != "ack" {
			t.Fatalf("after restart: %+v", f)
		}
		final[f.ID] = f.MsgID
	}
	for id, msgID := range acked {
		if final[id] != msgID {
			t.Fatalf("%s was acked as %s before the crash, %s after", id, msgID, final[id])
		}
	}

	bob, err := dial(addr, testserver.Token(t, dir, "bob", ""))
	if err != nil {
		t.Fatal(err)
	}
	bob.send(map[string]any{"type": "sync", "after": 0})
	seen := map[string]bool{}
	for seq := uint64(1); ; seq++ {
		f, err := bob.read(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "synced" {
			if f.Seq != n {
				t.Fatalf("synced at %d, want %d", f.Seq, n)
			}
			break
		}
		if f.Type != "msg" || f.Seq != seq {
			t.Fatalf("entry %d: %+v", seq, f)
		}
		if seen[f.MsgID] {
			t.Fatalf("%s delivered twice", f.MsgID)
		}
		seen[f.MsgID] = true
	}
	for id, msgID := range final {
		if !seen[msgID] {
			t.Fatalf("acked message %s (%s) not delivered", id, msgID)
		}
	}
}

// TestTokensRefused: bad, expired and alg=none tokens get HTTP 401 before
// the upgrade; the server stays up.
func TestTokensRefused(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir, addr := srv.DataDir(), srv.Addr()
	good := testserver.Token(t, dir, "alice", "")
	secret, _ := auth.LoadOrCreateSecret(dir)
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}).SignedString(secret)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString(secret)
	otherKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(strings.Repeat("k", 32)))
	b64 := base64.RawURLEncoding.EncodeToString
	algNone := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(fmt.Sprintf(`{"sub":"alice","exp":%d}`, time.Now().Add(time.Hour).Unix()))) + "."
	cases := map[string]string{"expired": expired, "no exp": noExp, "wrong key": otherKey, "alg none": algNone,
		"garbage": "not.a.token", "tampered": good[:len(good)-2] + "xx"}
	for name, tok := range cases {
		_, err := dial(addr, tok)
		var status ws.StatusError
		if err == nil || !errors.As(err, &status) || int(status) != http.StatusUnauthorized {
			t.Errorf("%s: got %v, want HTTP 401", name, err)
		}
	}
	c, err := dial(addr, good)
	if err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	c.send(map[string]any{"type": "send", "id": "1", "to": "bob", "body": "hi"})
	if f, err := c.read(5 * time.Second); err != nil || f.Type != "ack" {
		t.Fatalf("after refusals: %+v %v", f, err)
	}
}

// TestGracefulShutdown: SIGTERM closes clients with 1001, exits 0, and
// keeps everything acked.
func TestGracefulShutdown(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	dir, addr := srv.DataDir(), srv.Addr()
	c, err := dial(addr, testserver.Token(t, dir, "alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		c.send(map[string]any{"type": "send", "id": fmt.Sprint(i), "to": "bob", "body": "before shutdown"})
	}
	for i := 0; i < 10; {
		if f, err := c.read(5 * time.Second); err != nil {
			t.Fatal(err)
		} else if f.Type == "ack" {
			i++
		}
	}
	srv.Signal(syscall.SIGTERM)
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var code ws.StatusCode
	for {
		h, err := ws.ReadHeader(c.conn)
		if err != nil {
			t.Fatalf("waiting for the close frame: %v", err)
		}
		p := make([]byte, h.Length)
		io.ReadFull(c.conn, p)
		if h.OpCode == ws.OpClose {
			code, _ = ws.ParseCloseFrameData(p)
			break
		}
	}
	if code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	testserver.Start(t, testserver.Options{Addr: addr, DataDir: dir})
	bob, err := dial(addr, testserver.Token(t, dir, "bob", ""))
	if err != nil {
		t.Fatal(err)
	}
	bob.send(map[string]any{"type": "sync", "after": 0})
	for {
		f, err := bob.read(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "synced" {
			if f.Seq != 10 {
				t.Fatalf("after restart bob has %d entries, want 10", f.Seq)
			}
			return
		}
	}
}
