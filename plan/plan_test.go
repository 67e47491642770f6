package plan

import (
	"bytes"
	"errors"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func compute(t *testing.T, in Inputs) *Plan {
	t.Helper()
	p, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func value(t *testing.T, p *Plan, key string) float64 {
	t.Helper()
	v, ok := p.Value(key)
	if !ok {
		t.Fatalf("no step %q", key)
	}
	return v
}

// TestDesignEstimate: the design's 100 million daily users at 60,000
// sockets per box give its "about 1,600" gateways: 1,667 with every daily
// user online at the peak, 1,600 exactly with 96% of them.
func TestDesignEstimate(t *testing.T) {
	p := compute(t, Defaults().WithDesignGateways())
	if got := value(t, p, "gateways"); got != 1667 {
		t.Errorf("gateways = %v, want 1,667 (100,000,000 ÷ 60,000 rounded up)", got)
	}
	if by := value(t, p, "gateways_by_conns"); by != value(t, p, "gateways") {
		t.Errorf("the design's count should be bound by connections, got %v by connections", by)
	}
	in := Defaults().WithDesignGateways()
	in.OnlineShare = 0.96
	if got := value(t, compute(t, in), "gateways"); got != 1600 {
		t.Errorf("96%% online: gateways = %v, want 1,600", got)
	}
	if !strings.Contains(strings.Join(p.Warnings, "\n"), "taken as given") {
		t.Errorf("the design's figure is not flagged as given: %q", p.Warnings)
	}
}

// TestDefaultsByHand checks every tier of the default plan against
// figures worked out by hand (docs/capacity.md shows the same).
func TestDefaultsByHand(t *testing.T) {
	p := compute(t, Defaults())
	for _, c := range []struct {
		key  string
		want float64
	}{
		{"peak_conns", 100_000_000},
		{"peak_msgs_per_s", 100e6 * 50 / 86400 * 2}, // 115,740.7
		{"conns_per_box_by_memory", 2_223_129},      // 24 GiB × ½ ÷ (1.86 + 3.8) KiB
		{"conns_per_box_by_cpu", 1_739_597},         // 2 × 60,000 × ½ ÷ (0.0011574 + 1/30)
		{"gateways_by_conns", 58},
		{"gateways_by_reconnects", 38}, // 833,333/s ÷ 22,000
		{"gateways", 58},
		{"workers", 6},                // 115,741 ÷ 10,000 = 11.6 cores on 2-core boxes
		{"messages_partitions", 12},   // 6 workers × 2 cores > 34.7 MB/s ÷ 5
		{"deliveries_partitions", 58}, // one per gateway
		{"kafka_partitions", 70},
		{"brokers_by_throughput", 5}, // 208 MB/s ÷ 50
		{"brokers_by_disk", 5},       // 9 TB ÷ 2
		{"kafka_brokers", 5},
		{"cassandra_tb_per_day", 3.15}, // 5e9 msgs × 420 B × 1.5
		{"cassandra_tb_retained", 283.5},
		{"cassandra_nodes_by_disk", 284},
		{"cassandra_nodes_by_writes", 209}, // 1,041,667 ÷ 5,000
		{"cassandra_nodes", 284},
		{"media_tb_per_day", 153.6},
		{"media_tb_retained", 4608},
		{"redis_shards", 26}, // (333,333 + 115,741 + 833,333) ops/s ÷ 50,000
		{"redis_nodes", 52},
	} {
		if got := value(t, p, c.key); math.Abs(got-c.want) > 1e-6*math.Max(1, c.want) {
			t.Errorf("%s = %v, want %v", c.key, got, c.want)
		}
	}
	for _, tier := range p.Tiers {
		if last := tier.Steps[len(tier.Steps)-1]; tier.Name != TierGateways && tier.Count != last.Value {
			t.Errorf("tier %s counts %v, its last step %s is %v", tier.Name, tier.Count, last.Key, last.Value)
		}
	}
	if g, _ := p.Tier(TierGateways); g.Count != 58 {
		t.Errorf("gateway tier counts %v", g.Count)
	}
	if !strings.Contains(strings.Join(p.Warnings, "\n"), "extrapolated") {
		t.Errorf("1.7 million connections per box measured at 15,000 is not flagged: %q", p.Warnings)
	}
}

// TestBoundsMove: each bound of the gateways governs when it is the
// tightest.
func TestBoundsMove(t *testing.T) {
	in := Defaults()
	in.BoxMemoryGiB = 1 // 1 GiB ÷ 2 ÷ 5.66 KiB = 92,630 per box
	if p := compute(t, in); value(t, p, "conns_per_box_planned") != value(t, p, "conns_per_box_by_memory") || value(t, p, "gateways") != 1080 {
		t.Errorf("memory bound: planned %v, gateways %v", value(t, p, "conns_per_box_planned"), value(t, p, "gateways"))
	}
	in = Defaults()
	in.ReconnectSeconds = 10 // 10M upgrades/s ÷ 22,000 per box
	if p := compute(t, in); value(t, p, "gateways") != 455 {
		t.Errorf("reconnect bound: gateways %v, want 455", value(t, p, "gateways"))
	}
	in = Defaults()
	in.DAU = 1000
	if p := compute(t, in); value(t, p, "gateways") != 2 || value(t, p, "cassandra_nodes") != 3 || value(t, p, "kafka_brokers") != 3 {
		t.Errorf("floors: gateways %v, cassandra %v, kafka %v", value(t, p, "gateways"), value(t, p, "cassandra_nodes"), value(t, p, "kafka_brokers"))
	}
}

func TestCount(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{1600, 1600}, {96e6 / 60000, 1600}, {1600.0000000000002, 1600}, {1600.001, 1601}, {0.2, 1}, {1666.67, 1667},
	} {
		if got := count(c.x); got != c.want {
			t.Errorf("count(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

// TestFormulasNameWhatTheyUse: every name in a formula is an input or an
// earlier step, so a reader can follow each number back to the inputs.
func TestFormulasNameWhatTheyUse(t *testing.T) {
	known := map[string]bool{"max": true, "min": true}
	for _, f := range Fields() {
		known[f.Key] = true
	}
	p := compute(t, Defaults())
	all := append([]Step(nil), p.Load...)
	for _, tier := range p.Tiers {
		all = append(all, tier.Steps...)
	}
	ident := regexp.MustCompile(`[a-z][a-z0-9_]*`)
	for _, s := range all {
		for _, name := range ident.FindAllString(s.Formula, -1) {
			if !known[name] {
				t.Errorf("step %s: formula %q names %q, which is neither an input nor an earlier step", s.Key, s.Formula, name)
			}
		}
		if known[s.Key] {
			t.Errorf("step %s: key used twice", s.Key)
		}
		known[s.Key] = true
	}
}

func TestValidate(t *testing.T) {
	in := Defaults()
	if err := in.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		key  string
		v    float64
		want string
	}{
		{"dau", 0, "more than 0"},
		{"dau", math.NaN(), "a finite number"},
		{"online_share", -0.5, "more than 0"},
		{"peak_factor", 0.5, "at least 1"},
		{"media_share", 1.5, "a fraction from 0 to 1"},
		{"utilization", 0, "a fraction above 0, at most 1"},
		{"memory_usable", 1.01, "a fraction above 0, at most 1"},
		{"kafka_replication", 2.5, "a whole number, at least 1"},
		{"redis_replicas", -1, "a whole number, at least 0"},
		{"msgs_per_core", math.Inf(1), "a finite number"},
	} {
		in := Defaults()
		if err := in.Set(c.key, c.v); err != nil {
			t.Fatal(err)
		}
		err := in.Validate()
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), c.key+" = ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %v: error %v, want one naming the key and %q", c.key, c.v, err, c.want)
		}
		if _, err := Compute(in); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s = %v: Compute did not refuse it: %v", c.key, c.v, err)
		}
	}

	// Every problem at once.
	in = Defaults()
	in.DAU, in.Utilization = -1, 2
	err := in.Validate()
	if err == nil || !strings.Contains(err.Error(), "dau") || !strings.Contains(err.Error(), "utilization") {
		t.Errorf("two bad inputs: %v", err)
	}
	in = Defaults()
	in.RSSPerConnKiB, in.KernelPerConnKiB = 0, 0
	if err := in.Validate(); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("a connection that costs no memory: %v", err)
	}
	in = Defaults()
	in.BoxMemoryGiB = 1e-6
	if _, err := Compute(in); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "no connection") {
		t.Errorf("a box that holds no connection: %v", err)
	}
	if err := in.Set("no_such_input", 1); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestBasis(t *testing.T) {
	in := Defaults()
	in.DAU = 5e7
	in.SetBasis("msgs_per_core", "measured: x.json")
	in.MsgsPerCore = 1234
	p := compute(t, in)
	basis := map[string]string{}
	for _, i := range p.Inputs {
		basis[i.Key] = i.Basis
	}
	if basis["dau"] != "given" || basis["msgs_per_core"] != "measured: x.json" || !strings.HasPrefix(basis["rss_per_conn_kib"], "measured: 1.86") {
		t.Errorf("basis: %q", basis)
	}
	for _, f := range Fields() {
		if !regexp.MustCompile(`^(measured|measured on|assumed|assumed, not measured|design|setting|derived)\b`).MatchString(f.Basis) {
			t.Errorf("%s: basis %q does not say whether it is measured, assumed, the design's or a setting", f.Key, f.Basis)
		}
	}
	// WithDesignGateways copies the basis map rather than sharing it.
	d := in.WithDesignGateways()
	if in.Basis["conns_per_box"] != "" || d.ConnsPerBox != DesignConnsPerBox || in.ConnsPerBox != 0 {
		t.Errorf("WithDesignGateways changed its receiver: %v %q", in.ConnsPerBox, in.Basis)
	}
}

