package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Chat runs Pairs sender→recipient pairs of connections. Each send carries
// its index in its id and at the start of its body, so an ack and a
// delivery are matched to the send's time without decoding JSON.
//
// Open loop (the default): sends follow a fixed schedule of Rate per
// second in total (evenly spaced, or Poisson), for Duration, spread round
// robin over the senders; latency is measured from each send's scheduled
// time, so a stalled server or generator is charged for every send it
// delayed (coordinated omission corrected, as wrk2 does).
//
// Max (closed loop): each sender keeps Window sends in flight (sent and not
// yet delivered) for Duration, to find the highest sustained delivery rate;
// latency is from the actual send.
//
// Writers goroutines each own a share of the senders and write their due
// frames in one write per connection; each connection has one reader.
// After the load, Chat waits up to Drain for outstanding acks and
// deliveries, then counts what is missing.
type Chat struct {
	Pairs    int
	Rate     float64
	Duration time.Duration
	// Size is the body size in bytes; at least 10 (the index).
	Size    int
	Poisson bool
	Max     bool
	// Window is the max mode's in-flight sends per sender. Default 16.
	Window int
	// Drain bounds the wait for outstanding acks and deliveries. Default 10s.
	Drain time.Duration
	// Writers is the number of writer goroutines. Default GOMAXPROCS, at least 2.
	Writers int
	// MaxSends bounds the sends of a run (each costs 16 bytes of
	// bookkeeping). Default 10,000,000.
	MaxSends int
	// Seed seeds the Poisson schedule and the sizes. Default 1.
	Seed uint64
	// SizeDist draws body sizes instead of the fixed Size:
	// "uniform:MIN-MAX" or "lognormal:MEDIAN,SIGMA" (bytes; clamped to
	// 10..65536). Each sender has sizeVariants frames drawn from it.
	SizeDist string
	// Receipts: recipients send a "read" receipt for every message as it
	// arrives, and senders measure send→receipt.
	Receipts bool
	// Processes is how many generator processes share the pairs (each
	// pair is two open files). Default 0: one when 2×Pairs+100 fits the
	// open-file limit, else ceil(2×Pairs / (limit−1000)). With more than
	// one, Run is a controller: it starts chat workers
	// (Config.ChatWorkerCommand, RunChatWorker), each with a share of the
	// pairs and of the rate, starts their load together and merges their
	// results exactly.
	Processes int

	// part is a worker's share of a run over several processes (nil: the
	// whole run).
	part *chatPart
}

// chatPart is a chat worker's share of a run split over processes.
type chatPart struct {
	Worker int `json:"worker"`
	// Offset is the first pair: the worker's users are r<Offset+i> and
	// s<Offset+i>.
	Offset int `json:"offset"`
	// Sends is the worker's share of the run's sends: the length of its
	// open-loop schedule, or its max-mode bound.
	Sends uint64 `json:"sends"`
	// Phase shifts an even schedule by this fraction of the worker's send
	// interval, so that the workers' sends interleave.
	Phase float64 `json:"phase"`
}

// sizeVariants is how many body sizes each sender draws from SizeDist.
const sizeVariants = 16

var _ Scenario = (*Chat)(nil)

// Name implements Scenario.
func (s *Chat) Name() string { return "chat" }

