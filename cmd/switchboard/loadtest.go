package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard/switchboard/loadtest"
)

const loadtestUsage = `Usage: switchboard loadtest SCENARIO [flags]
       switchboard loadtest run SCENARIO.yaml [flags]
       switchboard loadtest report RUN.json [--html OUT.html]
       switchboard loadtest compare A.json B.json

Measures a running server over its WebSocket protocol. Tokens are minted
with the server's secret (--data-dir or --secret-file) for users unique to
the run. Prints a summary; --json FILE writes every figure (and the
histograms), --html FILE a self-contained page with plots of the run.

Scenarios:
  idle      open --conns connections, sync each once, hold them --hold;
            server RSS and kernel TCP memory per connection
  connect   --conns upgrades, --concurrency at a time, each closed at once;
            upgrades/s and latency percentiles
  chat      --pairs sender→recipient pairs at --rate msg/s for --duration
            (open loop, latency from the scheduled send), or --max (closed
            loop) for the highest sustained delivery rate; --size-dist,
            --receipts
  reconnect the reconnect storm: --conns clients connect, then all drop at
            once and come back; time until all are back and synced
  day       a day in the life: --dau, --online-share, --msgs-per-day and
            --peak-factor become the peak hour's chat load (Poisson,
            lognormal sizes, read receipts)

Every scenario's flags can also come from a file: --scenario FILE (YAML,
flag names as keys, e.g. "pairs: 7500"); flags on the command line win.
'switchboard loadtest run FILE' runs the scenario the file names
("scenario: chat").

Reports:
  report    print the summary of a saved --json report; --html OUT.html
            renders it as a page with plots
  compare   print two saved --json reports side by side: figures and
            latency percentiles of A and B with the ratio B/A (the
            difference where A is 0); '*' marks parameters that differ

Run 'switchboard loadtest SCENARIO --help' for its flags.
`

// loadtestWorker is the hidden scenario an idle run re-executes itself with.
const loadtestWorker = "idle-worker"

// loadtestChatWorker is the hidden scenario a chat (or day) run over
// several processes starts its workers with.
const loadtestChatWorker = "chat-worker"

func loadtestCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, loadtestUsage)
		return errors.New("loadtest: which scenario?")
	}
	name, args := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		fmt.Print(loadtestUsage)
		return nil
	case loadtestWorker:
		return loadtest.RunIdleWorker(ctx, os.Stdin, os.Stdout)
	case loadtestChatWorker:
		return loadtest.RunChatWorker(ctx, os.Stdin, os.Stdout)
	case "run":
		// loadtest run FILE [flags]: the scenario named in the file.
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return errors.New("loadtest run: which scenario file?")
		}
		scenario, err := scenarioOf(args[0])
		if err != nil {
			return err
		}
		return loadtestCmd(ctx, append([]string{scenario, "--scenario", args[0]}, args[1:]...))
	case "report":
		return loadtestReportCmd(args)
	case "compare":
		return loadtestCompareCmd(args)
	}

	fs := flag.NewFlagSet("loadtest "+name, flag.ContinueOnError)
	var cfg loadtest.Config
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/v1/ws", "the server's WebSocket endpoint; several gateways of one deployment comma-separated (connection i to gateway i mod n; chat puts each pair's sender and recipient on different gateways)")
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "the server's data directory; tokens are signed with its secret.key")
	fs.StringVar(&cfg.SecretFile, "secret-file", "", "the server's secret file, instead of <data-dir>/secret.key")
	fs.StringVar(&cfg.SourceIPs, "source-ips", "", "local addresses to bind connections to, round robin, e.g. 127.0.0.2-127.0.0.50 (each gives ~28k ports; default: kernel's choice)")
	fs.Func("server-pid", "the server's pid, to read its RSS and CPU from /proc; several gateway processes: a comma-separated list, summed (default: from --metrics-url)", func(v string) error {
		pids, err := parsePIDs(v)
		if err == nil && len(pids) > 0 {
			cfg.ServerPID, cfg.ServerPIDs = pids[0], pids[1:]
		}
		return err
	})
	scenarioFile := fs.String("scenario", "", "YAML file of this scenario's flags (flag name: value); command-line flags win")
	fs.StringVar(&cfg.MetricsURL, "metrics-url", "", "the server's Prometheus endpoint (default: http://<url's host>/metrics)")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 10*time.Second, "bound on one connection's TCP connect, upgrade and first sync")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "lt", "prefix of the run's user ids (a random run id follows)")
	jsonPath := fs.String("json", "", "also write the full report as JSON to this file")
	htmlPath := fs.String("html", "", "also write the report as a self-contained HTML page with plots to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")

	var sc loadtest.Scenario
	switch name {
	case "idle":
		s := &loadtest.Idle{}
		fs.IntVar(&s.Conns, "conns", 1000, "connections to open and hold")
		fs.DurationVar(&s.Hold, "hold", 10*time.Second, "how long to hold them open once all are up")
		fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections being opened at once (per process)")
		fs.IntVar(&s.ConnsPerProcess, "conns-per-process", 0, "most connections per generator process; more start worker processes (default: open-file hard limit minus 1000)")
		sc = s
	case "connect":
		s := &loadtest.Connect{}
		fs.IntVar(&s.Conns, "conns", 10000, "upgrades to perform")
		fs.IntVar(&s.Concurrency, "concurrency", 64, "upgrades in flight at once")
		sc = s
	case "chat":
		s := &loadtest.Chat{}
		fs.IntVar(&s.Pairs, "pairs", 100, "sender→recipient pairs (two connections each)")
		fs.Float64Var(&s.Rate, "rate", 1000, "open loop: total sends per second over all senders")
		fs.DurationVar(&s.Duration, "duration", 10*time.Second, "how long to send")
		fs.IntVar(&s.Size, "size", 100, "body bytes (at least 10: the body starts with the send's index)")
		fs.BoolVar(&s.Poisson, "poisson", false, "open loop: Poisson arrivals instead of an even schedule")
		fs.Uint64Var(&s.Seed, "seed", 1, "seed of the Poisson schedule")
		fs.BoolVar(&s.Max, "max", false, "closed loop: keep --window sends in flight per sender, to find the highest sustained delivery rate (--rate is ignored)")
		fs.IntVar(&s.Window, "window", 16, "--max: sends in flight (sent, not yet delivered) per sender")
		fs.DurationVar(&s.Drain, "drain", 10*time.Second, "after the load, longest wait for outstanding acks and deliveries")
		fs.IntVar(&s.Writers, "writers", 0, "writer goroutines, each owning a share of the senders (default: GOMAXPROCS, at least 2)")
		fs.IntVar(&s.MaxSends, "max-sends", 10_000_000, "bound on the sends of a run (16 bytes of bookkeeping each)")
		fs.StringVar(&s.SizeDist, "size-dist", "", "body sizes drawn from a distribution instead of --size: uniform:MIN-MAX or lognormal:MEDIAN,SIGMA (bytes)")
		fs.BoolVar(&s.Receipts, "receipts", false, "recipients send a read receipt for every message; senders measure send→read receipt")
		fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections being opened at once during setup (per process)")
		fs.IntVar(&s.Processes, "processes", 0, "generator processes sharing the pairs and the rate (default 0: one if 2×pairs fits the open-file limit, else as many as needed)")
		sc = s
	case "reconnect":
		s := &loadtest.Reconnect{}
		fs.IntVar(&s.Conns, "conns", 1000, "clients")
		fs.DurationVar(&s.Hold, "hold", 2*time.Second, "time between all being up and the drop")
		fs.DurationVar(&s.Jitter, "jitter", 0, "each client waits a random time below this before reconnecting (default 0: all at once)")
		fs.IntVar(&s.Concurrency, "reconnect-concurrency", 0, "reconnects in flight at once (default 0: no bound)")
		fs.BoolVar(&s.Graceful, "graceful", false, "clients close with a close frame instead of dropping the socket (a reset)")
		fs.Uint64Var(&s.Seed, "seed", 1, "seed of the jitter and backoff")
		fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections being opened at once before the storm")
		sc = s
	case "day":
		s := &loadtest.Day{}
		fs.IntVar(&s.DAU, "dau", 10000, "daily active users of the simulated population")
		fs.Float64Var(&s.OnlineShare, "online-share", 0.3, "share of them connected at the peak (one connection each)")
		fs.Float64Var(&s.MsgsPerDay, "msgs-per-day", 40, "messages each user sends a day")
		fs.Float64Var(&s.PeakFactor, "peak-factor", 2.5, "the peak hour's rate over the day's average hourly rate")
		fs.DurationVar(&s.Duration, "duration", 60*time.Second, "how long to run the peak")
		fs.StringVar(&s.SizeDist, "size-dist", "", "body sizes (default lognormal:40,1)")
		fs.Uint64Var(&s.Seed, "seed", 1, "seed of the arrivals and sizes")
		fs.DurationVar(&s.Drain, "drain", 10*time.Second, "after the load, longest wait for outstanding messages and receipts")
		fs.IntVar(&cfg.Concurrency, "concurrency", 64, "connections being opened at once during setup (per process)")
		fs.IntVar(&s.Processes, "processes", 0, "generator processes sharing the connections and the rate (default 0: one if they fit the open-file limit, else as many as needed)")
		sc = s
	default:
		fmt.Fprint(os.Stderr, loadtestUsage)
		return fmt.Errorf("loadtest: unknown scenario %q", name)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: switchboard loadtest %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest %s: unexpected argument %q", name, fs.Arg(0))
	}
	if *scenarioFile != "" {
		if err := applyScenarioFile(fs, *scenarioFile); err != nil {
			return fmt.Errorf("loadtest %s: %w", name, err)
		}
	}
	var logOut io.Writer = os.Stderr
	if *quiet {
		logOut = io.Discard
	}
	cfg.Log = slog.New(slog.NewTextHandler(logOut, nil))
	if !*quiet {
		cfg.Status = os.Stderr
	}
	if exe, err := os.Executable(); err == nil {
		cfg.WorkerCommand = []string{exe, "loadtest", loadtestWorker}
		cfg.ChatWorkerCommand = []string{exe, "loadtest", loadtestChatWorker}
	}

	rep, err := loadtest.Run(ctx, cfg, sc)
	if rep != nil {
		rep.WriteText(os.Stdout)
		if *jsonPath != "" {
			err = errors.Join(err, writeReport(*jsonPath, rep.WriteJSON))
		}
		if *htmlPath != "" {
			err = errors.Join(err, writeReport(*htmlPath, rep.WriteHTML))
		}
	}
	return err
}

