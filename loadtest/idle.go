package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Idle opens Conns authenticated connections, each syncs once, then holds
// them open and idle for Hold (answering the server's pings), to measure
// what an idle connection costs the server: resident memory and kernel
// socket memory per connection.
//
// One process holds at most ConnsPerProcess connections (each is an open
// file); beyond that Idle starts worker processes (Config.WorkerCommand)
// and splits the connections between them.
type Idle struct {
	Conns int
	Hold  time.Duration
	// ConnsPerProcess caps the connections of one generator process.
	// Default: the open-file hard limit minus 1,000.
	ConnsPerProcess int
}

var _ Scenario = (*Idle)(nil)

// Name implements Scenario.
func (s *Idle) Name() string { return "idle" }

// Params implements Scenario.
func (s *Idle) Params() map[string]any {
	return map[string]any{"conns": s.Conns, "hold": s.Hold.String(), "conns_per_process": s.ConnsPerProcess}
}

// Validate implements Scenario.
func (s *Idle) Validate() error {
	if s.Conns < 1 || s.Hold < 0 || s.ConnsPerProcess < 0 {
		return errors.New("idle: --conns must be at least 1; --hold and --conns-per-process not negative")
	}
	return nil
}

// idleResult is what a set of idle connections reports once open ("ready")
// and once closed ("done"); a worker also sends "progress" every second.
// It is the worker protocol's message.
type idleResult struct {
	Event          string                 `json:"event"`
	Up             int64                  `json:"up"`
	Failures       map[string]int64       `json:"failures,omitempty"`
	Upgrade        *hdrhistogram.Snapshot `json:"upgrade,omitempty"`
	UpgradeClamped int64                  `json:"upgrade_clamped,omitempty"`
	Sync           *hdrhistogram.Snapshot `json:"sync,omitempty"`
	SyncClamped    int64                  `json:"sync_clamped,omitempty"`
	CPUUser        float64                `json:"cpu_user,omitempty"`
	CPUSys         float64                `json:"cpu_sys,omitempty"`
	Dropped        int64                  `json:"dropped,omitempty"`
	Drops          map[string]int64       `json:"drops,omitempty"`
	// Failed counts failed opens and drops so far ("progress" lines).
	Failed int64 `json:"failed,omitempty"`
}

// idleSpec is the first line a worker reads on stdin.
type idleSpec struct {
	Config   Config `json:"config"`
	RunID    string `json:"run_id"`
	From, To int
}

