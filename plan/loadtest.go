package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrLoadtestReport is wrapped by ReadLoadtest's errors about a report's
// content (not about reading it).
var ErrLoadtestReport = errors.New("load-test report")

// Measured is what a `switchboard loadtest --json` report gives a plan.
type Measured struct {
	Scenario string
	// Values are inputs by key (see Fields), Basis the reason for each.
	Values map[string]float64
	Basis  map[string]string
	// Notes say what was left out or must be read with care.
	Notes []string
}

// Apply sets the measured inputs in in, with their basis.
func (m Measured) Apply(in *Inputs) error {
	for k, v := range m.Values {
		if err := in.Set(k, v); err != nil {
			return err
		}
		in.SetBasis(k, m.Basis[k])
	}
	return nil
}

// loadtestReport holds the fields of loadtest.Report (loadtest/report.go)
// that a plan reads. Every other field is ignored, so reports that grow
// still parse.
type loadtestReport struct {
	Scenario    string         `json:"scenario"`
	Params      map[string]any `json:"params"`
	Interrupted bool           `json:"interrupted"`
	Environment struct {
		CPUs int `json:"cpus"`
	} `json:"environment"`
	Figures []struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
		Unit  string  `json:"unit"`
	} `json:"figures"`
	Errors map[string]int64 `json:"errors"`
	CPU    *struct {
		ServerPercent float64 `json:"server_percent"` // of one CPU; -1: unknown
	} `json:"cpu"`
}

func (r *loadtestReport) figure(name string) (value float64, unit string, ok bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, f.Unit, true
		}
	}
	return 0, "", false
}

// Figure names ReadLoadtest reads, as loadtest/idle.go, connect.go and
// chat.go (which day.go runs) write them.
const (
	figRSSPerConn   = "server RSS per connection"           // idle, KiB
	figConnsUp      = "connections up"                      // idle
	figUpgradeRate  = "upgrade rate"                        // connect, upgrades/s
	figDeliveryRate = "delivery rate during load"           // chat, msg/s
	figMissing      = "missing after drain (not delivered)" // chat
	figKernelTCP    = "kernel TCP memory per connection"    // idle, bytes: socket buffers only, not used
)

