package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/auth"
)

// Scenario is one kind of load. A scenario is a struct of its parameters;
// Run applies the load through env and records figures in r. Run must stop
// by itself (every wait bounded) and return promptly once ctx is canceled,
// leaving r filled with what was measured so far.
type Scenario interface {
	// Name is the scenario's command-line name.
	Name() string
	// Params returns the parameters as recorded in the report.
	Params() map[string]any
	// Validate reports parameters that cannot work.
	Validate() error
	// Run applies the load.
	Run(ctx context.Context, env *Env, r *Report) error
}

// Run runs scenario s against the server of cfg and returns its report. The
// report is returned even when Run fails part-way (with what was measured)
// or ctx is canceled (Report.Interrupted); it is nil only when the run
// could not start.
func Run(ctx context.Context, cfg Config, s Scenario) (*Report, error) {
	cfg.setDefaults()
	if err := errors.Join(cfg.Validate(), s.Validate()); err != nil {
		return nil, err
	}
	runID, err := newRunID()
	if err != nil {
		return nil, err
	}
	env, err := newEnv(cfg, runID)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Scenario: s.Name(), RunID: runID, Target: cfg.URL, Params: s.Params(),
		Environment: environment(), Started: time.Now().UTC(), Errors: map[string]int64{},
	}
	err = s.Run(ctx, env, r)
	r.ElapsedSeconds = time.Since(r.Started).Seconds()
	r.Interrupted = ctx.Err() != nil
	return r, err
}

// Env is what a scenario gets from Run: connections to the server and
// probes of the server. Safe for concurrent use.
type Env struct {
	cfg    Config
	runID  string
	dialer *dialer
	probe  *probe
	log    *slog.Logger
	// fileLimit is this process's RLIMIT_NOFILE after raising it.
	fileLimit uint64
}

func newEnv(cfg Config, runID string) (*Env, error) {
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		cfg.Log.Warn("could not raise the open-file limit", "soft", soft, "hard", hard, "err", err)
	}
	var secret []byte
	if cfg.SecretFile != "" {
		secret, err = auth.LoadSecret(cfg.SecretFile)
	} else {
		secret, err = auth.LoadSecret(filepath.Join(cfg.DataDir, auth.SecretFile))
	}
	if err != nil {
		return nil, fmt.Errorf("loadtest: tokens need the server's secret (--data-dir or --secret-file): %w", err)
	}
	is, err := auth.NewIssuer(secret)
	if err != nil {
		return nil, err
	}
	var gateways []gateway
	for _, s := range cfg.urls() {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
		gateways = append(gateways, gateway{u: u, addr: addr})
	}
	ips, err := parseIPs(cfg.SourceIPs)
	if err != nil {
		return nil, err
	}
	e := &Env{
		cfg: cfg, runID: runID, log: cfg.Log, fileLimit: soft,
		probe: &probe{pids: serverPIDs(cfg), metricsURL: cfg.MetricsURL, client: &http.Client{}},
	}
	e.dialer = &dialer{
		gateways: gateways, ips: ips, timeout: cfg.DialTimeout,
		// A day is plenty for any bounded run.
		token: func(user string) (string, error) { return is.Issue(user, "", 24*time.Hour) },
	}
	return e, nil
}

// serverPIDs lists the server's processes: ServerPID and ServerPIDs.
func serverPIDs(cfg Config) []int {
	var pids []int
	if cfg.ServerPID > 0 {
		pids = append(pids, cfg.ServerPID)
	}
	return append(pids, cfg.ServerPIDs...)
}

func newRunID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// User returns the user id of the i-th user of a kind ("s", "r", "idle",
// ...) for this run.
func (e *Env) User(kind string, i int) string {
	return fmt.Sprintf("%s-%s-%s%d", e.cfg.UserPrefix, e.runID, kind, i)
}