// writeReport creates path and writes a report into it with write.
func writeReport(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadtestReportCmd re-renders a saved JSON report: the summary on
// stdout, and with --html a page.
func loadtestReportCmd(args []string) error {
	fs := flag.NewFlagSet("loadtest report", flag.ContinueOnError)
	htmlPath := fs.String("html", "", "write the report as a self-contained HTML page with plots to this file")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: switchboard loadtest report RUN.json [--html OUT.html]\n\n"+
			"Prints the summary of a report saved with --json; --html renders it as a page.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	reps, err := readReportArgs(fs, args, 1)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	rep := reps[0]
	if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	if *htmlPath != "" {
		return writeReport(*htmlPath, rep.WriteHTML)
	}
	return nil
}

// loadtestCompareCmd prints two saved reports side by side. It fails only
// on bad input, never on what the comparison shows.
func loadtestCompareCmd(args []string) error {
	fs := flag.NewFlagSet("loadtest compare", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: switchboard loadtest compare A.json B.json\n\n"+
			"Prints the figures and latency percentiles of two reports saved with --json\n"+
			"side by side, with the ratio B/A (the difference B-A where A is 0), and marks\n"+
			"with '*' the parameters and environment that differ.\n")
	}
	reps, err := readReportArgs(fs, args, 2)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	return loadtest.Compare(reps[0], reps[1]).WriteText(os.Stdout)
}

// readReportArgs parses fs's flags, before or after the file names, and
// reads the n JSON reports that args name.
func readReportArgs(fs *flag.FlagSet, args []string, n int) ([]*loadtest.Report, error) {
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(files) != n {
		fs.Usage()
		return nil, fmt.Errorf("%s: want %d JSON report(s), got %d arguments", fs.Name(), n, len(files))
	}
	reps := make([]*loadtest.Report, n)
	for i, f := range files {
		if reps[i], err = readReportFile(f); err != nil {
			return nil, err
		}
	}
	return reps, nil
}

// parseInterspersed parses flags that may come after positional
// arguments (report RUN.json --html OUT.html) and returns the positional
// ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func readReportFile(path string) (*loadtest.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep, err := loadtest.ReadReport(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rep, nil
}

// parsePIDs parses a comma-separated list of process ids.
func parsePIDs(v string) ([]int, error) {
	var pids []int
	for f := range strings.SplitSeq(v, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("%q is not a process id", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// applyScenarioFile sets the flags named in a YAML scenario file (flag
// name: value) that the command line did not set.
func applyScenarioFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("scenario file %s: %w", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k == "scenario" || set[k] { // the file may name its scenario; the command line wins
			continue
		}
		if fs.Lookup(k) == nil {
			return fmt.Errorf("scenario file %s: %q is not a flag of this scenario", path, k)
		}
		if err := fs.Set(k, fmt.Sprint(m[k])); err != nil {
			return fmt.Errorf("scenario file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// scenarioOf reads the "scenario" key of a scenario file.
func scenarioOf(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var head struct {
		Scenario string `yaml:"scenario"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		return "", fmt.Errorf("scenario file %s: %w", path, err)
	}
	if head.Scenario == "" {
		return "", fmt.Errorf("scenario file %s: no \"scenario:\" (idle, connect, chat, reconnect, day)", path)
	}
	return head.Scenario, nil
}
