package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard/switchboard/assets"
	"github.com/switchboard/switchboard/assets/api"
	"github.com/switchboard/switchboard/auth"
	"github.com/switchboard/switchboard/backends/blobdir"
	"github.com/switchboard/switchboard/backends/cassandra"
	"github.com/switchboard/switchboard/backends/disk"
	"github.com/switchboard/switchboard/backends/kafka"
	"github.com/switchboard/switchboard/backends/memory"
	"github.com/switchboard/switchboard/backends/redis"
	"github.com/switchboard/switchboard/backends/s3"
	"github.com/switchboard/switchboard/chat"
	"github.com/switchboard/switchboard/cluster"
	"github.com/switchboard/switchboard/gateway"
	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/presence"
	"github.com/switchboard/switchboard/router"
)

// Config is everything `switchboard serve` reads: defaults, then the file
// given by --config, then SWITCHBOARD_* environment variables, then flags.
// Zero values mean "default"; each package fills in its own.
type Config struct {
	// Listen is the address for clients. Default ":8080".
	Listen string `yaml:"listen" help:"TCP address for WebSocket clients and /healthz, /readyz, /metrics; a worker serves only the latter (default :8080)"`
	// DataDir holds the store and the token secret. Default "./data".
	DataDir string `yaml:"data_dir" help:"directory for the message store and the token secret (default ./data)"`
	// SecretFile is the HS256 token secret (hex). Default: DataDir/secret.key, created if missing.
	SecretFile string `yaml:"secret_file" help:"file holding the hex HS256 token secret (default: <data_dir>/secret.key, created if missing)"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level" help:"debug, info, warn or error (default info)"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format" help:"text or json (default text)"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the client port.
	// Off by default: profiles reveal internals; enable only where the port
	// is not public.
	Pprof bool `yaml:"pprof" help:"serve /debug/pprof/ on the client port (default false; do not enable on a public port)"`
	// ShutdownTimeout bounds a graceful shutdown. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" help:"time allowed for a graceful shutdown (default 10s)"`

	// Role is what this process runs: all (default: the whole product),
	// gateway or worker (a distributed deployment, docs/deploy.md).
	Role string `yaml:"role" help:"all (default: everything in this process), gateway (client connections) or worker (the sequencer); gateway and worker need the distributed backends"`
	// Backends chooses the engines: all embedded (default) or all
	// distributed.
	Backends BackendsConfig `yaml:"backends"`

	Gateway  gateway.Config  `yaml:"gateway"`
	Chat     chat.Config     `yaml:"chat"`
	Presence presence.Config `yaml:"presence"`
	Store    disk.Options    `yaml:"store"`
	Assets   api.Config      `yaml:"assets"`
	Blobs    BlobsConfig     `yaml:"blobs"`

	// The distributed backends (backends: cassandra, kafka, redis).
	Cassandra cassandra.Config     `yaml:"cassandra"`
	Kafka     kafka.Config         `yaml:"kafka"`
	Commands  kafka.CommandsConfig `yaml:"commands"`
	Redis     redis.Config         `yaml:"redis"`
	Cluster   cluster.RemoteConfig `yaml:"cluster"`
}

// BlobsConfig says where uploaded files are stored.
type BlobsConfig struct {
	// Backend is "dir" (default: <data_dir>/blobs) or "s3".
	Backend string `yaml:"backend" help:"where uploaded files are stored: dir (default, <data_dir>/blobs) or s3"`
	// S3 configures the s3 backend.
	S3 s3.Options `yaml:"s3"`
}

// openBlobs opens the configured blob store.
func openBlobs(cfg Config, log *slog.Logger) (assets.Blobs, error) {
	switch cfg.Blobs.Backend {
	case "", "dir":
		return blobdir.Open(filepath.Join(cfg.DataDir, "blobs"))
	case "s3":
		opts := cfg.Blobs.S3
		opts.Logger = log
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := s3.Open(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("blobs on s3: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("blobs.backend %q: want dir or s3", cfg.Blobs.Backend)
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.SecretFile == "" {
		c.SecretFile = filepath.Join(c.DataDir, auth.SecretFile)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	c.Gateway.Listen = c.Listen
	c.Assets.SetDefaults()
}

func serveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "TCP address to serve on (default :8080)")
	dataDir := fs.String("data-dir", "", "directory for the store and the token secret (default ./data)")
	role := fs.String("role", "", "all (default), gateway or worker: see docs/deploy.md")
	file := fs.String("config", "", "YAML config file; SWITCHBOARD_* environment variables override it, flags override both")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard serve [--role all|gateway|worker] [--listen ADDR] [--data-dir DIR] [--config FILE]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEvery setting (config file key, environment variable):\n")
		for _, k := range config.Keys(&Config{}) {
			fmt.Fprintf(fs.Output(), "  %-34s %-46s %s\n", k.Path, k.EnvVar("SWITCHBOARD"), k.Help)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	var cfg Config
	if err := config.Load(&cfg, *file, os.Environ(), "SWITCHBOARD"); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "data-dir":
			cfg.DataDir = *dataDir
		case "role":
			cfg.Role = *role
		}
	})
	cfg.setDefaults()
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, log)
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log_level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log_format %q: want text or json", format)
}