// Run implements Scenario.
func (s *Idle) Run(ctx context.Context, env *Env, r *Report) error {
	perProc := s.ConnsPerProcess
	if perProc == 0 {
		perProc = max(100, int(env.fileLimit)-1000)
	}
	procs := (s.Conns + perProc - 1) / perProc
	if procs == 1 && uint64(s.Conns)+100 > env.fileLimit {
		return fmt.Errorf("idle: %d connections need more than this process's open-file limit %d; lower --conns-per-process", s.Conns, env.fileLimit)
	}
	if procs > 1 && len(env.cfg.WorkerCommand) == 0 {
		return errors.New("idle: more connections than one process holds, and no worker command to start more")
	}
	r.Environment.Processes = procs
	r.Params["processes"] = procs

	before := env.Server(ctx)
	sockBefore, sockErr := readSockstat()
	slabBefore, slabErr := readSlab()
	cpu := env.StartCPU(ctx)
	start := time.Now()
	env.log.Info("idle: connecting", "conns", s.Conns, "processes", procs)

	var set idleSet
	var err error
	meter := Meter{ConnsTarget: int64(s.Conns)}
	if procs == 1 {
		sh := newIdleShard()
		meter.Conns, meter.Errors = sh.conns, sh.failures
		meter.ErrorKinds = func() map[string]int64 { return mergedCounts(sh.st.fails.snapshot(), sh.drops.snapshot()) }
		stopMeter := meter.Start(ctx, env, r)
		defer stopMeter()
		sh.open(ctx, env, 0, s.Conns)
		set = sh
	} else {
		var ws *idleWorkers
		if ws, err = startIdleWorkers(ctx, env, s.Conns, procs); err == nil {
			set = ws
			meter.Conns, meter.Errors, meter.WorkerCPU = ws.conns, ws.failures, ws.cpu
			stopMeter := meter.Start(ctx, env, r)
			defer stopMeter()
		}
	}
	var ready idleResult
	if err == nil {
		ready, err = set.ready(ctx)
	}
	connectTime := time.Since(start)
	cpu.AddGenerator(ready.CPUUser, ready.CPUSys)
	r.CPU = cpu.Stop(ctx)
	after := env.Server(ctx)
	sockAfter, _ := readSockstat()
	conntrack, conntrackErr := readConntrack()
	slabAfter, slabAfterErr := readSlab()

	if err == nil && ready.Up > 0 && ctx.Err() == nil {
		env.log.Info("idle: holding", "up", ready.Up, "hold", s.Hold)
		t := time.NewTimer(s.Hold)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	end := env.Server(ctx)
	sockEnd, _ := readSockstat()
	var done idleResult
	if set != nil {
		done = set.stop()
	}

	up := float64(ready.Up)
	r.Add("connections requested", float64(s.Conns), "")
	r.Add("connections up", up, "")
	r.Add("connections failed", float64(s.Conns)-up, "")
	r.Add("time to connect all", connectTime.Seconds(), "s")
	r.Add("connect rate", up/connectTime.Seconds(), "conn/s")
	r.Add("dropped during hold", float64(done.Dropped), "")
	r.Add("up at end of hold", up-float64(done.Dropped), "")
	if before.Connections >= 0 && after.Connections >= 0 {
		r.Add("server connections before", before.Connections, "")
		r.Add("server connections after connect", after.Connections, "")
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	if before.RSSBytes >= 0 && after.RSSBytes >= 0 {
		r.Add("server RSS before", mib(before.RSSBytes), "MiB")
		r.Add("server RSS after connect", mib(after.RSSBytes), "MiB")
		if end.RSSBytes >= 0 {
			r.Add("server RSS at end of hold", mib(end.RSSBytes), "MiB")
		}
		if up > 0 {
			r.Add("server RSS per connection", float64(after.RSSBytes-before.RSSBytes)/up/1024, "KiB")
		}
		r.Note("server RSS from %s", after.Source)
	} else {
		r.Note("server RSS unknown: give --server-pid or make /metrics reachable")
	}
	if sockErr == nil {
		pg := float64(sockBefore.PageBytes)
		r.Add("kernel TCP sockets before", float64(sockBefore.InUse), "")
		r.Add("kernel TCP sockets after connect", float64(sockAfter.InUse), "")
		r.Add("kernel TCP memory before", float64(sockBefore.MemPages), "pages")
		r.Add("kernel TCP memory after connect", float64(sockAfter.MemPages), "pages")
		r.Add("kernel TCP memory at end of hold", float64(sockEnd.MemPages), "pages")
		if up > 0 {
			r.Add("kernel TCP memory per connection", float64(sockAfter.MemPages-sockBefore.MemPages)*pg/up, "bytes")
		}
		r.Note("kernel TCP memory is /proc/net/sockstat's (%d-byte pages, whole network namespace, both ends of loopback connections): "+
			"socket buffers holding data only, so an idle connection with empty queues counts 0; socket structures (slab) are not in it", int64(pg))
	}
	if slabErr == nil && slabAfterErr == nil && up > 0 {
		// On loopback both ends of every connection are on this box.
		r.Add("kernel slab memory per connection (both ends)", float64(slabAfter-slabBefore)/up/1024, "KiB")
		r.Note("kernel slab memory is /proc/meminfo's Slab before and after connecting: socket, inode, dentry, file and epoll structures of both ends " +
			"(the generator's and the server's), and whatever else the kernel allocated meanwhile; per server socket it is about half")
	}
	if conntrackErr == nil {
		r.Add("conntrack entries after connect", float64(conntrack.count), "")
		r.Add("conntrack limit (nf_conntrack_max)", float64(conntrack.max), "")
		if conntrack.count >= conntrack.max*9/10 {
			r.Note("conntrack is nearly full (%d of %d): past it the kernel drops new connections; raise net.netfilter.nf_conntrack_max (switchboard tune)", conntrack.count, conntrack.max)
		}
	}
	up64 := newHistogram()
	up64.mergeSnapshot(ready.Upgrade, ready.UpgradeClamped)
	syncH := newHistogram()
	syncH.mergeSnapshot(ready.Sync, ready.SyncClamped)
	r.Latencies = append(r.Latencies, up64.latency("connect+upgrade"), syncH.latency("first sync"))
	r.addErrors(ready.Failures)
	r.addErrors(done.Drops)
	return err
}

// idleSet is a set of idle connections, in this process or in workers.
type idleSet interface {
	// ready waits until every connection is open or failed.
	ready(ctx context.Context) (idleResult, error)
	// stop closes the connections and reports drops during the hold.
	stop() idleResult
}

// idleShard holds idle connections in this process: one goroutine per
// connection, blocked in a read, answering pings.
type idleShard struct {
	st       *dialStats
	held     []*Conn
	drops    counts
	dropped  atomic.Int64
	stopping atomic.Bool
	wg       sync.WaitGroup
}

func newIdleShard() *idleShard { return &idleShard{st: newDialStats()} }

// open opens connections [from, to) and holds them; it returns once each
// is up or failed.
func (sh *idleShard) open(ctx context.Context, env *Env, from, to int) {
	sh.held = env.openConns(ctx, from, to, func(i int) string { return env.User("idle", i) }, nil, sh.st, func(_ int, c *Conn) {
		sh.wg.Add(1)
		go sh.hold(c) // at once: it answers the server's pings
	})
}

// conns is how many connections are up now. Safe for concurrent use.
func (sh *idleShard) conns() int64 { return sh.st.up.Load() - sh.dropped.Load() }

// failures counts failed opens and drops. Safe for concurrent use.
func (sh *idleShard) failures() int64 { return sh.st.fails.total() + sh.dropped.Load() }

func (sh *idleShard) hold(c *Conn) {
	defer sh.wg.Done()
	for {
		if _, err := c.Next(); err != nil {
			if !sh.stopping.Load() {
				sh.dropped.Add(1)
				sh.drops.addErr(stageErr("hold", err))
			}
			return
		}
	}
}

func (sh *idleShard) ready(context.Context) (idleResult, error) {
	res := idleResult{Event: "ready", Up: sh.st.up.Load(), Failures: sh.st.fails.snapshot()}
	res.Upgrade, res.UpgradeClamped = sh.st.upgrade.export()
	res.Sync, res.SyncClamped = sh.st.sync.export()
	return res, nil
}

func (sh *idleShard) stop() idleResult {
	sh.stopping.Store(true)
	for _, c := range sh.held {
		if c != nil {
			c.Close()
		}
	}
	sh.wg.Wait()
	return idleResult{Event: "done", Dropped: sh.dropped.Load(), Drops: sh.drops.snapshot()}
}

// RunIdleWorker is an idle worker process's main: it reads an idle spec
// (one JSON line) from in, opens its share of the connections, writes a
// "ready" line to out, holds them until in reaches EOF or ctx is canceled,
// then closes them and writes a "done" line.
func RunIdleWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	var spec idleSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("idle worker: read spec: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, io.MultiReader(dec.Buffered(), in))
		cancel()
	}()
	env, err := workerEnv(spec.Config, spec.RunID)
	if err != nil {
		return err
	}
	env.dialer.next.Store(uint64(spec.From))
	sh := newIdleShard()
	var mu sync.Mutex // one line at a time
	enc := json.NewEncoder(out)
	send := func(m idleResult) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(m)
	}
	// Progress for the parent's meter, every second until the end.
	progress := make(chan struct{})
	defer close(progress)
	go every(progress, meterEvery, func() {
		c := ownCPU()
		send(idleResult{Event: "progress", Up: sh.conns(), Failed: sh.failures(), CPUUser: c.User, CPUSys: c.Sys})
	})
	sh.open(ctx, env, spec.From, spec.To)
	res, _ := sh.ready(ctx)
	c := selfCPU()
	res.CPUUser, res.CPUSys = c.User, c.Sys
	if err := send(res); err != nil {
		sh.stop()
		return err
	}
	<-ctx.Done()
	return send(sh.stop())
}