// Dial opens an authenticated connection for user (the token is minted
// here) to the next gateway, round robin. Errors carry their stage; Kind
// labels them.
func (e *Env) Dial(ctx context.Context, user string) (*Conn, DialTimes, error) {
	return e.dialer.dial(ctx, user, e.dialer.nextGateway())
}

// Gateways is how many gateways Config.URL names (at least one).
func (e *Env) Gateways() int { return len(e.dialer.gateways) }

// DialGateway is Dial to gateway g mod Gateways().
func (e *Env) DialGateway(ctx context.Context, user string, g int) (*Conn, DialTimes, error) {
	return e.dialer.dial(ctx, user, g)
}

// Token mints an access token for user, signed with the server's secret.
func (e *Env) Token(user string) (string, error) { return e.dialer.token(user) }

// DialToken opens a connection with a token from Token: for scenarios
// that keep token minting out of what they time.
func (e *Env) DialToken(ctx context.Context, token string) (*Conn, DialTimes, error) {
	return e.dialer.dialToken(ctx, token, e.dialer.nextGateway())
}

// Log returns the logger for progress lines.
func (e *Env) Log() *slog.Logger { return e.log }

// Server samples the server's RSS, CPU and connections.
func (e *Env) Server(ctx context.Context) ServerSample { return e.probe.sample(ctx) }

// dialStats records how a set of connections opened.
type dialStats struct {
	upgrade *histogram // TCP connect + upgrade
	sync    *histogram // first sync round trip
	fails   counts
	up      atomic.Int64
	lastUp  atomic.Int64 // nanos from start of the last successful open
}

func newDialStats() *dialStats {
	return &dialStats{upgrade: newHistogram(), sync: newHistogram()}
}

// openConns opens connections for indexes [from, to) with Concurrency at
// once, connection i to gateway gw(i) (nil: i); each syncs once.
// conns[i-from] is nil for a failed one. opened, if
// not nil, is called with each connection as soon as it is up, so that
// something reads it (answering the server's pings) while the others are
// still opening: a slow setup would otherwise outlast the server's idle
// timeout. (The scenario's Meter shows the progress.)
func (e *Env) openConns(ctx context.Context, from, to int, user func(int) string, gw func(int) int, st *dialStats, opened func(i int, c *Conn)) []*Conn {
	if gw == nil {
		gw = func(i int) int { return i }
	}
	conns := make([]*Conn, to-from)
	var next atomic.Int64
	next.Store(int64(from))
	start := time.Now()
	var wg sync.WaitGroup
	for range min(e.cfg.Concurrency, to-from) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				c, t, err := e.DialGateway(ctx, user(i), gw(i))
				if err != nil {
					st.fails.addErr(err)
					continue
				}
				rtt, err := c.syncOnce(e.cfg.DialTimeout)
				if err != nil {
					c.Close()
					st.fails.addErr(err)
					continue
				}
				st.upgrade.record(int64(t.Upgrade))
				st.sync.record(int64(rtt))
				conns[i-from] = c
				if opened != nil {
					opened(i, c)
				}
				st.up.Add(1)
				up := int64(time.Since(start))
				for {
					old := st.lastUp.Load()
					if up <= old || st.lastUp.CompareAndSwap(old, up) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	return conns
}

// Environment describes the machine the generator ran on.
type Environment struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	OSArch     string `json:"os_arch"`
	Hostname   string `json:"hostname"`
	FileLimit  uint64 `json:"file_limit"`
	// Processes is how many generator processes ran (idle may use several).
	Processes int `json:"processes"`
}

func environment() Environment {
	env := Environment{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OSArch: runtime.GOOS + "/" + runtime.GOARCH, Processes: 1,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env.Kernel = "linux " + strings.TrimSpace(string(b))
	}
	env.Hostname, _ = os.Hostname()
	_, env.FileLimit, _ = RaiseFileLimit()
	return env
}

// every calls fn every d until done is closed.
func every(done <-chan struct{}, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			fn()
		}
	}
}
