package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/auth"
	"github.com/switchboard/switchboard/backends/cassandra"
	"github.com/switchboard/switchboard/backends/kafka"
	"github.com/switchboard/switchboard/backends/redis"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/cluster"
	"github.com/switchboard/switchboard/gateway"
	"github.com/switchboard/switchboard/router"
)

// Roles of `switchboard serve --role`.
const (
	roleAll     = "all"     // gateway and worker in one process (the default)
	roleGateway = "gateway" // holds client connections
	roleWorker  = "worker"  // runs the sequencer when it owns the command log
)

// BackendsConfig chooses the engines behind the interfaces.
type BackendsConfig struct {
	// Store is "disk" (default: Pebble in <data_dir>/store) or "cassandra".
	Store string `yaml:"store" help:"message store: disk (default, <data_dir>/store) or cassandra"`
	// Bus is "memory" (default: in the process) or "kafka".
	Bus string `yaml:"bus" help:"bus between gateways and workers: memory (default) or kafka"`
	// Router is "memory" (default) or "redis".
	Router string `yaml:"router" help:"routing directory (user/device -> gateway): memory (default) or redis"`
}

// distributed reports whether the backends are the shared engines, and
// refuses a mix: a process on embedded parts cannot share them.
func (b BackendsConfig) distributed() (bool, error) {
	emb := [3]bool{b.Store == "" || b.Store == "disk", b.Bus == "" || b.Bus == "memory", b.Router == "" || b.Router == "memory"}
	dist := [3]bool{b.Store == "cassandra", b.Bus == "kafka", b.Router == "redis"}
	for i, name := range []string{"store", "bus", "router"} {
		if !emb[i] && !dist[i] {
			v := [3]string{b.Store, b.Bus, b.Router}[i]
			return false, fmt.Errorf("backends.%s %q: want %s", name, v, [3]string{"disk or cassandra", "memory or kafka", "memory or redis"}[i])
		}
	}
	switch {
	case emb == [3]bool{true, true, true}:
		return false, nil
	case dist == [3]bool{true, true, true}:
		return true, nil
	}
	return false, fmt.Errorf("backends: store %q, bus %q, router %q: use all embedded ones (disk, memory, memory) or all distributed ones (cassandra, kafka, redis)",
		b.Store, b.Bus, b.Router)
}

// checkRole validates role against the backends; it returns whether the
// distributed path runs.
func checkRole(cfg *Config) (bool, error) {
	dist, err := cfg.Backends.distributed()
	if err != nil {
		return false, err
	}
	switch cfg.Role {
	case "", roleAll:
		cfg.Role = roleAll
	case roleGateway, roleWorker:
		if !dist {
			return false, fmt.Errorf("role %s needs the distributed backends (backends: store cassandra, bus kafka, router redis): see docs/deploy.md", cfg.Role)
		}
	default:
		return false, fmt.Errorf("role %q: want all, gateway or worker", cfg.Role)
	}
	return dist, nil
}