// workerEnv is a worker process's Env: its controller's config, logging
// warnings and worse to stderr (which the controller passes on).
func workerEnv(cfg Config, runID string) (*Env, error) {
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.setDefaults()
	return newEnv(cfg, runID)
}

// idleWorkers are idle worker processes started by this one.
type idleWorkers struct {
	log     *slog.Logger
	workers []*idleWorker
}

type idleWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	msgs  chan idleResult // closed when the worker's stdout ends
	// up, failed and cpu (µs) are from the worker's last progress line.
	up, failed, cpu atomic.Int64
}

// cpu sums the workers' CPU seconds. Safe for concurrent use.
func (ws *idleWorkers) cpu() float64 {
	var us int64
	for _, w := range ws.workers {
		us += w.cpu.Load()
	}
	return float64(us) / 1e6
}

// conns sums the workers' connections up. Safe for concurrent use.
func (ws *idleWorkers) conns() int64 {
	var n int64
	for _, w := range ws.workers {
		n += w.up.Load()
	}
	return n
}

// failures sums the workers' failed opens and drops. Safe for concurrent
// use.
func (ws *idleWorkers) failures() int64 {
	var n int64
	for _, w := range ws.workers {
		n += w.failed.Load()
	}
	return n
}

func startIdleWorkers(ctx context.Context, env *Env, conns, procs int) (*idleWorkers, error) {
	ws := &idleWorkers{log: env.log}
	argv := env.cfg.WorkerCommand
	for p := range procs {
		from, to := conns*p/procs, conns*(p+1)/procs
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			ws.stop()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			ws.stop()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			ws.stop()
			return nil, fmt.Errorf("idle: start worker: %w", err)
		}
		w := &idleWorker{cmd: cmd, stdin: stdin, msgs: make(chan idleResult, 2)}
		ws.workers = append(ws.workers, w)
		go func() {
			defer close(w.msgs)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				var m idleResult
				if json.Unmarshal(sc.Bytes(), &m) != nil {
					continue
				}
				if m.Event == "progress" {
					w.up.Store(m.Up)
					w.failed.Store(m.Failed)
					w.cpu.Store(int64((m.CPUUser + m.CPUSys) * 1e6))
					continue
				}
				w.msgs <- m
			}
		}()
		spec := idleSpec{Config: env.cfg, RunID: env.runID, From: from, To: to}
		if err := json.NewEncoder(stdin).Encode(spec); err != nil {
			ws.stop()
			return nil, fmt.Errorf("idle: start worker: %w", err)
		}
	}
	return ws, nil
}

