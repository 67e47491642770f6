package gateway

import (
	"errors"
	"sync"
	"time"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/protocol"
)

// request is a chat.Request with the gateway's bookkeeping. It is pooled:
// taken on the loop when a frame arrives, returned once the Service has
// completed it and the reply is queued.
type request struct {
	chat.Request
	c     *wsConn
	start int64 // unix nanos the frame was handled
	ack   bool  // reply with an ack (receipts with an id)
	buf   []byte
}

var reqPool = sync.Pool{New: func() any {
	q := &request{buf: make([]byte, 0, 1024)}
	q.MsgIDs = make([][]byte, 0, protocol.MaxMsgIDs)
	q.Done = q
	return q
}}

// getReq returns a request for c with room to keep need bytes.
func getReq(c *wsConn, now int64, need int) *request {
	q := reqPool.Get().(*request)
	q.c, q.start, q.From = c, now, c.user
	if cap(q.buf) < need {
		q.buf = make([]byte, 0, need)
	}
	return q
}

func putReq(q *request) {
	clear(q.MsgIDs)
	clear(q.Members)
	q.Request = chat.Request{MsgIDs: q.MsgIDs[:0], Members: q.Members[:0], Done: q}
	q.c, q.ack = nil, false
	if cap(q.buf) > 256<<10 {
		q.buf = make([]byte, 0, 1024)
	}
	q.buf = q.buf[:0]
	reqPool.Put(q)
}

// keep copies b into the request's own buffer (sized by getReq, so it
// never moves) and returns the copy.
func (q *request) keep(b []byte) []byte {
	n := len(q.buf)
	q.buf = append(q.buf, b...)
	return q.buf[n:len(q.buf):len(q.buf)]
}

// Complete queues the reply for the client (chat.Completer). It runs on
// the Service's goroutine.
func (q *request) Complete(_ *chat.Request, res chat.Result) {
	c := q.c
	g := c.l.g
	switch {
	case res.Err != nil:
		code, msg := errorCode(res.Err)
		g.m.errorFrames(code).Inc()
		f := getFrame(64 + len(q.ClientID) + len(msg))
		c.send(f.seal(opText, protocol.AppendError(f.payload(), q.ClientID, code, msg)))
	case q.Kind == chat.KindSend:
		g.m.ackSeconds.Observe(float64(time.Now().UnixNano()-q.start) / 1e9)
		f := getFrame(64 + len(q.ClientID))
		c.send(f.seal(opText, protocol.AppendAck(f.payload(), q.ClientID, res.MsgID, res.TS)))
	case res.Data != nil:
		f := getFrame(32 + len(q.ClientID) + len(res.Data))
		c.send(f.seal(opText, protocol.AppendAckFields(f.payload(), q.ClientID, res.Data)))
	case q.ack:
		f := getFrame(32 + len(q.ClientID))
		c.send(f.seal(opText, protocol.AppendAck(f.payload(), q.ClientID, "", 0)))
	}
	putReq(q)
}

// errorCode maps a Service error to an error frame's code and message.
func errorCode(err error) (code, message string) {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code, pe.Message
	case errors.Is(err, chat.ErrOverloaded):
		return protocol.CodeOverloaded, "server overloaded: retry later with the same id"
	case errors.Is(err, chat.ErrShuttingDown):
		return protocol.CodeShuttingDown, "server shutting down: reconnect and retry"
	}
	return protocol.CodeInternal, "internal error: retry later with the same id"
}

// fragBuf assembles a fragmented message. Pooled: fragments are rare, and
// a connection holds one only while a message is incomplete.
type fragBuf struct{ b []byte }

var fragPool = sync.Pool{New: func() any { return &fragBuf{b: make([]byte, 0, 4096)} }}

func getFragBuf() *fragBuf { return fragPool.Get().(*fragBuf) }

func putFragBuf(f *fragBuf) {
	if cap(f.b) > 256<<10 {
		return
	}
	f.b = f.b[:0]
	fragPool.Put(f)
}
