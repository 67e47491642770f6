package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Reconnect is the reconnect storm: Conns clients connect and sync, hold,
// then all lose their connection at the same moment (as when a gateway
// restarts or a network path flaps) and come straight back: reconnect,
// authenticate, sync. It measures how long until every client is back and
// synced, and each client's time from the drop to its "synced".
//
// A client whose reconnect fails retries, as real clients do, after a
// backoff that doubles from 100 ms (capped at 2 s) with full jitter,
// until the storm's bound (Config.DialTimeout × 6) passes.
type Reconnect struct {
	Conns int
	// Hold is the time between all clients being up and the drop.
	// Default 2s.
	Hold time.Duration
	// Jitter spreads the reconnects: each client waits a random time in
	// [0, Jitter) first. Default 0: all at once, the worst case.
	Jitter time.Duration
	// Concurrency bounds the reconnects in flight. Default 0: no bound
	// (every client at once).
	Concurrency int
	// Graceful makes clients close with a close frame (as when they go to
	// the background) instead of dropping the socket (as when the network
	// or the gateway goes away).
	Graceful bool
	// Seed seeds the jitter and backoff.
	Seed uint64
}

var _ Scenario = (*Reconnect)(nil)

// Name implements Scenario.
func (s *Reconnect) Name() string { return "reconnect" }

// Params implements Scenario.
func (s *Reconnect) Params() map[string]any {
	return map[string]any{"conns": s.Conns, "hold": s.Hold.String(), "jitter": s.Jitter.String(),
		"concurrency": s.Concurrency, "graceful": s.Graceful, "seed": s.Seed}
}

// Validate implements Scenario.
func (s *Reconnect) Validate() error {
	if s.Conns < 1 || s.Hold < 0 || s.Jitter < 0 || s.Concurrency < 0 {
		return errors.New("reconnect: --conns must be at least 1; --hold, --jitter and --reconnect-concurrency not negative")
	}
	return nil
}