// serveDistributed runs a gateway, a worker or both on Cassandra, Kafka
// and Redis until ctx ends. Every request goes through the command log,
// even in one process: the sequencer runs wherever the log's partition is
// owned.
func serveDistributed(ctx context.Context, cfg Config, log *slog.Logger) error {
	gw, wk := cfg.Role != roleWorker, cfg.Role != roleGateway
	if gw {
		checkLimits(cfg.Gateway, log)
	}
	if cfg.Gateway.Node == "" {
		cfg.Gateway.Node = gateway.DefaultNode()
	}
	node := cfg.Gateway.Node
	log = log.With("node", node)

	openCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ccfg := cfg.Cassandra
	ccfg.Logger = log
	store, err := cassandra.Open(openCtx, ccfg)
	if err != nil {
		return fmt.Errorf("cassandra: %w", err)
	}
	defer store.Close()
	kcfg := cfg.Kafka
	kcfg.Logger = log
	bus, err := kafka.New(kcfg)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer bus.Close()
	// A clean stop deletes the node's delivery topic (once everything
	// below has stopped); the workers delete those of nodes that died
	// (collectNodeTopics).
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bus.DeleteNode(dctx, node); err != nil {
			log.Warn("deleting this node's delivery topic", "err", err)
		}
	}()
	dir, err := redis.New(cfg.Redis)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer dir.Close()
	commands, err := kafka.NewCommands(openCtx, kcfg, cfg.Commands)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		commands.Close(fctx)
	}()

	// Every process has a node: a gateway's replies and deliveries come
	// to it, and so do a worker's (its asset worker and collector submit
	// through the log like everyone else).
	rcfg := cfg.Cluster
	rcfg.Node = node
	reg := prometheus.NewRegistry()
	registerProcess(reg)
	cm := cluster.NewMetrics(reg)
	remote, err := cluster.NewRemote(rcfg, cfg.Chat, commands, store, cm, log)
	if err != nil {
		return err
	}
	defer remote.Close()
	bus.HandleNode(replyKind, remote.OnReply)
	registerRemote(reg, remote)

	var ready atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()

	secret, err := loadSecret(cfg)
	if err != nil {
		return err
	}
	v, err := auth.NewVerifier(secret)
	if err != nil {
		return err
	}
	blobs, err := openBlobs(cfg, log)
	if err != nil {
		return err
	}
	if cfg.Blobs.Backend != "s3" && cfg.Assets.Listen != "off" {
		log.Warn("blobs.backend dir in a distributed deployment: every gateway and worker must see the same directory (a shared file system); use s3 otherwise")
	}
	catalog := remoteCatalog{chat.NewCatalog(store), remote}

	if wk {
		m := chat.NewMetrics(reg)
		rep := newBusReplier(bus, log)
		parts := commands.Partitions()
		var cbus chat.Bus = bus
		if parts > 1 {
			// Sequencers forward the entries of other partitions' users
			// through the command log (chat.Route).
			cbus = forwardingBus{bus, cluster.NewLogForwarder(commands)}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := kafka.ConsumeCommands(runCtx, kcfg, cfg.Commands, func(ctx context.Context, p int32) (kafka.Partition, error) {
				// Fence whoever had the partition: a larger epoch, whose
				// writes win over any of theirs (backends/cassandra,
				// "Fencing"), then a fresh sequencer with no cache of
				// someone else's ownership.
				// With several partitions each has its own writer
				// epoch, pipeline and retention index over the one
				// session (cassandra.Store.Partition).
				ps := store
				if parts > 1 {
					ps = store.Partition(int(p))
				}
				epoch, err := ps.AcquireLease(ctx, "commands/"+strconv.Itoa(int(p)), node)
				if err != nil {
					log.Error("taking the command partition's lease", "partition", p, "err", err)
					return nil, err
				}
				ps.SetWriterEpoch(epoch)
				ccfg := cfg.Chat
				ccfg.Epoch = uint64(epoch)
				ccfg.Partitions, ccfg.Partition = parts, int(p)
				svc, err := chat.New(ccfg, ps, cbus, dir, log, m)
				if err != nil {
					return nil, err
				}
				log.Info("sequencer started: this worker owns a command partition", "partition", p, "of", parts, "epoch", epoch)
				return &sequencer{svc: svc, Worker: cluster.NewWorker(svc, rep, cm, log), log: log, p: p}, nil
			})
			if err != nil {
				log.Error("worker stopped", "err", err)
				stopRun()
			}
		}()
		// The node's topic carries the replies to this worker's own
		// requests (asset worker, collector); its heartbeat tells the
		// other workers that the topic is in use.
		if !gw {
			unsub, err := bus.Subscribe(node, func(*chat.Delivery) {})
			if err != nil {
				return fmt.Errorf("kafka: subscribe %s: %w", node, err)
			}
			defer unsub()
			if err := startKeeper(openCtx, runCtx, &wg, dir, node, func() []router.Route { return nil }, log); err != nil {
				return err
			}
		}
		if grace := cmp.Or(kcfg.NodeTopicGrace, kafka.DefaultNodeTopicGrace); grace > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				collectNodeTopics(runCtx, bus, dir, node, grace, log)
			}()
		}
		if cfg.Assets.Listen != "off" {
			stop, err := runAssetWorkers(cfg, blobs, catalog, catalog, bus, log)
			if err != nil {
				return err
			}
			defer stop()
		}
	}

	if !gw {
		mux := newMux(reg, cfg.Pprof, ready.Load)
		// A worker has no WebSocket clients: listen serves its
		// /healthz, /readyz and /metrics.
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		ready.Store(true)
		log.Info("switchboard worker running", "http", ln.Addr().String())
		<-runCtx.Done()
		log.Info("shutting down")
		return nil
	}

	g, err := newGateway(cfg, remote, bus, dir, v, reg, log)
	if err != nil {
		return err
	}
	if err := startKeeper(openCtx, runCtx, &wg, dir, node, g.Routes, log); err != nil {
		return err
	}
	// Presence: every gateway reads every connection event, so that its
	// own subscribers hear of users on other gateways.
	stopPresence, err := startPresence(cfg, store.Presence(), g, bus, log)
	if err != nil {
		return err
	}
	defer stopPresence()
	stopAssets := func() {}
	if cfg.Assets.Listen != "off" {
		acfg := cfg.Assets
		acfg.UploadDir = filepath.Join(cfg.DataDir, "uploads")
		stopAssets, err = serveAssetAPI(cfg, acfg, blobs, catalog, bus, verifier{v}, assets.NewSigner(secret), log)
		if err != nil {
			return err
		}
	}
	defer stopAssets()

	err = runGateway(runCtx, cfg, g, log, stopAssets, "role", cfg.Role)
	stopRun()
	return err
}