// verifier adapts auth.Verifier to the gateway.
type verifier struct{ v *auth.Verifier }

func (v verifier) Authenticate(token []byte) (string, string, error) {
	c, err := v.v.Verify(token)
	return c.User, c.Device, err
}

// serve runs the configured role until ctx ends.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	dist, err := checkRole(&cfg)
	if err != nil {
		return err
	}
	if dist {
		return serveDistributed(ctx, cfg, log)
	}
	return serveEmbedded(ctx, cfg, log)
}

func registerProcess(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// newMux serves /healthz, /readyz (ready says), /metrics and, with
// pprof, /debug/pprof/.
func newMux(reg *prometheus.Registry, pprofOn bool, ready func() bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serveEmbedded runs the whole product in this process on the embedded
// backends until ctx ends.
func serveEmbedded(ctx context.Context, cfg Config, log *slog.Logger) error {
	checkLimits(cfg.Gateway, log) // limits.go: open files vs gateway.max_connections
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	secret, err := loadSecret(cfg)
	if err != nil {
		return err
	}
	v, err := auth.NewVerifier(secret)
	if err != nil {
		return err
	}

	storeDir := filepath.Join(cfg.DataDir, "store")
	cfg.Store.Logger = log
	store, err := disk.Open(storeDir, cfg.Store)
	if err != nil {
		return fmt.Errorf("open store %s: %w", storeDir, err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	bus, dir := memory.NewBus(), memory.NewDirectory()

	reg := prometheus.NewRegistry()
	registerProcess(reg)
	svc, err := chat.New(cfg.Chat, store, bus, dir, log, chat.NewMetrics(reg))
	if err != nil {
		return fmt.Errorf("chat config: %w", err)
	}
	defer svc.Close()

	g, err := newGateway(cfg, svc, bus, dir, v, reg, log)
	if err != nil {
		return err
	}
	// Presence pushes through the gateway; its last seen, privacy and
	// contacts live in the same store.
	stopPresence, err := startPresence(cfg, store.Presence(), g, bus, log)
	if err != nil {
		return err
	}
	defer stopPresence()
	stopAssets, err := serveAssets(cfg, secret, svc, bus, verifier{v}, log)
	if err != nil {
		return err
	}
	defer stopAssets()
	return runGateway(ctx, cfg, g, log, func() {
		stopAssets() // its requests and collector use svc
		svc.Close()
	}, "data_dir", cfg.DataDir, "node", g.Config().Node)
}

// newGateway makes the gateway over svc, bus and dir, serving /healthz,
// /readyz and /metrics on its port.
func newGateway(cfg Config, svc gateway.Service, bus chat.Bus, dir router.Directory, v *auth.Verifier, reg *prometheus.Registry, log *slog.Logger) (*gateway.Gateway, error) {
	var g *gateway.Gateway
	mux := newMux(reg, cfg.Pprof, func() bool { return g.Ready() })
	g, err := gateway.New(cfg.Gateway, gateway.Deps{
		Service: svc, Bus: bus, Directory: dir, Auth: verifier{v},
		HTTP: mux, Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	return g, nil
}

// startPresence starts the presence service over store, pushing through
// g, and the last-seen worker, which reads the gateways' connection and
// activity events from the bus. stop flushes last seen.
func startPresence(cfg Config, store presence.Store, g *gateway.Gateway, bus chat.Bus, log *slog.Logger) (stop func(), err error) {
	pcfg := cfg.Presence
	pcfg.Node = g.Config().Node // each last seen written by its connection's node only
	pres, err := presence.New(pcfg, store, g, log)
	if err != nil {
		return nil, fmt.Errorf("presence config: %w", err)
	}
	g.SetPresence(pres)
	stopConsumer, err := bus.Consume(chat.StreamPresence, presence.Consumer(pres, log))
	if err != nil {
		pres.Close()
		return nil, fmt.Errorf("presence stream: %w", err)
	}
	return func() { stopConsumer(); pres.Close() }, nil
}

// runGateway runs g until ctx ends or it fails, logging attrs once it
// serves. Then it drains the gateway, calls stopBehind (what takes the
// gateway's requests: it commits and answers what is queued), says
// goodbye to clients (1001) and stops the loops.
func runGateway(ctx context.Context, cfg Config, g *gateway.Gateway, log *slog.Logger, stopBehind func(), attrs ...any) error {
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	select {
	case <-g.Booted():
		log.Info("switchboard serving", append([]any{"listen", cfg.Listen, "ws", "ws://" + displayAddr(cfg.Listen) + gateway.Path}, attrs...)...)
	case err := <-done:
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-done:
		return fmt.Errorf("gateway stopped: %w", err)
	}
	g.Drain()
	stopBehind()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("gateway shutdown", "err", err)
	}
	<-done
	log.Info("stopped")
	return nil
}

// serveAssets starts the asset HTTP API on its own listener, storing
// files in <data_dir>/blobs and unfinished resumable uploads in
// <data_dir>/uploads, and the asset workers, and returns what stops them
// (safe to call more than once).
func serveAssets(cfg Config, secret []byte, svc *chat.Service, bus chat.Bus, auth api.Authenticator, log *slog.Logger) (stop func(), err error) {
	if cfg.Assets.Listen == "off" {
		return func() {}, nil
	}
	blobs, err := openBlobs(cfg, log)
	if err != nil {
		return nil, err
	}
	acfg := cfg.Assets
	acfg.UploadDir = filepath.Join(cfg.DataDir, "uploads")
	stopWorkers, err := runAssetWorkers(cfg, blobs, svc, svc, bus, log)
	if err != nil {
		return nil, err
	}
	stopAPI, err := serveAssetAPI(cfg, acfg, blobs, svc, bus, auth, assets.NewSigner(secret), log)
	if err != nil {
		stopWorkers()
		return nil, err
	}
	return func() { stopAPI(); stopWorkers() }, nil
}

// assetCatalog is what the asset API and its workers need of the core.
type assetCatalog interface {
	api.Catalog
	api.CollectCatalog
}

// groupConsumer is a bus whose streams can be consumed by a group, each
// value by one member (kafka.Bus): the asset worker then runs once per
// upload however many workers there are.
type groupConsumer interface {
	ConsumeGroup(topic, group string, h chat.StreamHandler) (cancel func(), err error)
}

// runAssetWorkers starts the asset worker (thumbnails of uploaded images,
// from the bus) and the collector (files never sent, media past
// retention, unused bytes), and returns what stops them (safe to call
// more than once).
func runAssetWorkers(cfg Config, blobs assets.Blobs, cat assetCatalog, sub api.Catalog, bus chat.Bus, log *slog.Logger) (stop func(), err error) {
	worker := api.NewWorker(blobs, sub, assets.ThumbOptions{}, log)
	var stopWorker func()
	if gc, ok := bus.(groupConsumer); ok {
		stopWorker, err = gc.ConsumeGroup(api.StreamAssets, "assets", worker.Handle)
	} else {
		stopWorker, err = bus.Consume(api.StreamAssets, worker.Handle)
	}
	if err != nil {
		return nil, fmt.Errorf("asset worker: %w", err)
	}
	collector, err := api.NewCollector(cfg.Assets, blobs, cat, log)
	if err != nil {
		stopWorker()
		return nil, fmt.Errorf("assets config: %w", err)
	}
	collector.Start()
	var once sync.Once
	return func() {
		once.Do(func() {
			collector.Close()
			stopWorker()
		})
	}, nil
}

// serveAssetAPI serves the asset HTTP API on cfg.Assets.Listen and
// returns what stops it (safe to call more than once).
func serveAssetAPI(cfg Config, acfg api.Config, blobs assets.Blobs, cat api.Catalog, bus chat.Bus, auth api.Authenticator, signer *assets.Signer, log *slog.Logger) (stop func(), err error) {
	h, err := api.New(acfg, blobs, cat, auth, signer, log)
	if err != nil {
		return nil, fmt.Errorf("assets config: %w", err)
	}
	h.SetBus(bus)
	ln, err := net.Listen("tcp", acfg.Listen)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("assets listen %s: %w", acfg.Listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("asset API stopped", "err", err)
		}
	}()
	log.Info("asset API serving", "listen", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr().String())+"/v1/assets")
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			srv.Shutdown(ctx)
			h.Close()
		})
	}, nil
}

func loadSecret(cfg Config) ([]byte, error) {
	if cfg.SecretFile == filepath.Join(cfg.DataDir, auth.SecretFile) {
		return auth.LoadOrCreateSecret(cfg.DataDir)
	}
	return auth.LoadSecret(cfg.SecretFile)
}

func displayAddr(listen string) string {
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return listen
}