// sideBySide returns the default plan with the design's gateways and
// without, labelled as --compare labels them.
func sideBySide(t *testing.T) (design, measured *Plan) {
	design = compute(t, Defaults().WithDesignGateways())
	design.Label = "design"
	measured = compute(t, Defaults())
	measured.Label = "measured"
	return design, measured
}

func TestJSONRoundTrip(t *testing.T) {
	d, m := sideBySide(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, d, m); err != nil {
		t.Fatal(err)
	}
	doc, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.Plans, []*Plan{d, m}) {
		t.Errorf("round trip changed the plans")
	}
	if g, _ := doc.Plans[0].Tier(TierGateways); g.Count != 1667 {
		t.Errorf("design gateways after the round trip: %v", g.Count)
	}
}

func TestWriteText(t *testing.T) {
	d, m := sideBySide(t)
	var buf bytes.Buffer
	if err := WriteText(&buf, d, m); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !regexp.MustCompile(`(?m)^  gateways +1,667 +58 boxes$`).MatchString(out) {
		t.Errorf("no side-by-side gateway row:\n%s", out)
	}
	if !strings.Contains(out, "design: = conns_per_box  (given); measured: = min(conns_per_box_by_memory, conns_per_box_by_cpu)") {
		t.Errorf("formulas that differ are not shown per plan")
	}
	for _, f := range Fields() {
		if !strings.Contains(out, "\n  "+f.Key+" ") {
			t.Errorf("input %s not printed", f.Key)
		}
	}
	for _, tier := range m.Tiers {
		for _, s := range tier.Steps {
			if !strings.Contains(out, "\n  "+s.Key+" ") || !strings.Contains(out, s.Formula) {
				t.Errorf("step %s or its formula not printed", s.Key)
			}
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing blank: %q", line)
		}
	}
}