// ReadLoadtest reads the JSON report of `switchboard loadtest SCENARIO
// --json FILE` (name is FILE, for messages and the basis) and returns the
// inputs it measures:
//
//   - idle: rss_per_conn_kib from "server RSS per connection" (KiB);
//     tested_conns from "connections up". Its "kernel TCP memory per
//     connection" is not used: /proc/net/sockstat counts the pages of
//     socket buffers holding data, 0 or near it for an idle socket (and
//     below 0 when other sockets close during the run), not the socket
//     structures that make up kernel_per_conn_kib.
//   - connect: upgrades_per_core = "upgrade rate" ÷ the server's CPUs
//     (cpu.server_percent ÷ 100).
//   - chat and day: msgs_per_core = "delivery rate during load" ÷ the
//     server's CPUs.
//     A --max run gives the capacity of a core; an open-loop run gives the
//     cost at its rate, which batching makes higher per message at low
//     rates, so it understates a core.
//
// When the server's CPU is unknown (cpu.server_percent -1: the run had no
// --server-pid or /metrics), the rate is divided by all of the box's CPUs
// (environment.cpus), a lower bound, and a note says so.
func ReadLoadtest(r io.Reader, name string) (Measured, error) {
	var rep loadtestReport
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return Measured{}, fmt.Errorf("%s: not a load-test JSON report: %w", name, err)
	}
	m := Measured{Scenario: rep.Scenario, Values: map[string]float64{}, Basis: map[string]string{}}
	src := fmt.Sprintf("measured: %s (loadtest %s)", name, rep.Scenario)
	if rep.Interrupted {
		m.Notes = append(m.Notes, name+": the run was interrupted before its end")
	}
	if n := totalErrors(rep.Errors); n > 0 {
		m.Notes = append(m.Notes, fmt.Sprintf("%s: the run counted %d errors", name, n))
	}
	need := func(fig string) (float64, error) {
		v, _, ok := rep.figure(fig)
		if !ok {
			return 0, fmt.Errorf("%s: %w: loadtest %s report has no figure %q", name, ErrLoadtestReport, rep.Scenario, fig)
		}
		if v <= 0 {
			return 0, fmt.Errorf("%s: %w: figure %q is %v", name, ErrLoadtestReport, fig, v)
		}
		return v, nil
	}
	// perCore sets key to the figure's rate per server CPU.
	perCore := func(fig, key string) error {
		rate, err := need(fig)
		if err != nil {
			return err
		}
		cores, how := serverCPUs(&rep, name, &m)
		m.Values[key] = rate / cores
		m.Basis[key] = fmt.Sprintf("%s: %q %s ÷ %s", src, fig, formatNumber(rate), how)
		return nil
	}
	switch rep.Scenario {
	case "idle":
		rss, err := need(figRSSPerConn)
		if err != nil {
			return Measured{}, fmt.Errorf("%w (give loadtest idle --server-pid)", err)
		}
		m.Values["rss_per_conn_kib"] = rss
		m.Basis["rss_per_conn_kib"] = fmt.Sprintf("%s: %q", src, figRSSPerConn)
		if up, _, ok := rep.figure(figConnsUp); ok && up > 0 {
			m.Values["tested_conns"] = up
			m.Basis["tested_conns"] = fmt.Sprintf("%s: %q", src, figConnsUp)
		}
		if up, _, ok := rep.figure(figConnsUp); ok && up < 10_000 {
			m.Notes = append(m.Notes, fmt.Sprintf("%s: %s connections: a small run, whose RSS per connection the heap's growth steps dominate; plan from 10,000 or more", name, formatNumber(up)))
		}
		if v, unit, ok := rep.figure(figKernelTCP); ok {
			m.Notes = append(m.Notes, fmt.Sprintf("%s: %q (%s %s) not used: /proc/net/sockstat counts socket buffers holding data, not the socket structures of an idle connection; kernel_per_conn_kib keeps its value",
				name, figKernelTCP, formatNumber(v), unit))
		}
	case "connect":
		if err := perCore(figUpgradeRate, "upgrades_per_core"); err != nil {
			return Measured{}, err
		}
	case "chat", "day":
		if err := perCore(figDeliveryRate, "msgs_per_core"); err != nil {
			return Measured{}, err
		}
		if rep.Scenario == "day" {
			m.Notes = append(m.Notes, name+": a day run's messages carry read receipts, so a core's rate includes their work")
		}
		if mode, _ := rep.Params["mode"].(string); mode != "" && !strings.HasPrefix(mode, "max") {
			m.Notes = append(m.Notes, fmt.Sprintf("%s: an open-loop run (%s) gives the CPU cost at its rate, not a core's capacity; a --max run gives that", name, mode))
		}
		if v, _, ok := rep.figure(figMissing); ok && v > 0 {
			m.Notes = append(m.Notes, fmt.Sprintf("%s: %s messages were not delivered", name, formatNumber(v)))
		}
	default:
		return Measured{}, fmt.Errorf("%s: %w: scenario %q has no figure a plan uses (it reads idle, connect, chat and day reports)", name, ErrLoadtestReport, rep.Scenario)
	}
	return m, nil
}

// serverCPUs returns the CPUs the server used over the run's window and
// how they were found.
func serverCPUs(rep *loadtestReport, name string, m *Measured) (float64, string) {
	if rep.CPU != nil && rep.CPU.ServerPercent > 0 {
		c := rep.CPU.ServerPercent / 100
		return c, fmt.Sprintf("%s server CPUs", formatNumber(c))
	}
	c := float64(max(rep.Environment.CPUs, 1))
	m.Notes = append(m.Notes, fmt.Sprintf("%s: the server's CPU is unknown (run loadtest with --server-pid); the rate is divided by all %s CPUs of the box, a lower bound", name, formatNumber(c)))
	return c, fmt.Sprintf("all %s CPUs of the box", formatNumber(c))
}

func totalErrors(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
