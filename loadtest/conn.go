package loadtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// maxFrameBytes bounds a server frame's declared payload. The server's
// largest frames are sync pages and msg frames, well under this.
const maxFrameBytes = 4 << 20

// Errors from Conn.Next.
var (
	// ErrProtocol: the server sent a frame this client does not accept
	// (fragmented, reserved opcode, or larger than 4 MiB).
	ErrProtocol = errors.New("loadtest: unexpected frame from server")
)

// CloseError is returned by Conn.Next when the server closed the
// connection with a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("closed by server: %d %s", e.Code, e.Reason) }

// Conn is the client side of one WebSocket connection, written for load:
// frames are parsed in place from one growing buffer, and callers write
// whole pre-encoded (masked) frames.
//
// Next must be called from one goroutine only (the connection's reader).
// Write and Close are safe from any goroutine: each Write is one write
// call on the socket, which Go serializes, so frames never interleave.
type Conn struct {
	nc     net.Conn
	buf    []byte // unread bytes are buf[r:w]
	r, w   int
	closed atomic.Bool
}

func newConn(nc net.Conn, initial []byte) *Conn {
	c := &Conn{nc: nc, buf: make([]byte, max(512, len(initial)))}
	c.w = copy(c.buf, initial)
	return c
}

// Write writes pre-encoded frames.
func (c *Conn) Write(frames []byte) error {
	_, err := c.nc.Write(frames)
	return err
}

// SetReadDeadline sets the deadline for Next.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for Write.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// Close sends a close frame (1000) if it can do so at once, then closes the
// socket. A reader blocked in Next returns net.ErrClosed. Close is
// idempotent.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.writeControl(ws.OpClose, []byte{0x03, 0xe8}) // 1000
	return c.nc.Close()
}

// Drop closes the socket without a close frame, as a network loss would.
// A reader blocked in Next returns net.ErrClosed. Drop and Close are
// idempotent together.
func (c *Conn) Drop() error {
	if c.closed.Swap(true) {
		return nil
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset, not an orderly FIN: the peer learns at once
	}
	return c.nc.Close()
}

// Next returns the payload of the next data frame. It answers pings and
// returns a *CloseError on a close frame. The payload aliases the
// connection's buffer and is valid until the next call.
func (c *Conn) Next() ([]byte, error) {
	for {
		op, fin, p, err := c.frame()
		if err != nil {
			return nil, err
		}
		switch op {
		case ws.OpText, ws.OpBinary:
			if !fin {
				return nil, fmt.Errorf("%w: fragmented message", ErrProtocol)
			}
			return p, nil
		case ws.OpPing:
			if err := c.writeControl(ws.OpPong, p); err != nil {
				return nil, err
			}
		case ws.OpPong:
		case ws.OpClose:
			ce := &CloseError{Code: 1005}
			if len(p) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(p))
				ce.Reason = string(p[2:])
				c.writeControl(ws.OpClose, p[:2])
			}
			return nil, ce
		default:
			return nil, fmt.Errorf("%w: opcode %d", ErrProtocol, op)
		}
	}
}

// frame reads one frame, reading from the socket only when the buffer
// does not hold a whole one.
func (c *Conn) frame() (op ws.OpCode, fin bool, payload []byte, err error) {
	for {
		if b := c.buf[c.r:c.w]; len(b) >= 2 {
			fin, op = b[0]&0x80 != 0, ws.OpCode(b[0]&0x0f)
			masked := b[1]&0x80 != 0
			n, hl := uint64(b[1]&0x7f), 2
			switch n {
			case 126:
				hl = 4
				if len(b) >= 4 {
					n = uint64(binary.BigEndian.Uint16(b[2:]))
				}
			case 127:
				hl = 10
				if len(b) >= 10 {
					n = binary.BigEndian.Uint64(b[2:])
				}
			}
			if masked {
				hl += 4
			}
			if len(b) >= hl {
				if n > maxFrameBytes || b[0]&0x70 != 0 {
					return 0, false, nil, fmt.Errorf("%w: reserved bits or %d-byte payload", ErrProtocol, n)
				}
				total := hl + int(n)
				if len(b) >= total {
					payload = b[hl:total]
					if masked {
						ws.Cipher(payload, [4]byte(b[hl-4:hl]), 0)
					}
					c.r += total
					return op, fin, payload, nil
				}
				if total > len(c.buf) {
					nb := make([]byte, max(total, 2*len(c.buf)))
					c.w = copy(nb, b)
					c.buf, c.r = nb, 0
				}
			}
		}
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if err != nil && n == 0 {
			return 0, false, nil, err
		}
	}
}