// merge adds m to acc.
func (acc *idleResult) merge(m idleResult, upgrade, syncH *histogram) {
	acc.Up += m.Up
	acc.CPUUser += m.CPUUser
	acc.CPUSys += m.CPUSys
	acc.Dropped += m.Dropped
	for k, v := range m.Failures {
		if acc.Failures == nil {
			acc.Failures = map[string]int64{}
		}
		acc.Failures[k] += v
	}
	for k, v := range m.Drops {
		if acc.Drops == nil {
			acc.Drops = map[string]int64{}
		}
		acc.Drops[k] += v
	}
	upgrade.mergeSnapshot(m.Upgrade, m.UpgradeClamped)
	syncH.mergeSnapshot(m.Sync, m.SyncClamped)
}

func (ws *idleWorkers) ready(ctx context.Context) (idleResult, error) {
	acc := idleResult{Event: "ready"}
	upgrade, syncH := newHistogram(), newHistogram()
	var err error
	for i, w := range ws.workers {
		select {
		case m, ok := <-w.msgs:
			if !ok {
				err = errors.Join(err, fmt.Errorf("idle: worker %d exited before its connections were up", i))
				continue
			}
			acc.merge(m, upgrade, syncH)
		case <-ctx.Done():
			// Workers stop on the same signal or when stop closes stdin.
			return acc, nil
		}
	}
	acc.Upgrade, acc.UpgradeClamped = upgrade.export()
	acc.Sync, acc.SyncClamped = syncH.export()
	return acc, err
}

// stop closes the workers' stdin and collects their "done" lines; a worker
// not done within 30 s plus a second per 5,000 connections is killed.
func (ws *idleWorkers) stop() idleResult {
	acc := idleResult{Event: "done"}
	for _, w := range ws.workers {
		w.stdin.Close()
	}
	// Closing takes time: 27 workers closing 500,000 connections at once
	// on two cores took more than 30 s.
	deadline := time.Now().Add(30*time.Second + time.Duration(ws.conns())*time.Second/5000)
	for i, w := range ws.workers {
		timer := time.NewTimer(time.Until(deadline))
	collect:
		for {
			select {
			case m, ok := <-w.msgs:
				if !ok {
					break collect
				}
				if m.Event == "done" {
					acc.merge(m, newHistogram(), newHistogram())
				}
			case <-timer.C:
				ws.log.Warn("idle: worker did not stop; killing it", "worker", i, "pid", w.cmd.Process.Pid)
				w.cmd.Process.Kill()
				break collect
			}
		}
		timer.Stop()
		if err := w.cmd.Wait(); err != nil {
			ws.log.Warn("idle: worker exited", "worker", i, "err", err)
		}
	}
	return acc
}