func (s *Chat) setDefaults() {
	if s.Window == 0 {
		s.Window = 16
	}
	if s.Drain == 0 {
		s.Drain = 10 * time.Second
	}
	if s.Writers == 0 {
		s.Writers = max(2, runtime.GOMAXPROCS(0))
	}
	if s.MaxSends == 0 {
		s.MaxSends = 10_000_000
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
}

// Params implements Scenario.
func (s *Chat) Params() map[string]any {
	s.setDefaults()
	p := map[string]any{"pairs": s.Pairs, "duration": s.Duration.String(), "size": s.Size,
		"drain": s.Drain.String(), "writers": s.Writers, "max_sends": s.MaxSends, "receipts": s.Receipts}
	if s.SizeDist != "" {
		p["size_dist"] = s.SizeDist
		delete(p, "size")
	}
	if s.Max {
		p["mode"] = "max (closed loop)"
		p["window"] = s.Window
	} else {
		p["mode"] = "open loop, constant"
		if s.Poisson {
			p["mode"] = "open loop, poisson"
			p["seed"] = s.Seed
		}
		p["rate"] = s.Rate
	}
	return p
}

// Validate implements Scenario.
func (s *Chat) Validate() error {
	s.setDefaults()
	var errs []error
	if s.Pairs < 1 {
		errs = append(errs, errors.New("chat: --pairs must be at least 1"))
	}
	if s.Duration <= 0 {
		errs = append(errs, errors.New("chat: --duration must be positive"))
	}
	if s.SizeDist != "" {
		if _, err := parseSizeDist(s.SizeDist); err != nil {
			errs = append(errs, err)
		}
	} else if s.Size < idDigits || s.Size > 1<<20 {
		errs = append(errs, fmt.Errorf("chat: --size must be %d to 1048576 bytes", idDigits))
	}
	if s.Window < 1 || s.Drain < 0 || s.Writers < 1 || s.MaxSends < 1 {
		errs = append(errs, errors.New("chat: --window and --writers must be at least 1, --drain not negative"))
	}
	if s.Processes < 0 || (s.Pairs >= 1 && s.Processes > s.Pairs) {
		errs = append(errs, errors.New("chat: --processes must be 0 (auto) to --pairs"))
	}
	if !s.Max {
		if s.Rate <= 0 {
			errs = append(errs, errors.New("chat: --rate must be positive (or use --max)"))
		} else if n := s.Rate * s.Duration.Seconds(); n > float64(s.MaxSends) {
			errs = append(errs, fmt.Errorf("chat: rate × duration is %.0f sends, more than --max-sends %d", n, s.MaxSends))
		}
	}
	return errors.Join(errs...)
}

// Send state bits.
const (
	stSent uint32 = 1 << iota
	stAcked
	stDelivered
	stFailed
)

// sender is one sending connection and its pre-encoded send frames (one,
// or one per drawn size).
type sender struct {
	idx    int
	c      *Conn
	frames []sendFrame
	mask   [4]byte
	dead   atomic.Bool

	// Owned by the sender's writer goroutine.
	wbuf []byte
	pend []uint64

	// Owned by the sender's reader goroutine (receipts): msg id → index.
	ids map[string]uint64
}

// sendFrame is a complete masked send frame; only the indexes change.
type sendFrame struct {
	b     []byte
	idOff int // offset in b of the id's digits
	bdOff int // offset in b of the body's digits
	hdr   int // frame header length (payload offset)
	body  int // body bytes
}

// appendSend appends the send frame of index k: the frame of one of its
// sizes, picked by a hash of k.
func (s *sender) appendSend(dst []byte, k uint64) []byte {
	f := &s.frames[0]
	if len(s.frames) > 1 {
		f = &s.frames[(k*0x9e3779b97f4a7c15)>>59%uint64(len(s.frames))]
	}
	n := len(dst)
	dst = append(dst, f.b...)
	b := dst[n:]
	putIndex(b, f.idOff, f.idOff-f.hdr, k, s.mask)
	putIndex(b, f.bdOff, f.bdOff-f.hdr, k, s.mask)
	return dst
}

// newSender encodes a sender's frames for bodies of the given sizes.
func newSender(idx int, c *Conn, to string, sizes []int) *sender {
	s := &sender{idx: idx, c: c, mask: ws.NewMask()}
	zeros := strings.Repeat("0", idDigits)
	for _, size := range sizes {
		body := zeros
		if size > idDigits {
			body += " " + strings.Repeat("x", size-idDigits-1)
		}
		payload := []byte(`{"type":"send","id":"` + zeros + `","to":"` + to + `","body":"` + body + `"}`)
		idPay := strings.Index(string(payload), `"id":"`) + len(`"id":"`)
		bdPay := strings.Index(string(payload), `"body":"`) + len(`"body":"`)
		f := sendFrame{b: ws.MustCompileFrame(ws.MaskFrameWith(ws.NewTextFrame(payload), s.mask)), body: len(body)}
		f.hdr = len(f.b) - len(payload)
		f.idOff, f.bdOff = f.hdr+idPay, f.hdr+bdPay
		s.frames = append(s.frames, f)
	}
	return s
}

// sizeDist is a distribution of body sizes.
type sizeDist func(rng *rand.Rand) int

// parseSizeDist parses "uniform:MIN-MAX" or "lognormal:MEDIAN,SIGMA".
func parseSizeDist(s string) (sizeDist, error) {
	clamp := func(n float64) int { return int(min(max(n, idDigits), 65536)) }
	kind, args, _ := strings.Cut(s, ":")
	switch kind {
	case "uniform":
		var lo, hi int
		if _, err := fmt.Sscanf(args, "%d-%d", &lo, &hi); err != nil || lo < idDigits || hi < lo || hi > 65536 {
			return nil, fmt.Errorf("chat: --size-dist %q: want uniform:MIN-MAX with %d <= MIN <= MAX <= 65536", s, idDigits)
		}
		return func(rng *rand.Rand) int { return lo + rng.IntN(hi-lo+1) }, nil
	case "lognormal":
		var median, sigma float64
		if _, err := fmt.Sscanf(args, "%g,%g", &median, &sigma); err != nil || median < idDigits || sigma < 0 || sigma > 4 {
			return nil, fmt.Errorf("chat: --size-dist %q: want lognormal:MEDIAN,SIGMA with MEDIAN >= %d and 0 <= SIGMA <= 4", s, idDigits)
		}
		mu := math.Log(median)
		return func(rng *rand.Rand) int { return clamp(math.Exp(mu + sigma*rng.NormFloat64())) }, nil
	}
	return nil, fmt.Errorf("chat: --size-dist %q: want uniform:MIN-MAX or lognormal:MEDIAN,SIGMA", s)
}

// senderSizes returns the body sizes of sender i's frames.
func (s *Chat) senderSizes(i int) []int {
	if s.SizeDist == "" {
		return []int{s.Size}
	}
	dist, _ := parseSizeDist(s.SizeDist) // checked by Validate
	rng := rand.New(rand.NewPCG(s.Seed, uint64(i)+1))
	sizes := make([]int, sizeVariants)
	for v := range sizes {
		sizes[v] = dist(rng)
	}
	return sizes
}

// chatRun is the state of one run (of one process). Indexes k are sends;
// at[k] is the scheduled (open loop) or actual (max) send time in
// nanoseconds from base.
type chatRun struct {
	s       *Chat
	ctx     context.Context
	base    atomic.Pointer[time.Time] // the load's start; nil until then
	n       uint64                    // capacity: the sends this run may make
	conns   []*Conn                   // recipients [0, P), senders [P, 2P)
	senders []*sender
	recips  []*Conn
	writers int

	at    []atomic.Int64
	state []atomic.Uint32
	owner []atomic.Int32 // max mode: the sender of k (open loop: k mod Pairs)

	nextK     atomic.Uint64 // max mode: the next index to use
	exhausted atomic.Bool   // max mode: MaxSends reached
	credits   []atomic.Int32
	wake      []chan struct{}

	attempted, skipped                       atomic.Int64
	sent, acked, delivered, failed           atomic.Int64
	open, unacked                            atomic.Int64
	dupAcks, dupDeliveries, misrouted, stray atomic.Int64
	copies                                   atomic.Int64 // senders' copies of their own messages
	receipted, earlyReceipts                 atomic.Int64 // read receipts back at the senders; ones before their ack
	perSec                                   []atomic.Int64

	ackH, recvH, lagH, rcptH histShards
	// meter's E2E and Ack windows get every latency; in a worker nobody
	// starts the meter and the progress lines empty the windows.
	meter    Meter
	errs     counts
	stopping atomic.Bool
	readers  sync.WaitGroup
}

// Run implements Scenario.
func (s *Chat) Run(ctx context.Context, env *Env, r *Report) error {
	procs, err := s.processes(env)
	if err != nil {
		return err
	}
	r.Environment.Processes = procs
	r.Params["processes"] = procs
	if procs > 1 {
		return s.runProcesses(ctx, env, r, procs)
	}
	P := s.Pairs
	cr := newChatRun(ctx, s)
	env.log.Info("chat: connecting", "conns", 2*P)
	st := newDialStats()
	cr.meter = Meter{ConnsTarget: int64(2 * P), Conns: st.up.Load, Sent: cr.sent.Load, Acked: cr.acked.Load, Received: cr.delivered.Load,
		Errors:     func() int64 { return cr.errs.total() + st.fails.total() },
		ErrorKinds: func() map[string]int64 { return mergedCounts(cr.errs.snapshot(), st.fails.snapshot()) },
		E2E:        NewWindow(), Ack: NewWindow()}
	stopMeter := cr.meter.Start(ctx, env, r)
	defer stopMeter()
	setupStart := time.Now()
	ok := cr.connect(env, st)
	r.Add("connections", float64(2*P), "")
	r.Add("connections up", float64(st.up.Load()), "")
	r.Add("setup time", time.Since(setupStart).Seconds(), "s")
	r.addErrors(st.fails.snapshot())
	if !ok {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("chat: %d of %d connections failed", int64(2*P)-st.up.Load(), 2*P)
	}
	cr.prepare()

	cpu := env.StartCPU(ctx)
	env.log.Info("chat: load", "mode", r.Params["mode"], "pairs", P, "duration", s.Duration)
	ld := cr.load(time.Now())
	r.CPU = cpu.Stop(ctx)
	stopMeter()
	cr.close()
	t := cr.totals(ld)
	t.report(r, s)
	return nil
}

// processes returns how many generator processes run s (see
// Chat.Processes).
func (s *Chat) processes(env *Env) (int, error) {
	P, limit := s.Pairs, env.fileLimit
	fits := func(pairs int) bool { return uint64(2*pairs)+100 <= limit }
	procs := s.Processes
	if procs == 0 {
		procs = 1
		if !fits(P) {
			per := max(int(limit)-1000, 100)
			procs = min((2*P+per-1)/per, P)
		}
	}
	if largest := (P + procs - 1) / procs; !fits(largest) {
		return 0, fmt.Errorf("chat: %d pairs over %d process(es) need %d connections in one, over the open-file limit %d; raise --processes (0: as many as needed)",
			P, procs, 2*largest, limit)
	}
	if procs > 1 && len(env.cfg.ChatWorkerCommand) == 0 {
		return 0, fmt.Errorf("chat: %d processes, and no worker command to start them", procs)
	}
	return procs, nil
}

func newChatRun(ctx context.Context, s *Chat) *chatRun {
	cr := &chatRun{s: s, ctx: ctx}
	switch {
	case s.part != nil:
		cr.n = s.part.Sends
	case s.Max:
		cr.n = uint64(s.MaxSends)
	default:
		cr.n = uint64(math.Ceil(s.Rate * s.Duration.Seconds()))
	}
	return cr
}

// offset is the run's first pair.
func (s *Chat) offset() int {
	if s.part == nil {
		return 0
	}
	return s.part.Offset
}

// connect opens recipients [0, P) and senders [P, 2P); each syncs once.
// Pair i's sender goes to gateway i and its recipient to gateway i+1 (mod
// their count, i counted over the whole run): over several gateways every
// message crosses from one to another. If any fails, it closes the others
// and returns false.
func (cr *chatRun) connect(env *Env, st *dialStats) bool {
	P, off := cr.s.Pairs, cr.s.offset()
	conns := env.openConns(cr.ctx, 0, 2*P, func(i int) string {
		if i < P {
			return env.User("r", off+i)
		}
		return env.User("s", off+i-P)
	}, func(i int) int {
		if i < P {
			return off + i + 1
		}
		return off + i - P
	}, st, nil)
	if st.up.Load() < int64(2*P) {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return false
	}
	cr.conns, cr.recips = conns, conns[:P]
	for i := range P {
		sd := newSender(i, conns[P+i], env.User("r", off+i), cr.s.senderSizes(off+i))
		if cr.s.Receipts {
			sd.ids = make(map[string]uint64)
		}
		cr.senders = append(cr.senders, sd)
	}
	return true
}

// prepare allocates the run's bookkeeping, computes the open loop's
// schedule and starts the connections' readers.
func (cr *chatRun) prepare() {
	s, P := cr.s, cr.s.Pairs
	G := min(s.Writers, P)
	cr.writers = G
	cr.at = make([]atomic.Int64, cr.n)
	cr.state = make([]atomic.Uint32, cr.n)
	cr.ackH, cr.recvH, cr.lagH, cr.rcptH = newHistShards(G), newHistShards(G), newHistShards(G), newHistShards(G)
	cr.perSec = make([]atomic.Int64, int((s.Duration+s.Drain)/time.Second)+2)
	if s.Max {
		cr.owner = make([]atomic.Int32, cr.n)
		cr.credits = make([]atomic.Int32, P)
		cr.wake = make([]chan struct{}, G)
		for g := range G {
			cr.wake[g] = make(chan struct{}, 1)
			cr.wake[g] <- struct{}{}
		}
		for i := range cr.credits {
			cr.credits[i].Store(int32(s.Window))
		}
	} else {
		cr.schedule()
	}
	for _, sd := range cr.senders {
		cr.readers.Add(1)
		go cr.readSender(sd)
	}
	for j, c := range cr.recips {
		cr.readers.Add(1)
		go cr.readRecipient(j, c)
	}
}

// since returns nanoseconds from the load's start (0 before it).
func (cr *chatRun) since() int64 {
	b := cr.base.Load()
	if b == nil {
		return 0
	}
	return since(*b)
}

// chatLoad is how a run's load and drain went.
type chatLoad struct {
	loadEnd, drained time.Duration
	deliveredInLoad  int64
}

// load waits until base, applies the load, then waits up to Drain for
// outstanding acks, deliveries and receipts.
func (cr *chatRun) load(base time.Time) chatLoad {
	s, ctx := cr.s, cr.ctx
	cr.base.Store(&base)
	if !sleepCtx(ctx, time.Until(base)) {
		return chatLoad{}
	}
	writeBy := base.Add(s.Duration + s.Drain + 30*time.Second)
	for _, sd := range cr.senders {
		sd.c.SetWriteDeadline(writeBy)
	}
	unblock := context.AfterFunc(ctx, func() {
		for _, sd := range cr.senders {
			sd.c.SetWriteDeadline(aLongTimeAgo)
		}
	})
	defer unblock()

	G, P := cr.writers, s.Pairs
	var writers sync.WaitGroup
	for g := range G {
		var mine []*sender
		for i := g; i < P; i += G {
			mine = append(mine, cr.senders[i])
		}
		writers.Add(1)
		go func() {
			defer writers.Done()
			if s.Max {
				cr.closedLoopWriter(g, mine)
			} else {
				cr.openLoopWriter(g, mine)
			}
		}()
	}
	writers.Wait()
	ld := chatLoad{loadEnd: time.Duration(cr.since()), deliveredInLoad: cr.delivered.Load()}

	// Drain: wait for outstanding acks and deliveries, read receipts, and
	// the senders' own copies (the server sends every message to its
	// sender's devices too; once one arrives, all are waited for).
	copiesDue := func() bool { c := cr.copies.Load(); return c > 0 && c < cr.sent.Load()-cr.failed.Load() }
	drainStart := time.Now()
	if ctx.Err() == nil {
		deadline := time.NewTimer(s.Drain)
		tick := time.NewTicker(5 * time.Millisecond)
	drain:
		for cr.open.Load() > 0 || cr.unacked.Load() > 0 || copiesDue() ||
			(s.Receipts && cr.receipted.Load()+cr.earlyReceipts.Load() < cr.delivered.Load()) {
			select {
			case <-tick.C:
			case <-deadline.C:
				break drain
			case <-ctx.Done():
				break drain
			}
		}
		deadline.Stop()
		tick.Stop()
	}
	ld.drained = time.Since(drainStart)
	return ld
}

// close closes the connections and waits for their readers.
func (cr *chatRun) close() {
	cr.stopping.Store(true)
	for _, c := range cr.conns {
		c.Close()
	}
	cr.readers.Wait()
}

// schedule fills at[] with the open loop's send times.
func (cr *chatRun) schedule() {
	s := cr.s
	var phase float64
	var worker uint64
	if s.part != nil {
		phase, worker = s.part.Phase, uint64(s.part.Worker)
	}
	if !s.Poisson {
		for k := range cr.n {
			cr.at[k].Store(int64((float64(k) + phase) * 1e9 / s.Rate))
		}
		return
	}
	// Each worker draws its own arrivals: independent Poisson streams add
	// up to one of the total rate.
	rng := rand.New(rand.NewPCG(s.Seed, (s.Seed^0x9e3779b97f4a7c15)+worker))
	t := 0.0
	for k := range cr.n {
		cr.at[k].Store(int64(t))
		t += rng.ExpFloat64() * 1e9 / s.Rate
	}
}

// openLoopWriter sends the scheduled sends of its senders. Send k belongs
// to sender k mod Pairs, so the writer walks rounds of Pairs indexes.
func (cr *chatRun) openLoopWriter(g int, mine []*sender) {
	if len(mine) == 0 {
		return
	}
	P := uint64(len(cr.senders))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var dirty []*sender
	round, pos := uint64(0), 0
	for cr.ctx.Err() == nil {
		k := round*P + uint64(mine[pos].idx)
		if k >= cr.n {
			return
		}
		now := cr.since()
		if due := cr.at[k].Load(); due > now {
			timer.Reset(time.Duration(due - now))
			select {
			case <-timer.C:
			case <-cr.ctx.Done():
				return
			}
			now = cr.since()
		}
		// Everything due now, in one write per connection.
		for batch := 0; batch < 4096; batch++ {
			k := round*P + uint64(mine[pos].idx)
			if k >= cr.n {
				break
			}
			due := cr.at[k].Load()
			if due > now {
				break
			}
			sd := mine[pos]
			cr.attempted.Add(1)
			cr.lagH.record(g, now-due)
			if sd.dead.Load() {
				cr.skipped.Add(1)
			} else {
				if len(sd.pend) == 0 {
					dirty = append(dirty, sd)
				}
				cr.markSent(k)
				sd.wbuf = sd.appendSend(sd.wbuf, k)
				sd.pend = append(sd.pend, k)
			}
			if pos++; pos == len(mine) {
				pos, round = 0, round+1
			}
		}
		cr.flush(dirty)
		dirty = dirty[:0]
	}
}

// closedLoopWriter keeps Window sends in flight per sender: it wakes when
// a delivery (or a failure) returns a credit and sends one frame per
// credit, until Duration has passed.
func (cr *chatRun) closedLoopWriter(g int, mine []*sender) {
	end := time.NewTimer(cr.s.Duration)
	defer end.Stop()
	var dirty []*sender
	for {
		select {
		case <-cr.wake[g]:
		case <-end.C:
			return
		case <-cr.ctx.Done():
			return
		}
		now := cr.since()
		for _, sd := range mine {
			n := cr.credits[sd.idx].Swap(0)
			if n <= 0 || sd.dead.Load() {
				continue
			}
			for range n {
				k := cr.nextK.Add(1) - 1
				if k >= cr.n {
					cr.exhausted.Store(true)
					break
				}
				cr.attempted.Add(1)
				cr.at[k].Store(now)
				cr.owner[k].Store(int32(sd.idx))
				if len(sd.pend) == 0 {
					dirty = append(dirty, sd)
				}
				cr.markSent(k)
				sd.wbuf = sd.appendSend(sd.wbuf, k)
				sd.pend = append(sd.pend, k)
			}
		}
		cr.flush(dirty)
		dirty = dirty[:0]
		if cr.exhausted.Load() {
			return
		}
	}
}

// flush writes each dirty sender's buffered frames in one write.
func (cr *chatRun) flush(dirty []*sender) {
	for _, sd := range dirty {
		if err := sd.c.Write(sd.wbuf); err != nil {
			kind := Kind(stageErr("write", err))
			if cr.ctx.Err() != nil {
				kind = "write: interrupted"
			}
			cr.errs.add(kind, int64(len(sd.pend)))
			sd.dead.Store(true)
			for _, k := range sd.pend {
				cr.fail(k)
			}
		}
		sd.wbuf, sd.pend = sd.wbuf[:0], sd.pend[:0]
	}
}

func (cr *chatRun) markSent(k uint64) {
	cr.state[k].Store(stSent)
	cr.open.Add(1)
	cr.unacked.Add(1)
	cr.sent.Add(1)
}

// senderOf returns the sender of k.
func (cr *chatRun) senderOf(k uint64) int {
	if cr.owner != nil {
		return int(cr.owner[k].Load())
	}
	return int(k % uint64(len(cr.senders)))
}

// giveCredit returns a max-mode credit to k's sender and wakes its writer.
func (cr *chatRun) giveCredit(k uint64) {
	if cr.credits == nil {
		return
	}
	i := cr.senderOf(k)
	cr.credits[i].Add(1)
	select {
	case cr.wake[i%len(cr.wake)] <- struct{}{}:
	default:
	}
}

// fail records that k will not be delivered (error frame or write error).
func (cr *chatRun) fail(k uint64) {
	old := cr.state[k].Or(stFailed)
	if old&stFailed != 0 {
		return
	}
	cr.failed.Add(1)
	if old&stDelivered == 0 {
		cr.open.Add(-1)
		cr.giveCredit(k)
	}
	if old&stAcked == 0 {
		cr.unacked.Add(-1)
	}
}

func (cr *chatRun) readSender(sd *sender) {
	defer cr.readers.Done()
	for {
		p, err := sd.c.Next()
		if err != nil {
			if !cr.stopping.Load() {
				cr.errs.addErr(stageErr("sender read", err))
				sd.dead.Store(true)
			}
			return
		}
		now := cr.since()
		switch frameType(p) {
		case typeAck:
			k, ok := ackIndex(p)
			if !ok || k >= cr.n || cr.state[k].Load()&stSent == 0 {
				cr.stray.Add(1)
				continue
			}
			old := cr.state[k].Or(stAcked)
			if old&stAcked != 0 {
				cr.dupAcks.Add(1)
				continue
			}
			cr.acked.Add(1)
			if old&stFailed == 0 {
				cr.unacked.Add(-1)
			}
			cr.ackH.record(sd.idx, now-cr.at[k].Load())
			cr.meter.Ack.Record(now - cr.at[k].Load())
			if sd.ids != nil {
				sd.ids[string(field(p, `"msg_id":"`))] = k
			}
		case typeReceipt:
			if sd.ids == nil {
				cr.stray.Add(1)
				continue
			}
			eachID(p, func(id []byte) {
				k, ok := sd.ids[string(id)]
				if !ok {
					cr.earlyReceipts.Add(1)
					return
				}
				delete(sd.ids, string(id))
				cr.receipted.Add(1)
				cr.rcptH.record(sd.idx, now-cr.at[k].Load())
			})
		case typeError:
			cr.errs.add("error frame "+string(field(p, `"code":"`)), 1)
			if k, ok := ackIndex(p); ok && k < cr.n && cr.state[k].Load()&stSent != 0 {
				cr.fail(k)
			}
		case typeMsg:
			// The server keeps each message in its sender's inbox too, for
			// the sender's other devices; this device gets it as well.
			cr.copies.Add(1)
		default:
			cr.stray.Add(1)
		}
	}
}

func (cr *chatRun) readRecipient(j int, c *Conn) {
	defer cr.readers.Done()
	for {
		p, err := c.Next()
		if err != nil {
			if !cr.stopping.Load() {
				cr.errs.addErr(stageErr("recipient read", err))
			}
			return
		}
		now := cr.since()
		switch frameType(p) {
		case typeMsg:
			k, ok := msgIndex(p)
			if !ok || k >= cr.n || cr.state[k].Load()&stSent == 0 {
				cr.stray.Add(1)
				continue
			}
			if cr.senderOf(k) != j {
				cr.misrouted.Add(1)
			}
			old := cr.state[k].Or(stDelivered)
			if old&stDelivered != 0 {
				cr.dupDeliveries.Add(1)
				continue
			}
			cr.delivered.Add(1)
			if sec := now / 1e9; sec >= 0 && sec < int64(len(cr.perSec)) {
				cr.perSec[sec].Add(1)
			}
			cr.recvH.record(j, now-cr.at[k].Load())
			cr.meter.E2E.Record(now - cr.at[k].Load())
			if cr.s.Receipts {
				// The recipient reads it at once: a read receipt.
				id := field(p, `"msg_id":"`)
				frame := encodeText([]byte(`{"type":"receipt","status":"read","msg_ids":["` + string(id) + `"]}`))
				if err := c.Write(frame); err != nil && !cr.stopping.Load() {
					cr.errs.addErr(stageErr("receipt write", err))
				}
			}
			if old&stFailed == 0 {
				cr.open.Add(-1)
				cr.giveCredit(k)
			}
		case typeError:
			cr.errs.add("recipient error frame "+string(field(p, `"code":"`)), 1)
		default:
			cr.stray.Add(1)
		}
	}
}

// chatTotals are the raw counts of a chat run, of one process or summed
// over several (mergeChatTotals); report turns them into the report's
// figures, so one process and many report through the same code. A chat
// worker's "done" line carries its totals.
type chatTotals struct {
	Scheduled       int64 `json:"scheduled"` // sends this run could make (open loop: its schedule)
	Attempted       int64 `json:"attempted"`
	Skipped         int64 `json:"skipped"`
	Sent            int64 `json:"sent"`
	Acked           int64 `json:"acked"`
	Delivered       int64 `json:"delivered"`
	Failed          int64 `json:"failed"`
	Missing         int64 `json:"missing"`
	Unacked         int64 `json:"unacked"`
	DupDeliveries   int64 `json:"dup_deliveries"`
	DupAcks         int64 `json:"dup_acks"`
	Misrouted       int64 `json:"misrouted"`
	Stray           int64 `json:"stray"`
	Copies          int64 `json:"copies"`
	Receipted       int64 `json:"receipted"`
	EarlyReceipts   int64 `json:"early_receipts"`
	DeliveredInLoad int64 `json:"delivered_in_load"`
	// BodyBytes and BodyFrames sum the senders' frames' body sizes and
	// count them (mean body size).
	BodyBytes  int64 `json:"body_bytes"`
	BodyFrames int64 `json:"body_frames"`
	// LoadEnd is when the last writer stopped, from the load's start;
	// Drained how long the drain waited.
	LoadEnd   time.Duration `json:"load_end_ns"`
	Drained   time.Duration `json:"drained_ns"`
	Exhausted bool          `json:"exhausted,omitempty"`
	// PerSec counts deliveries by second from the load's start.
	PerSec []int64 `json:"per_sec"`
	// Latencies, each with its histogram.
	Ack  Latency `json:"ack"`
	Recv Latency `json:"recv"`
	Rcpt Latency `json:"rcpt"`
	Lag  Latency `json:"lag"`
	// Errors counts the run's failures by kind (not the setup's).
	Errors map[string]int64 `json:"errors,omitempty"`
	// CPUUser and CPUSys are a worker's CPU seconds over its load and
	// drain (getrusage).
	CPUUser float64 `json:"cpu_user,omitempty"`
	CPUSys  float64 `json:"cpu_sys,omitempty"`
}

// Latency names of a chat report.
const (
	latAck  = "send→ack"
	latRecv = "send→receive"
	latRcpt = "send→read receipt"
	latLag  = "generator lag"
)

// totals counts what the run did. Call it after close.
func (cr *chatRun) totals(ld chatLoad) chatTotals {
	s := cr.s
	used := uint64(len(cr.state))
	if s.Max {
		used = min(cr.nextK.Load(), used)
	}
	t := chatTotals{
		Scheduled: int64(cr.n), Attempted: cr.attempted.Load(), Skipped: cr.skipped.Load(),
		Sent: cr.sent.Load(), Acked: cr.acked.Load(), Delivered: cr.delivered.Load(), Failed: cr.failed.Load(),
		DupDeliveries: cr.dupDeliveries.Load(), DupAcks: cr.dupAcks.Load(), Misrouted: cr.misrouted.Load(),
		Stray: cr.stray.Load(), Copies: cr.copies.Load(), Receipted: cr.receipted.Load(), EarlyReceipts: cr.earlyReceipts.Load(),
		DeliveredInLoad: ld.deliveredInLoad, LoadEnd: ld.loadEnd, Drained: ld.drained, Exhausted: cr.exhausted.Load(),
		PerSec: make([]int64, len(cr.perSec)), Errors: cr.errs.snapshot(),
	}
	for k := range used {
		st := cr.state[k].Load()
		if st&stSent == 0 || st&stFailed != 0 {
			continue
		}
		if st&stDelivered == 0 {
			t.Missing++
		}
		if st&stAcked == 0 {
			t.Unacked++
		}
	}
	for _, sd := range cr.senders {
		for _, f := range sd.frames {
			t.BodyBytes += int64(f.body)
			t.BodyFrames++
		}
	}
	for i := range cr.perSec {
		t.PerSec[i] = cr.perSec[i].Load()
	}
	merged := func(h histShards, name string) Latency {
		if h == nil {
			return Latency{Name: name}
		}
		return h.merged().latency(name)
	}
	t.Ack, t.Recv, t.Rcpt, t.Lag = merged(cr.ackH, latAck), merged(cr.recvH, latRecv), merged(cr.rcptH, latRcpt), merged(cr.lagH, latLag)
	return t
}

// report adds the figures, latencies, series, errors and notes of a run
// of s with totals t to r.
func (t *chatTotals) report(r *Report, s *Chat) {
	// The open loop's window is Duration unless the generator fell behind
	// (its last send is due 1/Rate before the end).
	load := t.LoadEnd.Seconds()
	if !s.Max {
		load = max(load, s.Duration.Seconds())
	}
	if !s.Max {
		r.Add("sends scheduled", float64(t.Scheduled), "")
		r.Add("sends not reached (interrupted)", float64(t.Scheduled-t.Attempted), "")
	}
	r.Add("sends skipped (connection down)", float64(t.Skipped), "")
	r.Add("sent", float64(t.Sent), "")
	r.Add("acked", float64(t.Acked), "")
	r.Add("delivered", float64(t.Delivered), "")
	r.Add("failed (error frame or write error)", float64(t.Failed), "")
	r.Add("missing after drain (not delivered)", float64(t.Missing), "")
	r.Add("unacked after drain", float64(t.Unacked), "")
	r.Add("duplicate deliveries", float64(t.DupDeliveries), "")
	r.Add("duplicate acks", float64(t.DupAcks), "")
	r.Add("misrouted deliveries", float64(t.Misrouted), "")
	r.Add("unexpected frames", float64(t.Stray), "")
	r.Add("copies of own messages", float64(t.Copies), "")
	if s.Receipts {
		r.Add("read receipts back at the senders", float64(t.Receipted), "")
		r.Add("read receipts missing after drain", float64(t.Delivered-t.Receipted-t.EarlyReceipts), "")
		r.Add("read receipts before their ack", float64(t.EarlyReceipts), "")
	}
	if s.SizeDist != "" {
		r.Add("mean body size", float64(t.BodyBytes)/float64(t.BodyFrames), "bytes")
	}
	r.Add("load phase", load, "s")
	r.Add("drain used", t.Drained.Seconds(), "s")
	if !s.Max {
		r.Add("target rate", s.Rate, "msg/s")
	}
	r.Add("send rate achieved", float64(t.Sent)/load, "msg/s")
	r.Add("delivery rate during load", float64(t.DeliveredInLoad)/load, "msg/s")

	// Per-second deliveries over the whole seconds of the load phase.
	series := slices.Clone(t.PerSec)
	last := len(series)
	for last > 0 && series[last-1] == 0 {
		last--
	}
	series = series[:last]
	r.Series = append(r.Series, Series{Name: "deliveries", PerSecond: series})
	if full := int(load); full >= 1 && full <= len(series) {
		sec := slices.Clone(series[:full])
		slices.Sort(sec)
		r.Add("deliveries per second: min", float64(sec[0]), "msg/s")
		r.Add("deliveries per second: median", float64(sec[len(sec)/2]), "msg/s")
		r.Add("deliveries per second: max", float64(sec[len(sec)-1]), "msg/s")
	}

	r.Latencies = append(r.Latencies, t.Ack, t.Recv)
	if s.Receipts {
		r.Latencies = append(r.Latencies, t.Rcpt)
	}
	if !s.Max {
		r.Latencies = append(r.Latencies, t.Lag)
		r.Note("open loop: latencies are from each send's scheduled time (coordinated omission corrected); generator lag is how late the generator wrote a send")
	} else {
		r.Note("max: closed loop with %d sends in flight per sender; latencies are from the actual send", s.Window)
		if t.Exhausted {
			r.Note("stopped early: --max-sends %d reached", s.MaxSends)
		}
	}
	r.addErrors(t.Errors)
	for k := range r.Errors {
		if strings.Contains(k, "rate_limited") {
			r.Note("rate_limited: the server's per-connection limit (SWITCHBOARD_GATEWAY_MESSAGE_RATE, default 100/s) is below rate/pairs")
			break
		}
	}
}