// writeControl writes a masked control frame (payload at most 125 bytes).
func (c *Conn) writeControl(op ws.OpCode, p []byte) error {
	var f [2 + 4 + 125]byte
	p = p[:min(len(p), 125)]
	f[0] = 0x80 | byte(op)
	f[1] = 0x80 | byte(len(p))
	mask := ws.NewMask()
	copy(f[2:6], mask[:])
	copy(f[6:], p)
	ws.Cipher(f[6:6+len(p)], mask, 0)
	_, err := c.nc.Write(f[:6+len(p)])
	return err
}

// encodeText returns payload as one masked text frame (not for hot paths:
// it allocates).
func encodeText(payload []byte) []byte {
	return ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame(payload)))
}

var syncPayload = []byte(`{"type":"sync","after":0}`)

// syncOnce sends {"type":"sync","after":0} and reads until "synced",
// failing on an error frame or after timeout. Frames before "synced" (the
// stored inbox) are skipped. It returns the round trip.
func (c *Conn) syncOnce(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c.nc.SetDeadline(start.Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.Write(encodeText(syncPayload)); err != nil {
		return 0, stageErr("sync", err)
	}
	for {
		p, err := c.Next()
		if err != nil {
			return 0, stageErr("sync", err)
		}
		switch frameType(p) {
		case typeSynced:
			return time.Since(start), nil
		case typeError:
			return 0, stageErr("sync", &ServerError{Code: string(field(p, `"code":"`))})
		}
	}
}

// ServerError is an error frame received where none was expected.
type ServerError struct{ Code string }

func (e *ServerError) Error() string { return "error frame: " + e.Code }

// dialer opens authenticated connections to its gateways, spreading them
// over the source addresses round robin. Safe for concurrent use.
type dialer struct {
	gateways []gateway // at least one
	ips      []net.IP
	next     atomic.Uint64 // the next source address
	nextGW   atomic.Uint64 // the next gateway of nextGateway
	timeout  time.Duration
	token    func(user string) (string, error)
}

// gateway is one WebSocket endpoint and its host:port.
type gateway struct {
	u    *url.URL
	addr string
}

// nextGateway picks gateways round robin.
func (d *dialer) nextGateway() int { return int((d.nextGW.Add(1) - 1) % uint64(len(d.gateways))) }

// DialTimes are the phases of one connection's opening, from the start of
// the TCP connect.
type DialTimes struct {
	TCP     time.Duration // TCP handshake
	Upgrade time.Duration // TCP handshake plus the WebSocket upgrade
}

// aLongTimeAgo is a deadline that makes pending I/O fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// dial opens user's connection to gateway g mod len(gateways).
func (d *dialer) dial(ctx context.Context, user string, g int) (*Conn, DialTimes, error) {
	tok, err := d.token(user)
	if err != nil {
		return nil, DialTimes{}, stageErr("token", err)
	}
	return d.dialToken(ctx, tok, g)
}

func (d *dialer) dialToken(ctx context.Context, tok string, g int) (*Conn, DialTimes, error) {
	gw := d.gateways[g%len(d.gateways)]
	var t DialTimes
	nd := net.Dialer{Timeout: d.timeout}
	if len(d.ips) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: d.ips[(d.next.Add(1)-1)%uint64(len(d.ips))]}
	}
	start := time.Now()
	nc, err := nd.DialContext(ctx, "tcp", gw.addr)
	if err != nil {
		return nil, t, stageErr("dial", err)
	}
	t.TCP = time.Since(start)
	nc.SetDeadline(start.Add(d.timeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	wd := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + tok}})}
	br, _, err := wd.Upgrade(nc, gw.u)
	stop()
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, t, stageErr("upgrade", err)
	}
	t.Upgrade = time.Since(start)
	nc.SetDeadline(time.Time{})
	var initial []byte
	if br != nil {
		initial, _ = br.Peek(br.Buffered())
		initial = append([]byte(nil), initial...)
		ws.PutReader(br)
	}
	return newConn(nc, initial), t, nil
}
