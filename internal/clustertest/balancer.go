package clustertest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Balancer is an L4 (TCP) load balancer in front of the gateways, as in
// production: each new connection goes to the next backend, round robin,
// skipping those that refuse it. A client that loses its gateway
// reconnects through it and lands on another.
type Balancer struct {
	ln       net.Listener
	backends func() []string
	next     atomic.Uint64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// NewBalancer listens on a free loopback port and forwards to the
// addresses backends returns at each connection. It stops when the test
// ends.
func NewBalancer(t testing.TB, backends func() []string) *Balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	go b.serve()
	t.Cleanup(b.close)
	return b
}

// URL is the WebSocket URL through the balancer.
func (b *Balancer) URL() string { return "ws://" + b.ln.Addr().String() + "/v1/ws" }

func (b *Balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.forward(c)
	}
}

func (b *Balancer) forward(c net.Conn) {
	addrs := b.backends()
	var up net.Conn
	for range addrs {
		addr := addrs[b.next.Add(1)%uint64(len(addrs))]
		var err error
		if up, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			break
		}
	}
	if up == nil {
		c.Close()
		return
	}
	if !b.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// A half close would keep a client talking to a dead gateway:
		// when either side ends, both do, as a TCP reset would.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	b.mu.Lock()
	delete(b.conns, c)
	delete(b.conns, up)
	b.mu.Unlock()
}

func (b *Balancer) track(cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		b.conns[c] = struct{}{}
	}
	return true
}

func (b *Balancer) close() {
	b.ln.Close()
	b.mu.Lock()
	conns := b.conns
	b.conns = nil
	b.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}