// startKeeper beats the node's liveness in the directory, once before it
// returns (routes of a node without a liveness key are not looked up, so
// this comes before the first connection registers), then until runCtx
// ends, rebuilding the node's routes if Redis lost them.
func startKeeper(openCtx, runCtx context.Context, wg *sync.WaitGroup, dir *redis.Directory, node string, routes func() []router.Route, log *slog.Logger) error {
	keeper := dir.Keeper(node, strconv.FormatInt(time.Now().UnixNano(), 36), routes)
	if _, err := keeper.Beat(openCtx); err != nil { // "rebuilt": there was nothing yet
		return fmt.Errorf("redis: first heartbeat: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		keeper.Run(runCtx, func(rebuilt bool, err error) {
			switch {
			case err != nil:
				log.Warn("routing directory heartbeat", "err", err)
			case rebuilt:
				log.Warn("routing directory had lost this node's routes: rebuilt")
			}
		})
	}()
	return nil
}

// collectNodeTopics deletes, every grace/4, the delivery topics of nodes
// whose heartbeat has been missing for grace: processes that died (a
// clean stop deletes its own). Every worker runs it; a topic deleted
// twice is no harm. A node seen alive again, or a check that cannot read
// Redis or Kafka, judges nothing.
func collectNodeTopics(ctx context.Context, bus *kafka.Bus, dir *redis.Directory, self string, grace time.Duration, log *slog.Logger) {
	deadSince := map[string]time.Time{}
	t := time.NewTicker(max(grace/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nodes, err := bus.NodeTopics(ctx)
		if err != nil {
			log.Debug("node topics: list", "err", err)
			continue
		}
		nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == self })
		alive, err := dir.NodesAlive(ctx, nodes)
		if err != nil {
			log.Debug("node topics: liveness", "err", err)
			continue
		}
		now := time.Now()
		listed := make(map[string]bool, len(nodes))
		for i, n := range nodes {
			listed[n] = true
			first, seen := deadSince[n]
			switch {
			case alive[i]:
				delete(deadSince, n)
			case !seen:
				deadSince[n] = now
			case now.Sub(first) >= grace:
				if err := bus.DeleteNode(ctx, n); err != nil {
					log.Warn("deleting a dead node's delivery topic", "dead_node", n, "err", err)
					continue
				}
				log.Info("deleted the delivery topic of a node gone", "dead_node", n, "gone_for", now.Sub(first).Round(time.Second))
				delete(deadSince, n)
			}
		}
		for n := range deadSince {
			if !listed[n] {
				delete(deadSince, n)
			}
		}
	}
}

// replyKind tags a worker's replies on a node's topic (deliveries are 'd').
const replyKind = 'r'

// remoteCatalog is what the asset API and collector need of the core in
// a distributed deployment: reads from the shared store, writes through
// the command log.
type remoteCatalog struct {
	*chat.Catalog
	*cluster.Remote
}

// sequencer is a worker's ownership of the command partition: Close
// commits and answers what was handed over, then stops the Service.
type sequencer struct {
	*cluster.Worker
	svc *chat.Service
	log *slog.Logger
	p   int32
}

func (s *sequencer) Close() {
	s.svc.Close()
	s.log.Info("sequencer stopped: the command partition was handed over", "partition", s.p)
}

// forwardingBus is a worker's chat.Bus when the command log has several
// partitions: the Kafka bus, and forwards appended to the command log.
type forwardingBus struct {
	*kafka.Bus
	*cluster.LogForwarder
}

// busReplier sends replies on the bus without waiting for Kafka
// (kafka.Bus.PostNode): a reply Kafka does not take is counted in the
// bus's publish errors, and the gateway answers the client "overloaded"
// after its reply timeout (the resend gets the original's ack).
type busReplier struct {
	bus *kafka.Bus
	log *slog.Logger
}

func newBusReplier(bus *kafka.Bus, log *slog.Logger) *busReplier {
	return &busReplier{bus: bus, log: log}
}

func (r *busReplier) Reply(node string, payload []byte) {
	if err := r.bus.PostNode(context.Background(), node, replyKind, payload); err != nil {
		r.log.Debug("reply not sent", "node", node, "err", err)
	}
}

func registerRemote(reg prometheus.Registerer, rm *cluster.Remote) {
	st := rm.Stats()
	for name, c := range map[string]*atomic.Uint64{
		"submitted": &st.Submitted, "replied": &st.Replied, "refused": &st.Refused,
		"failed": &st.Failed, "timed_out": &st.TimedOut, "stale": &st.Stale,
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "switchboard_cluster_requests_total",
			Help:        "Requests a gateway sent through the command log, by outcome.",
			ConstLabels: prometheus.Labels{"outcome": name},
		}, func() float64 { return float64(c.Load()) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_cluster_pending_requests",
		Help: "Requests waiting for a worker's reply.",
	}, func() float64 { return float64(rm.Pending()) }))
}
