package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/router"
)

// Authenticator checks a bearer token and returns who presents it.
// It is called on an event loop for every upgrade: it must be fast and must
// not block (no network or disk). Safe for concurrent use.
type Authenticator interface {
	Authenticate(token []byte) (user, device string, err error)
}

// Service is what the gateway needs of the messaging core; *chat.Service
// implements it. All methods are safe for concurrent use; Submit never
// blocks.
type Service interface {
	Submit(r *chat.Request) error
	ReadInbox(ctx context.Context, user string, after uint64, limit int, fn func(seq uint64, frame []byte) error) error
	LastSeq(ctx context.Context, user string) (uint64, error)
	Config() chat.Config
}

var _ Service = (*chat.Service)(nil)

// Deps are what a Gateway works with. Service, Bus, Directory and Auth are
// required.
type Deps struct {
	Service   Service
	Bus       chat.Bus
	Directory router.Directory
	Auth      Authenticator
	// Presence serves active/inactive, presence.sub, privacy and contacts
	// frames; nil answers them with unknown_type. Its Pusher should be the
	// Gateway (Gateway.Push).
	Presence Presence
	// HTTP serves plain HTTP requests on the gateway's port (/healthz,
	// /readyz, /metrics); nil answers them all with 404.
	HTTP       http.Handler
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Gateway serves WebSocket clients on gnet event loops.
type Gateway struct {
	cfg Config
	svc Service
	// maxBody is the Service's body limit, read once.
	maxBody  int
	bus      chat.Bus
	dir      router.Directory
	auth     Authenticator
	presence Presence
	http     http.Handler
	log      *slog.Logger
	m        *metrics
	hub      *hub

	mu    sync.Mutex
	loops map[gnet.EventLoop]*loop

	eng      gnet.Engine
	booted   chan struct{}
	connID   atomic.Uint64
	open     atomic.Int64 // WebSocket connections open
	draining atomic.Bool
	stopTick chan struct{}
	httpSem  chan struct{}
	unsub    func()
	shutOnce sync.Once
	shutErr  error
}

// New returns a Gateway; Run serves it.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Service == nil || deps.Bus == nil || deps.Directory == nil || deps.Auth == nil {
		return nil, errors.New("gateway: Service, Bus, Directory and Auth are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg: cfg, svc: deps.Service, bus: deps.Bus, dir: deps.Directory, auth: deps.Auth, presence: deps.Presence,
		http: deps.HTTP, log: log, m: newMetrics(deps.Registerer),
		loops:    make(map[gnet.EventLoop]*loop),
		booted:   make(chan struct{}),
		stopTick: make(chan struct{}),
		httpSem:  make(chan struct{}, 64),
	}
	g.m.open = g.open.Load
	g.maxBody = deps.Service.Config().MaxBodyBytes
	g.hub = newHub(g, cfg.HubWorkers)
	return g, nil
}

// SetPresence installs the presence service when it could not be given in
// Deps (it takes the Gateway as its Pusher). Call it before Run.
func (g *Gateway) SetPresence(p Presence) { g.presence = p }

// Config returns the configuration with defaults filled in.
func (g *Gateway) Config() Config { return g.cfg }

// Run serves until Shutdown. It subscribes the gateway's node to the bus
// and returns the error that stopped gnet, if any.
func (g *Gateway) Run() error {
	unsub, err := g.bus.Subscribe(g.cfg.Node, g.hub.deliver)
	if err != nil {
		return fmt.Errorf("gateway: subscribe node %q: %w", g.cfg.Node, err)
	}
	g.unsub = unsub
	opts := []gnet.Option{
		gnet.WithMulticore(g.cfg.EventLoops == 0),
		gnet.WithNumEventLoop(g.cfg.EventLoops),
		gnet.WithReusePort(g.cfg.ReusePort),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{g.log}),
		gnet.WithLockOSThread(false),
	}
	return gnet.Run(g, "tcp://"+g.cfg.Listen, opts...)
}

// Booted is closed once the gateway listens.
func (g *Gateway) Booted() <-chan struct{} { return g.booted }

// Ready reports whether the gateway accepts new connections.
func (g *Gateway) Ready() bool {
	select {
	case <-g.booted:
		return !g.draining.Load()
	default:
		return false
	}
}

