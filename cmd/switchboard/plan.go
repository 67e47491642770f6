package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/plan"
)

const planUsage = `Usage: switchboard plan [flags]

Sizes a fleet for a workload: gateways, workers, Kafka partitions and
brokers, Cassandra nodes and storage, object storage for files, Redis
nodes, and network bandwidth at the peak. Prints the count per tier, every
input with its basis (measured, assumed, design, setting) and every step
with its formula. docs/capacity.md explains the model.

Inputs come from, in increasing precedence: the defaults (the design's
workload on the figures measured in docs/benchmarks.md), --inputs FILE,
--from-loadtest reports, then the input flags below.

Flags:
  --inputs FILE          input file, YAML or JSON, keyed by input name
                         (dau: 50000000, online_share: 0.3, ...)
  --from-loadtest FILE   a 'switchboard loadtest SCENARIO --json' report;
                         repeat for several. idle gives rss_per_conn_kib
                         and tested_conns, connect upgrades_per_core, chat
                         (best with --max) and day msgs_per_core
  --compare              also plan with the design's 60,000 connections per
                         gateway box and print both side by side
  --format text|json     what to print (default text)
  --json FILE            also write the plan as JSON to FILE

Inputs (the file key is the flag with _ for -):
`

func planCmd(args []string) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	inputsFile := fs.String("inputs", "", "")
	var reports []string
	fs.Func("from-loadtest", "", func(s string) error { reports = append(reports, s); return nil })
	compare := fs.Bool("compare", false, "")
	format := fs.String("format", "text", "")
	jsonPath := fs.String("json", "", "")
	given := map[string]float64{}
	for _, f := range plan.Fields() {
		fs.Var(&inputFlag{key: f.Key, given: given}, flagName(f.Key), f.Help)
	}
	fs.Usage = func() { writePlanUsage(fs.Output()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("plan: unexpected argument %q", fs.Arg(0))
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("plan: --format %q: want text or json", *format)
	}

	in := plan.Defaults()
	if *inputsFile != "" {
		before := in
		if err := (config.Loader{Prefix: "SWITCHBOARD_PLAN"}).Load(&in, *inputsFile); err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		for _, f := range plan.Fields() {
			if a, _ := before.Get(f.Key); a != mustGet(&in, f.Key) {
				in.SetBasis(f.Key, "given: "+*inputsFile)
			}
		}
	}
	var notes []string
	for _, path := range reports {
		m, err := readLoadtest(path)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		if err := m.Apply(&in); err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		notes = append(notes, m.Notes...)
	}
	for key, v := range given {
		if err := in.Set(key, v); err != nil {
			return err
		}
		in.SetBasis(key, "given: --"+flagName(key))
	}

	var plans []*plan.Plan
	if *compare {
		d, err := plan.Compute(in.WithDesignGateways())
		if err != nil {
			return err
		}
		d.Label = "design"
		plans = append(plans, d)
	}
	p, err := plan.Compute(in)
	if err != nil {
		return err
	}
	if *compare {
		p.Label = "measured"
	}
	plans = append(plans, p)
	for _, q := range plans {
		q.Warnings = append(q.Warnings, notes...)
	}

	if *jsonPath != "" {
		if err := writePlanJSON(*jsonPath, plans); err != nil {
			return fmt.Errorf("plan: %w", err)
		}
	}
	if *format == "json" {
		return plan.WriteJSON(os.Stdout, plans...)
	}
	return plan.WriteText(os.Stdout, plans...)
}

// inputFlag records an input given on the command line; it is applied
// after the input file and the load-test reports, which it overrides.
type inputFlag struct {
	key   string
	given map[string]float64
}

func (f *inputFlag) String() string { return "" }

func (f *inputFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("want a number")
	}
	f.given[f.key] = v
	return nil
}

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

func mustGet(in *plan.Inputs, key string) float64 {
	v, _ := in.Get(key)
	return v
}

func writePlanUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(planUsage)
	for _, f := range plan.Fields() {
		def := strconv.FormatFloat(f.Default, 'f', -1, 64)
		if f.Unit != "" {
			def += " " + f.Unit
		}
		fmt.Fprintf(&b, "  --%s (default %s)\n        %s\n        %s\n", flagName(f.Key), def, f.Help, f.Basis)
	}
	io.WriteString(w, b.String())
}

func readLoadtest(path string) (plan.Measured, error) {
	f, err := os.Open(path)
	if err != nil {
		return plan.Measured{}, err
	}
	defer f.Close()
	return plan.ReadLoadtest(f, path)
}

func writePlanJSON(path string, plans []*plan.Plan) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = plan.WriteJSON(f, plans...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