func TestFormatNumber(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{100_000_000, "100,000,000"}, {115740.74, "115,741"}, {1667, "1,667"}, {999, "999"},
		{5.079, "5.079"}, {0.001157407, "0.001157"}, {0.5, "0.5"}, {-1234, "-1,234"}, {3, "3"},
	} {
		if got := formatNumber(c.v); got != c.want {
			t.Errorf("formatNumber(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

// TestCapacityDocIsCurrent: docs/capacity.md shows `switchboard plan
// --compare` as it prints today (without its inputs section) and every
// input with its default and basis, so a change to the model or a default
// that leaves the doc behind fails here. Regenerate the block with
// `go run ./cmd/switchboard plan --compare`.
func TestCapacityDocIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../docs/capacity.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	d, m := sideBySide(t)
	var buf bytes.Buffer
	if err := WriteText(&buf, d, m); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	i, j := strings.Index(out, "\nINPUTS"), strings.Index(out, "\nPEAK LOAD")
	if i < 0 || j < i {
		t.Fatal("no INPUTS or PEAK LOAD section")
	}
	if want := out[:i] + out[j:]; !strings.Contains(doc, "```text\n"+want+"```") {
		t.Errorf("docs/capacity.md does not show the current `plan --compare` output")
	}
	for _, in := range m.Inputs {
		v := formatNumber(in.Value)
		if in.Unit != "" {
			v += " " + in.Unit
		}
		if row := "| `" + in.Key + "` | " + v + " | " + in.Basis + " |"; !strings.Contains(doc, row) {
			t.Errorf("docs/capacity.md lacks the row %s", row)
		}
	}
}
