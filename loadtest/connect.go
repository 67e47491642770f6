package loadtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Connect performs Conns authenticated WebSocket upgrades, Concurrency at
// a time, as fast as the server takes them: each connection is closed (with
// a close frame) as soon as it is upgraded. It measures upgrades per second
// and the latency of the TCP connect and of the whole upgrade.
type Connect struct {
	Conns int
	// Concurrency is the number of upgrades in flight. Default: Config.Concurrency.
	Concurrency int
}

var _ Scenario = (*Connect)(nil)

// Name implements Scenario.
func (s *Connect) Name() string { return "connect" }

// Params implements Scenario.
func (s *Connect) Params() map[string]any {
	return map[string]any{"conns": s.Conns, "concurrency": s.Concurrency}
}

// Validate implements Scenario.
func (s *Connect) Validate() error {
	if s.Conns < 1 || s.Concurrency < 0 {
		return errors.New("connect: --conns must be at least 1 and --concurrency not negative")
	}
	return nil
}

// Run implements Scenario.
func (s *Connect) Run(ctx context.Context, env *Env, r *Report) error {
	conc := s.Concurrency
	if conc == 0 {
		conc = env.cfg.Concurrency
	}
	conc = min(conc, s.Conns)
	r.Params["concurrency"] = conc
	if uint64(conc)+100 > env.fileLimit {
		return errors.New("connect: --concurrency exceeds this process's open-file limit")
	}
	// Tokens are minted first, so that the timed part is the server's.
	tokens := make([]string, s.Conns)
	for i := range tokens {
		var err error
		if tokens[i], err = env.Token(env.User("c", i)); err != nil {
			return err
		}
	}
	tcp, upgrade := newHistogram(), newHistogram()
	var fails counts
	var ok, next atomic.Int64
	before := env.Server(ctx)
	env.log.Info("connect: upgrading", "conns", s.Conns, "concurrency", conc)

	cpu := env.StartCPU(ctx)
	start := time.Now()
	// The timeline's "conns" is upgrades done so far (each is closed at once).
	meter := Meter{ConnsTarget: int64(s.Conns), Conns: ok.Load, Errors: fails.total, ErrorKinds: fails.snapshot}
	stopMeter := meter.Start(ctx, env, r)
	defer stopMeter()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= s.Conns {
					return
				}
				c, t, err := env.DialToken(ctx, tokens[i])
				if err != nil {
					fails.addErr(err)
					continue
				}
				c.Close()
				tcp.record(int64(t.TCP))
				upgrade.record(int64(t.Upgrade))
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopMeter()
	r.CPU = cpu.Stop(ctx)
	after := env.Server(ctx)

	n := float64(ok.Load())
	r.Add("upgrades requested", float64(s.Conns), "")
	r.Add("upgrades succeeded", n, "")
	r.Add("upgrades failed", float64(fails.total()), "")
	r.Add("not attempted (interrupted)", float64(max(0, int64(s.Conns)-next.Load())), "")
	r.Add("elapsed", elapsed.Seconds(), "s")
	r.Add("upgrade rate", n/elapsed.Seconds(), "upgrades/s")
	if before.Connections >= 0 && after.Connections >= 0 {
		r.Add("server connections before", before.Connections, "")
		r.Add("server connections after", after.Connections, "")
	}
	r.Latencies = append(r.Latencies, tcp.latency("tcp connect"), upgrade.latency("connect+upgrade"))
	r.addErrors(fails.snapshot())
	r.Note("each connection is closed right after its upgrade; upgrade latency starts before the TCP connect and ends at the 101 response")
	return nil
}