// Run implements Scenario.
func (s *Reconnect) Run(ctx context.Context, env *Env, r *Report) error {
	N := s.Conns
	if uint64(N)+100 > env.fileLimit {
		return fmt.Errorf("reconnect: %d connections need more than this process's open-file limit %d", N, env.fileLimit)
	}
	hold := s.Hold
	if hold == 0 {
		hold = 2 * time.Second
	}
	st := newDialStats()
	var back, down, failed atomic.Int64
	meter := Meter{ConnsTarget: int64(N),
		Conns:  func() int64 { return st.up.Load() - down.Load() + back.Load() },
		Errors: func() int64 { return st.fails.total() + failed.Load() }}
	stopMeter := meter.Start(ctx, env, r)
	defer stopMeter()

	env.log.Info("reconnect: connecting", "conns", N)
	user := func(i int) string { return env.User("rc", i) }
	// Until the storm each connection is read (pings answered, frames
	// dropped) by a goroutine that ends when its socket goes.
	var holders sync.WaitGroup
	conns := env.openConns(ctx, 0, N, user, nil, st, func(_ int, c *Conn) {
		holders.Add(1)
		go func() {
			defer holders.Done()
			for {
				if _, err := c.Next(); err != nil {
					return
				}
			}
		}()
	})
	defer holders.Wait()
	up := st.up.Load()
	r.Add("connections up before the storm", float64(up), "")
	if up < int64(N) {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		r.addErrors(st.fails.snapshot())
		return fmt.Errorf("reconnect: %d of %d connections failed before the storm", int64(N)-up, N)
	}
	if !sleepCtx(ctx, hold) {
		closeAll(conns)
		return nil
	}

	// The storm: every client drops at once, then reconnects.
	env.log.Info("reconnect: storm", "conns", N, "jitter", s.Jitter, "graceful", s.Graceful)
	before := env.Server(ctx)
	cpu := env.StartCPU(ctx)
	t0 := time.Now()
	for _, c := range conns {
		if s.Graceful {
			c.Close()
		} else {
			c.Drop()
		}
	}
	down.Store(int64(N))
	dropped := time.Since(t0)

	toSynced, upgradeH, syncH := newHistShards(8), newHistogram(), newHistogram()
	var fails counts
	var retries atomic.Int64
	var lastBack atomic.Int64
	bound := 6 * env.cfg.DialTimeout
	stormCtx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var sem chan struct{}
	if s.Concurrency > 0 {
		sem = make(chan struct{}, s.Concurrency)
	}
	fresh := make([]*Conn, N)
	var wg sync.WaitGroup
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(s.Seed, uint64(i)))
			if s.Jitter > 0 && !sleepCtx(stormCtx, time.Duration(rng.Int64N(int64(s.Jitter)))) {
				return
			}
			backoff := 100 * time.Millisecond
			for attempt := 0; ; attempt++ {
				if attempt > 0 {
					retries.Add(1)
					if !sleepCtx(stormCtx, time.Duration(rng.Int64N(int64(backoff)))) {
						failed.Add(1)
						return
					}
					backoff = min(2*backoff, 2*time.Second)
				}
				if sem != nil {
					select {
					case sem <- struct{}{}:
					case <-stormCtx.Done():
						failed.Add(1)
						return
					}
				}
				c, t, err := env.Dial(stormCtx, user(i))
				var rtt time.Duration
				if err == nil {
					if rtt, err = c.syncOnce(env.cfg.DialTimeout); err != nil {
						c.Close()
					}
				}
				if sem != nil {
					<-sem
				}
				if err != nil {
					fails.addErr(err)
					if stormCtx.Err() != nil {
						failed.Add(1)
						return
					}
					continue
				}
				took := time.Since(t0)
				toSynced.record(i, int64(took))
				upgradeH.record(int64(t.Upgrade))
				syncH.record(int64(rtt))
				fresh[i] = c
				back.Add(1)
				for {
					old := lastBack.Load()
					if int64(took) <= old || lastBack.CompareAndSwap(old, int64(took)) {
						break
					}
				}
				return
			}
		}()
	}
	wg.Wait()
	allBack := time.Duration(lastBack.Load())
	r.CPU = cpu.Stop(ctx)
	after := env.Server(ctx)
	// A second of the timeline with everyone back, then close.
	sleepCtx(ctx, time.Second)
	stopMeter()
	closeAll(fresh)

	n := back.Load()
	r.Add("clients", float64(N), "")
	r.Add("back and synced", float64(n), "")
	r.Add("not back within the bound", float64(int64(N)-n), "")
	r.Add("time to drop all", dropped.Seconds(), "s")
	if n == int64(N) {
		r.Add("time until all back and synced", allBack.Seconds(), "s")
		r.Add("reconnect rate", float64(n)/allBack.Seconds(), "conn/s")
	}
	r.Add("retries", float64(retries.Load()), "")
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	if before.RSSBytes >= 0 && after.RSSBytes >= 0 {
		r.Add("server RSS before the storm", mib(before.RSSBytes), "MiB")
		r.Add("server RSS after", mib(after.RSSBytes), "MiB")
	}
	r.Latencies = append(r.Latencies, toSynced.merged().latency("drop→synced"),
		upgradeH.latency("connect+upgrade"), syncH.latency("sync round trip"))
	r.addErrors(st.fails.snapshot())
	r.addErrors(fails.snapshot())
	r.Note("drop→synced runs from the moment every client dropped its connection to that client's \"synced\"; it includes jitter, retries and backoff")
	if !s.Graceful {
		r.Note("clients dropped their sockets without a close frame, as on a network loss or a gateway restart")
	}
	if n < int64(N) {
		return fmt.Errorf("reconnect: %d of %d clients were not back within %v", int64(N)-n, N, bound)
	}
	return nil
}

// sleepCtx sleeps d, or less if ctx ends first; it reports whether it
// slept the whole d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func closeAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
