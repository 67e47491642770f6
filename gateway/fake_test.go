package gateway

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/router"
)

type nopDir struct{}

func (nopDir) Register(context.Context, router.Route) error   { return nil }
func (nopDir) Unregister(context.Context, router.Route) error { return nil }
func (nopDir) Lookup(_ context.Context, _ string, dst []router.Route) ([]router.Route, error) {
	return dst, nil
}

// fakeConn is the part of gnet.Conn the gateway uses, over an in-memory
// inbound buffer. Calling any other method panics (the embedded interface
// is nil), which catches unexpected use.
type fakeConn struct {
	gnet.Conn
	in     []byte
	out    []byte
	keep   bool // keep written bytes in out (else just count them)
	nOut   int
	writes atomic.Int64
	closed bool
	ctx    any
	el     gnet.EventLoop
}

func (f *fakeConn) Peek(n int) ([]byte, error) {
	if n <= 0 || n > len(f.in) {
		if n > len(f.in) {
			return nil, errors.New("short")
		}
		n = len(f.in)
	}
	return f.in[:n], nil
}

func (f *fakeConn) Discard(n int) (int, error) {
	if n <= 0 || n > len(f.in) {
		n = len(f.in)
	}
	f.in = f.in[n:]
	return n, nil
}

func (f *fakeConn) InboundBuffered() int  { return len(f.in) }
func (f *fakeConn) OutboundBuffered() int { return 0 }
func (f *fakeConn) Write(p []byte) (int, error) {
	if f.keep {
		f.out = append(f.out, p...)
	}
	f.nOut += len(p)
	f.writes.Add(1)
	return len(p), nil
}
func (f *fakeConn) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		m, _ := f.Write(b)
		n += m
	}
	return n, nil
}
func (f *fakeConn) Close() error                                { f.closed = true; return nil }
func (f *fakeConn) Context() any                                { return f.ctx }
func (f *fakeConn) SetContext(v any)                            { f.ctx = v }
func (f *fakeConn) RemoteAddr() net.Addr                        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (f *fakeConn) EventLoop() gnet.EventLoop                   { return f.el }
func (f *fakeConn) AsyncWrite([]byte, gnet.AsyncCallback) error { return nil }

// fakeLoop runs mailbox wake-ups synchronously, as if the loop were idle.
type fakeLoop struct{ gnet.EventLoop }

func (fakeLoop) Execute(ctx context.Context, r gnet.Runnable) error { return r.Run(ctx) }

// stubService completes every request at once, without a store: it lets
// benchmarks measure the gateway's own work.
type stubService struct{}

func (stubService) Submit(r *chat.Request) error {
	r.Done.Complete(r, chat.Result{MsgID: "01JDQ4ZJ0Y8H2N3K5M6P7Q8R9S", TS: 1732650000000})
	return nil
}
func (stubService) ReadInbox(context.Context, string, uint64, int, func(uint64, []byte) error) error {
	return nil
}
func (stubService) LastSeq(context.Context, string) (uint64, error) { return 0, nil }
func (stubService) Config() chat.Config                             { return chat.Config{MaxBodyBytes: 64 << 10} }

type stubBus struct{}

func (stubBus) Publish(context.Context, string, *chat.Delivery) error { return nil }
func (stubBus) Emit(string, string, []byte) error                     { return nil }
func (stubBus) Consume(string, chat.StreamHandler) (func(), error)    { return func() {}, nil }
func (stubBus) Subscribe(string, chat.DeliveryHandler) (func(), error) {
	return func() {}, nil
}

// newFakeGateway returns a gateway whose connections are fakeConns on one
// fakeLoop, with its hub running.
func newFakeGateway(tb interface{ Cleanup(func()) }, cfg Config, svc Service) (*Gateway, gnet.EventLoop) {
	if svc == nil {
		svc = stubService{}
	}
	g, err := New(cfg, Deps{Service: svc, Bus: stubBus{}, Directory: nopDir{}, Auth: testAuth{}})
	if err != nil {
		panic(err)
	}
	tb.Cleanup(g.hub.stop)
	return g, fakeLoop{}
}

// open runs OnOpen for a new fakeConn.
func (g *Gateway) openFake(el gnet.EventLoop, keep bool) *fakeConn {
	fc := &fakeConn{el: el, keep: keep}
	g.OnOpen(fc)
	return fc
}