// Connections returns the number of open WebSocket connections.
func (g *Gateway) Connections() int64 { return g.open.Load() }

// Drain stops accepting upgrades and client requests: frames that arrive
// from now on get error shutting_down, and /readyz answers 503. Sockets
// stay open, so that replies to requests already queued reach them.
func (g *Gateway) Drain() { g.draining.Store(true) }

// Shutdown closes every connection with 1001 (going away), waits until
// they are closed or ctx is done, and stops the event loops.
// Call Drain and close the Service first so that queued replies go out.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutOnce.Do(func() { g.shutErr = g.shutdown(ctx) })
	return g.shutErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.Drain()
	select {
	case <-g.booted:
	default:
		return nil
	}
	g.mu.Lock()
	for _, l := range g.loops {
		l.mb.push(mailItem{kind: itemCloseAll, ce: errGoingAway})
	}
	g.mu.Unlock()
	wait := time.NewTicker(10 * time.Millisecond)
	defer wait.Stop()
	for g.open.Load() > 0 {
		select {
		case <-ctx.Done():
			g.log.Warn("shutdown: connections still open at the deadline", "open", g.open.Load())
			goto stop
		case <-wait.C:
		}
	}
stop:
	close(g.stopTick)
	err := g.eng.Stop(ctx)
	if g.unsub != nil {
		g.unsub()
	}
	g.hub.stop()
	return err
}

// OnBoot implements gnet.EventHandler.
func (g *Gateway) OnBoot(eng gnet.Engine) gnet.Action {
	g.eng = eng
	close(g.booted)
	go g.ticker()
	return gnet.None
}

// OnShutdown implements gnet.EventHandler.
func (g *Gateway) OnShutdown(gnet.Engine) {}

// OnTick implements gnet.EventHandler (unused: sweeps run on the loops).
func (g *Gateway) OnTick() (time.Duration, gnet.Action) { return time.Hour, gnet.None }

// loopOf returns the gateway state for c's event loop.
func (g *Gateway) loopOf(c gnet.Conn) *loop {
	el := c.EventLoop()
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.loops[el]
	if l == nil {
		l = &loop{g: g, el: el, scratch: make([]byte, 0, 4096)}
		l.mb.l = l
		l.initUpgrader()
		g.loops[el] = l
	}
	return l
}

// OnOpen implements gnet.EventHandler.
func (g *Gateway) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	now := time.Now().UnixNano()
	c := &wsConn{gc: gc, l: g.loopOf(gc), id: g.connID.Add(1), accepted: now, lastRead: now}
	gc.SetContext(c)
	c.l.add(c)
	g.m.accepted.Inc()
	return nil, gnet.None
}

// OnClose implements gnet.EventHandler.
func (g *Gateway) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, _ := gc.Context().(*wsConn)
	if c == nil {
		return gnet.None
	}
	c.closed.Store(true)
	c.l.remove(c)
	c.dropFrag()
	if c.user != "" { // it was upgraded
		g.open.Add(-1)
		g.hub.unregister(c)
	}
	return gnet.None
}

// OnTraffic implements gnet.EventHandler.
func (g *Gateway) OnTraffic(gc gnet.Conn) gnet.Action {
	c := gc.Context().(*wsConn)
	return c.l.traffic(c, time.Now().UnixNano())
}

// sweepEvery is how often each loop sweeps its connections for timeouts
// and pings (the ticker's 200 rounds of 5 ms).
const sweepEvery = time.Second

// ticker asks every loop to sweep its connections once a second, and
// every 5 ms wakes the loops that have reads waiting for a connection to
// drain (gnet has no writable callback).
func (g *Gateway) ticker() {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-g.stopTick:
			return
		case <-t.C:
		}
		sweep := n%200 == 0
		g.mu.Lock()
		for _, l := range g.loops {
			switch {
			case sweep:
				l.mb.push(mailItem{kind: itemTick})
			case l.paceReq.Load():
				l.mb.push(mailItem{kind: itemPace})
			}
		}
		g.mu.Unlock()
	}
}

// gnetLogger sends gnet's own logs to slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Info(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "component", "gnet") }
